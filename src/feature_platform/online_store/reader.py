"""THE online read: one plan per request and registry snapshot, one pipelined
fetch, one status rule. Every read path uses it: the online store plugin
(``store.PlatformRedisOnlineStore``: ``FeatureStore.get_online_features``,
``feast serve``, Feast's remote client through it), the platform's HTTP server
(``serving.fast_reads``) and ``FastOnlineReader``.

Feast's Redis read builds entity key protos, serializes them, runs a redis-py
pipeline, parses every value into a ``ValueProto`` and assembles an
``OnlineResponse`` proto on every call. This module does the same read with
the per-request work cut to what depends on the request:

* ``cached_plan``: a read is planned once per (registry snapshot, feature
  service or feature list) from Feast's own resolution of the request
  (``feast_compat.online_request_context``: the same views, projections,
  feature order and errors as Feast): the Redis hash fields
  ``mmh3("<view>:<feature>")`` and ``_ts:<view>``, the v3 entity key prefix,
  the ttl. A request the fast path does not cover raises ``UnsupportedRead``
  (remembered for the snapshot too), and Feast's own path serves it;
* entity keys are serialized with the precomputed prefix plus the project
  suffix (``codec``), so plain ``feast`` reads and writes the very same hashes;
* all HMGETs of a request go out as one pre-packed pipelined write on one
  connection and come back in one read (hiredis parses the replies);
* values are decoded from their protobuf wire bytes directly, and the
  freshness rule (``feature_platform.freshness.is_stale_epoch``) is applied per
  row: a value older than its view's ttl is withheld;
* ``ViewRead.statuses``: the status of each row, the one rule every response
  form (Feast's proto, its ``to_dict``, its JSON) reports.

``ReadPlan.read`` returns the decoded columns (``ViewRead`` per view);
``response`` turns them into Feast's ``OnlineResponse``, its ``to_dict`` and
the feature server's JSON.
"""

from __future__ import annotations

import numbers
import struct
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.feature_refs import parse_ref
from feature_platform.freshness import is_stale_epoch, ttl_seconds
from feature_platform.online_store.codec import (
    STATUS_OUTSIDE_MAX_AGE,
    STATUS_PRESENT,
    VT_INT32,
    VT_INT64,
    VT_STRING,
    bulk,
    command_head,
    decode_timestamp_parts,
    decode_value,
    encode_entity_value,
    entity_key_prefix,
)
from feature_platform.online_store.on_demand import (
    OnDemandOutputs,
    OnDemandPlan,
    plan_on_demand,
)
from feature_platform.online_store.redis_pipe import round_trip
from feature_platform.utc import ensure_utc

if TYPE_CHECKING:
    from feast import FeatureStore

    from feature_platform.feast_compat import RequestContext

__all__ = [
    "FastOnlineReader",
    "ReadPlan",
    "UnsupportedRead",
    "ViewPlan",
    "ViewRead",
    "cached_plan",
    "check_store_config",
    "plan_read",
]

_I64_SIZE = b"\x08\x00\x00\x00"
_PACK_I64 = struct.Struct("<q").pack
_MAX_PLANS = 256


class UnsupportedRead(ValueError):
    """The fast path does not cover this read; Feast's generic path serves it."""


def check_store_config(config: Any) -> None:
    """Raise ``UnsupportedRead`` unless the repo config's store takes the fast path:
    a single Redis server (not a cluster or sentinel) read with redis-py,
    entity key serialization v3, no online feature view versioning."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    online = config.online_store
    if not isinstance(online, RedisOnlineStoreConfig):
        raise UnsupportedRead(
            f"fast online reads need a Redis online store, not {online.type!r}"
        )
    if str(getattr(online.redis_type, "value", online.redis_type)) != "redis":
        raise UnsupportedRead("fast online reads need redis_type: redis")
    if str(getattr(online.client, "value", online.client)) != "redis":
        raise UnsupportedRead("fast online reads need client: redis")
    if config.entity_key_serialization_version != 3:
        raise UnsupportedRead("fast online reads need entity key serialization v3")
    if getattr(config.registry, "enable_online_feature_view_versioning", False):
        raise UnsupportedRead("versioned online feature views are not supported")


@dataclass(frozen=True)
class ViewPlan:
    """How to read one feature view (projection) of a request."""

    name: str  # output view name (projection.name_to_use())
    join_key: str
    value_type: int
    prefix: bytes
    features: tuple[str, ...]  # requested feature names, Feast's order
    outputs: tuple[str, ...]  # output column per feature
    value_types: tuple[Any, ...]  # feast ValueType per feature (for protos)
    command_tail: bytes  # packed HMGET field list (features + _ts)
    nargs: int
    ttl_s: float | None


@dataclass
class ViewRead:
    """Decoded replies of one view: per feature a column, per row a timestamp."""

    plan: ViewPlan
    values: list[list[Any]]  # [feature][row]
    raw: list[list[bytes | None]]  # HMGET reply per row (features..., _ts)
    stamps: list[tuple[int, int] | None]  # (seconds, nanos); None: no hash
    stale: list[bool]

    @property
    def statuses(self) -> list[str]:
        """THE status rule of a read, per row (every feature of the view):
        ``OUTSIDE_MAX_AGE`` when the row is past the view's ttl (its values
        withheld), else ``PRESENT`` -- a missing entity and a null value too,
        with a null value, as Feast's Redis store reports them."""
        return [STATUS_OUTSIDE_MAX_AGE if s else STATUS_PRESENT for s in self.stale]


def plan_view(view: Any, requested: Sequence[str], *, full: bool) -> ViewPlan:
    """Plan one ``(feature view with projection, requested features)`` pair."""
    from feature_platform.feast_compat import feature_field

    projection = view.projection
    if projection.join_key_map:
        raise UnsupportedRead(f"view {view.name!r}: join key maps are not supported")
    if getattr(projection, "version_tag", None) is not None:
        raise UnsupportedRead(f"view {view.name!r}: versioned reads are not supported")
    columns = list(view.entity_columns)
    if len(columns) != 1:
        raise UnsupportedRead(f"view {view.name!r}: fast reads need one join key")
    key = columns[0].name
    vtype = int(columns[0].dtype.to_value_type().value)
    if vtype not in (VT_INT64, VT_INT32, VT_STRING):
        raise UnsupportedRead(f"view {view.name!r}: join key type {vtype} unsupported")
    by_name = {f.name: f for f in view.features}
    names = list(requested)
    fields = [feature_field(view.name, n) for n in names]
    fields.append(f"_ts:{view.name}".encode())
    use = projection.name_to_use()
    return ViewPlan(
        name=use,
        join_key=key,
        value_type=vtype,
        prefix=entity_key_prefix(key, vtype),
        features=tuple(names),
        outputs=tuple(f"{use}__{n}" if full else n for n in names),
        value_types=tuple(
            by_name[n].dtype.to_value_type() if n in by_name else None for n in names
        ),
        command_tail=b"".join(bulk(f) for f in fields),
        nargs=2 + len(fields),
        ttl_s=ttl_seconds(view.ttl),
    )


class ReadPlan:
    """A planned read of several views: keys, one pipelined fetch, decoding.

    Built by ``plan_read`` from Feast's resolution of the request
    (``context``); ``entity_types`` and ``join_keys`` are Feast's for the
    request, ``feature_types`` the ``ValueType`` of every output column (bare
    and view-prefixed names, as Feast's ``OnlineResponse`` keeps them).
    """

    def __init__(
        self,
        views: Sequence[ViewPlan],
        project: str,
        context: RequestContext | None = None,
        *,
        full_feature_names: bool = False,
    ) -> None:
        self.views = list(views)
        self.full_feature_names = full_feature_names
        self.project = project.encode("utf8")
        self.join_keys: list[str] = list(dict.fromkeys(p.join_key for p in views))
        self.feature_names = [o for p in views for o in p.outputs]
        self.context = context
        self.entity_types: Mapping[str, Any] = context.entity_types if context else {}
        self.known_join_keys: Any = context.join_keys if context else set()
        # The ValueType name of each join key the read uses (entity_columns).
        self._key_kinds = {
            k: t.name for k, t in self.entity_types.items() if t is not None
        }
        # On-demand views of the request and the request data columns they
        # take; computed from the read's columns (``on_demand``), or by
        # Feast's transform over the proto where ``on_demand_plan`` is None.
        self.on_demand: tuple[Any, ...] = (
            tuple(context.on_demand_views) if context else ()
        )
        self.request_data: Any = context.request_data if context else set()
        self.on_demand_plan: OnDemandPlan | None = (
            plan_on_demand(
                context,
                [o for p in self.views for o in p.outputs],
                full_feature_names=full_feature_names,
            )
            if context is not None and self.on_demand
            else None
        )
        # Per on-demand view: its requested features and their output columns
        # (what ``serving.metrics`` counts nulls of on Feast's transform path).
        self.on_demand_outputs: list[OnDemandOutputs] = []
        for odfv in self.on_demand:
            name = odfv.projection.name_to_use()
            feats = tuple(
                ref.split(":", 1)[1]
                for ref in (context.feature_refs if context else [])
                if ref.split(":", 1)[0] == name
            )
            self.on_demand_outputs.append(
                OnDemandOutputs(
                    name,
                    feats,
                    tuple(f"{name}__{f}" if full_feature_names else f for f in feats),
                )
            )
        self.feature_types: dict[str, Any] = {}
        for p in self.views:
            for name, vtype in zip(p.features, p.value_types, strict=True):
                self.feature_types[name] = vtype
                self.feature_types[f"{p.name}__{name}"] = vtype
        self._frames = [_int64_frame(p, self.project) for p in self.views]

    def _commands(
        self, plan: ViewPlan, frame: tuple[bytes, bytes] | None, values: Sequence[Any]
    ) -> list[bytes]:
        """The HMGET command of each entity value (an int64 key: the plan's
        frame around the packed value, the same bytes ``bulk`` frames)."""
        try:
            if frame is not None:
                pre, post = frame
                pack = _PACK_I64
                return [pre + pack(v) + post for v in values]
            head, tail = command_head(b"HMGET", plan.nargs), plan.command_tail
            prefix, project, vtype = plan.prefix, self.project, plan.value_type
            return [
                head + bulk(prefix + encode_entity_value(v, vtype) + project) + tail
                for v in values
            ]
        except (struct.error, TypeError, ValueError) as exc:
            # Out of range or not a number: Feast's path reports it its way.
            raise UnsupportedRead(f"{plan.join_key}: {exc}") from exc

    def entity_columns(self, entity_rows: Any) -> dict[str, list[Any]]:
        """Entity rows (a list of dicts, or columns) as native columns of the
        request's join keys, in request order (what Feast returns first).

        Only what the fast path encodes exactly as Feast would: native ints for
        integer keys, ``str`` for string keys (the join keys of entities the
        read does not use come back as given, as Feast returns them). Anything
        else (protos, entity names, other types, ragged rows) raises
        ``UnsupportedRead``.
        """
        columns = _as_columns(entity_rows)
        out: dict[str, list[Any]] = {}
        request: dict[str, list[Any]] = {}  # after the join keys, as Feast does
        kinds = self._key_kinds
        for key, values in columns.items():
            if key in self.request_data:
                request[key] = values
                continue
            if key not in self.known_join_keys:
                continue  # Feast skips keys that are not join keys
            kind = kinds.get(key)
            if kind is None:  # a join key this read does not use: as given
                out[key] = values
            elif kind in ("INT64", "INT32"):
                if not all(type(v) is int for v in values):  # else: as native ints
                    if not all(
                        isinstance(v, numbers.Integral) and not isinstance(v, bool)
                        for v in values
                    ):
                        raise UnsupportedRead(f"{key}: not all integers")
                    values = [int(v) for v in values]
                out[key] = values
            elif kind == "STRING":
                if not all(isinstance(v, str) for v in values):
                    raise UnsupportedRead(f"{key}: not all strings")
                out[key] = values
            else:
                raise UnsupportedRead(f"{key}: entity type {self.entity_types[key]}")
        if not self.request_data:
            return out
        missing = set(self.request_data) - set(request)
        if missing:  # Feast's path raises its error naming them
            raise UnsupportedRead(f"request data {sorted(missing)} not sent")
        return {**out, **request}

    def fetch(self, client: Any, columns: Mapping[str, Sequence[Any]]) -> list[list]:
        """Raw HMGET replies per view (features..., then ``_ts``) for entity columns."""
        n = len(next(iter(columns.values()), []))
        if n == 0:
            raise ValueError("no entity rows")
        commands: list[bytes] = []
        for plan, frame in zip(self.views, self._frames, strict=True):
            if plan.join_key not in columns:
                raise ValueError(f"entities lack join key {plan.join_key!r}")
            commands += self._commands(plan, frame, columns[plan.join_key])
        replies = round_trip(client, commands)
        return [replies[i * n : (i + 1) * n] for i in range(len(self.views))]

    def read(
        self,
        client: Any,
        columns: Mapping[str, Sequence[Any]],
        *,
        now_s: float,
        enforce_ttl: bool = True,
    ) -> list[ViewRead]:
        """Fetch and decode; values past their view's ttl at ``now_s`` withheld."""
        out: list[ViewRead] = []
        for plan, block in zip(self.views, self.fetch(client, columns), strict=True):
            nf = len(plan.features)
            n = len(block)
            values: list[list[Any]] = [[None] * n for _ in range(nf)]
            stamps: list[tuple[int, int] | None] = [None] * n
            stale = [False] * n
            ttl_s = plan.ttl_s if enforce_ttl else None
            for i, reply in enumerate(block):
                parts = decode_timestamp_parts(reply[nf])
                if parts is None:
                    continue
                stamps[i] = parts
                if is_stale_epoch(parts[0] + parts[1] / 1e9, ttl_s, now_s):
                    stale[i] = True
                    continue
                for j in range(nf):
                    values[j][i] = decode_value(reply[j])
            out.append(ViewRead(plan, values, block, stamps, stale))
        return out


def _int64_frame(plan: ViewPlan, project: bytes) -> tuple[bytes, bytes] | None:
    """An int64-keyed view's HMGET command split around the key's 8 value
    bytes (``None`` for other key types): a read then frames each key with two
    concatenations (3x faster than framing each command at batch 100)."""
    if plan.value_type != VT_INT64:
        return None
    key = bulk(plan.prefix + _I64_SIZE + bytes(8) + project)
    at = len(key) - 2 - len(project) - 8  # bulk: header, key, CRLF
    head = command_head(b"HMGET", plan.nargs)
    return head + key[:at], key[at + 8 :] + plan.command_tail


def _as_columns(entity_rows: Any) -> dict[str, list[Any]]:
    """A list of row dicts or a mapping of columns, as equal-length columns."""
    if isinstance(entity_rows, list):
        if not entity_rows:
            raise UnsupportedRead("no entity rows")
        keys = list(entity_rows[0])
        try:
            columns = {k: [row[k] for row in entity_rows] for k in keys}
        except KeyError as exc:
            raise UnsupportedRead("ragged entity rows") from exc
        if len(entity_rows) > 1 and any(len(row) != len(keys) for row in entity_rows):
            raise UnsupportedRead("ragged entity rows")
        if keys:
            return columns  # equal, non-zero lengths
    elif isinstance(entity_rows, Mapping):
        columns = {}
        for k, v in entity_rows.items():
            if type(v) is not list and (
                not isinstance(v, Sequence) or isinstance(v, str | bytes)
            ):
                raise UnsupportedRead(f"entity column {k!r} is not a list")
            columns[k] = list(v)
    else:
        raise UnsupportedRead("entity rows of an unknown shape")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise UnsupportedRead("entity columns of different or zero lengths")
    return columns


def plan_read(
    registry: Any,
    project: str,
    features: Any,
    *,
    full_feature_names: bool = False,
) -> ReadPlan:
    """Plan a read with Feast's own request resolution.

    Raises ``UnsupportedRead`` for what the fast path does not cover
    (entityless views, join key maps, on-demand views written to the online
    store, ...), and Feast's own errors for unknown services, views or
    features. On-demand views read their sources here and are computed from
    the decoded columns (``on_demand``; Feast's transform where that module
    says).
    """
    from feature_platform.feast_compat import online_request_context

    context = online_request_context(registry, project, features, full_feature_names)
    if context.entityless:
        raise UnsupportedRead("entityless views")
    for odfv in context.on_demand_views:
        # Computed from the read (on_demand.py); the ones Feast writes to the
        # online store or aggregates stay on its path.
        if odfv.write_to_online_store or getattr(odfv, "aggregations", None):
            raise UnsupportedRead(
                f"on-demand view {odfv.name!r} is written to the online store "
                "or aggregates"
            )
    if getattr(features, "precompute_online", False):
        raise UnsupportedRead("precomputed feature service vectors")
    plans = [
        plan_view(v, names, full=full_feature_names)
        for v, names in context.grouped_refs
    ]
    outputs = [o for p in plans for o in p.outputs]
    if len(set(outputs)) != len(outputs):
        raise UnsupportedRead("colliding output names (Feast reports them)")
    return ReadPlan(plans, project, context, full_feature_names=full_feature_names)


# ------------------------------------------------------------- the plan cache


@dataclass(frozen=True)
class _Planned:
    registry: weakref.ref[Any]
    current: Callable[[Any], bool]  # feast_compat.snapshot_check of the snapshot
    plan: ReadPlan | None
    reason: str  # why not covered (plan None)


# (id(registry), project, request, full names) -> the plan of that snapshot.
# Keyed per registry: Feast keeps one process-wide resolution cache that
# stores with other registries (a second FeatureStore) keep clearing.
_PLANS: dict[tuple[Any, ...], _Planned] = {}


def cached_plan(
    config: Any,
    registry: Any,
    project: str,
    features: Any,
    *,
    full_feature_names: bool = False,
) -> ReadPlan:
    """THE plan cache: the ``ReadPlan`` of a request, kept while the registry
    snapshot it was made from is current (same snapshot, cache not expired).

    ``features``: a ``FeatureService``, its name (a ``str``: resolved from the
    registry only when planning) or a list of ``view:feature`` references.
    Raises ``UnsupportedRead`` when the fast path does not cover the request
    (remembered for the snapshot), and Feast's errors for unknown names.
    """
    if isinstance(features, str):
        wanted: Any = ("__fs__", features)
    else:
        name = getattr(features, "name", None)
        wanted = ("__fs__", name) if name is not None else tuple(features)
    key = (id(registry), project, wanted, full_feature_names)
    hit = _PLANS.get(key)
    if hit is not None and hit.registry() is registry and hit.current(registry):
        if hit.plan is None:
            raise UnsupportedRead(hit.reason)
        return hit.plan
    from feature_platform.feast_compat import snapshot_check, version_registry_snapshots

    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    version_registry_snapshots(registry)
    plan: ReadPlan | None = None
    reason = ""
    try:
        check_store_config(config)
        request = (
            registry.get_feature_service(features, project, allow_cache=True)
            if isinstance(features, str)
            else features
        )
        plan = plan_read(
            registry, project, request, full_feature_names=full_feature_names
        )
    except UnsupportedRead as exc:
        reason = str(exc)
        raise
    finally:  # planned, or found not coverable, for this snapshot
        if plan is not None or reason:
            _PLANS[key] = _Planned(
                weakref.ref(registry), snapshot_check(registry), plan, reason
            )
    assert plan is not None
    return plan


class FastOnlineReader:
    """Reads one feature service (or a fixed feature list) from Redis, fast.

    Build it once and call :meth:`read` per request: the plan comes from
    ``cached_plan`` (re-planned when the registry snapshot changes), the read
    and its response from the same code as the online store plugin's. Returns
    the same dict as ``store.get_online_features(...).to_dict()``, with
    freshness enforced.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        feature_service: str | None = None,
        features: Sequence[str] | None = None,
        enforce_ttl: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from feature_platform.feast_compat import provider, redis_client
        from feature_platform.online_store.response import PlatformOnlineResponse

        if (feature_service is None) == (features is None):
            raise ValueError("pass exactly one of feature_service and features")
        for ref in features or []:
            parse_ref(ref)  # InvalidFeatureReference (a ValueError) naming it
        self._store = store
        self._request: Any = (
            feature_service if feature_service is not None else list(features or [])
        )
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        self._response = PlatformOnlineResponse  # (response imports Feast)
        plan = self._plan()  # unsupported or unknown: raises here
        self.join_keys = plan.join_keys
        self.feature_names = plan.feature_names
        online = provider(store).online_store
        self._client = redis_client(online, store.config.online_store)

    def _plan(self) -> ReadPlan:
        store = self._store
        return cached_plan(store.config, store.registry, store.project, self._request)

    def read(
        self,
        entity_rows: Sequence[dict[str, Any]],
        *,
        now: datetime | None = None,
        include_status: bool = False,
    ) -> dict[str, list[Any]]:
        """Feature values for ``entity_rows`` (``to_dict()`` of the plugin's
        response). With ``include_status`` a ``"__status__"`` entry maps each
        feature column to its per-row status names (``ViewRead.statuses``)."""
        if not entity_rows:
            raise ValueError("entity_rows is empty")
        plan = self._plan()
        rows = entity_rows if isinstance(entity_rows, list) else list(entity_rows)
        try:
            columns = plan.entity_columns(rows)
        except UnsupportedRead as exc:
            _check_join_keys(plan, rows)
            raise ValueError(f"entity rows the fast reader cannot read: {exc}") from exc
        for key in plan.join_keys:
            if key not in columns:  # no row has it
                _check_join_keys(plan, rows)
        now_s = ensure_utc(now, "now").timestamp() if now is not None else self._clock()
        reads = plan.read(
            self._client, columns, now_s=now_s, enforce_ttl=self._enforce_ttl
        )
        result = self._response(plan, columns, reads).to_dict()
        if include_status:
            result["__status__"] = {  # type: ignore[assignment]
                name: view.statuses for view in reads for name in view.plan.outputs
            }
        return result


def _check_join_keys(plan: ReadPlan, rows: Sequence[Mapping[str, Any]]) -> None:
    for key in plan.join_keys:
        if any(key not in row for row in rows):
            raise ValueError(f"entity row lacks join key {key!r}")
