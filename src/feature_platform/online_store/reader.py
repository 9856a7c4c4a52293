"""The lean online read path over Feast's Redis format.

Feast's Redis read builds entity key protos, serializes them, runs a redis-py
pipeline, parses every value into a ``ValueProto`` and assembles an
``OnlineResponse`` proto on every call. This module does the same read with
the per-request work cut to what depends on the request:

* a read is planned once per (registry snapshot, feature list/service) from
  Feast's own resolution of the request (``feast_compat.online_request_context``:
  the same views, projections, feature order and errors as Feast): the Redis
  hash fields ``mmh3("<view>:<feature>")`` and ``_ts:<view>``, the v3 entity
  key prefix, the ttl;
* entity keys are serialized with the precomputed prefix plus the project
  suffix (``codec``), so plain ``feast`` reads and writes the very same hashes;
* all HMGETs of a request go out as one pre-packed pipelined write on one
  connection and come back in one read (hiredis parses the replies);
* values are decoded from their protobuf wire bytes directly, and the
  freshness rule (``feature_platform.freshness.is_stale_epoch``) is applied per
  row: a value older than its view's ttl is withheld.

``ReadPlan.read`` returns the decoded columns (``ViewRead`` per view); the
online store plugin turns them into Feast's ``OnlineResponse``, the feature
server into Feast's JSON, ``FastOnlineReader`` into a ``to_dict``-style dict.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.feature_refs import parse_ref
from feature_platform.freshness import is_stale_epoch, ttl_seconds
from feature_platform.online_store.codec import (
    STATUS_NOT_FOUND,
    STATUS_NULL_VALUE,
    STATUS_OUTSIDE_MAX_AGE,
    STATUS_PRESENT,
    VT_INT32,
    VT_INT64,
    VT_STRING,
    decode_timestamp_parts,
    decode_value,
    encode_entity_value,
    entity_key_prefix,
)
from feature_platform.utc import ensure_utc

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "FastOnlineReader",
    "ReadPlan",
    "UnsupportedRead",
    "ViewPlan",
    "ViewRead",
    "check_store_config",
    "plan_read",
]

_I64_SIZE = b"\x08\x00\x00\x00"
_PACK_I64 = struct.Struct("<q").pack


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


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


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
        command_tail=b"".join(_bulk(f) for f in fields),
        nargs=2 + len(fields),
        ttl_s=ttl_seconds(view.ttl),
    )


class ReadPlan:
    """A planned read of several views: keys, one pipelined fetch, decoding."""

    def __init__(self, views: Sequence[ViewPlan], project: str) -> None:
        self.views = list(views)
        self.project = project.encode("utf8")
        self.join_keys: list[str] = list(dict.fromkeys(p.join_key for p in views))
        self.feature_names = [o for p in views for o in p.outputs]

    def _keys(self, plan: ViewPlan, values: Sequence[Any]) -> list[bytes]:
        prefix, project = plan.prefix, self.project
        try:
            if plan.value_type == VT_INT64:
                pack = _PACK_I64
                return [prefix + _I64_SIZE + pack(v) + project for v in values]
            return [
                prefix + encode_entity_value(v, plan.value_type) + project
                for v in values
            ]
        except (struct.error, TypeError, ValueError) as exc:
            # Out of range or not a number: Feast's path reports it its way.
            raise UnsupportedRead(f"{plan.join_key}: {exc}") from exc

    def fetch(self, client: Any, columns: Mapping[str, Sequence[Any]]) -> list[list]:
        """Raw HMGET replies per view (features..., then ``_ts``) for entity columns."""
        n = len(next(iter(columns.values()), []))
        if n == 0:
            raise ValueError("no entity rows")
        commands: list[bytes] = []
        for plan in self.views:
            if plan.join_key not in columns:
                raise ValueError(f"entities lack join key {plan.join_key!r}")
            head = b"*%d\r\n$5\r\nHMGET\r\n" % plan.nargs
            tail = plan.command_tail
            for k in self._keys(plan, columns[plan.join_key]):
                commands.append(b"%s$%d\r\n%s\r\n%s" % (head, len(k), k, tail))
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


def round_trip(client: Any, commands: list[bytes]) -> list[Any]:
    """Send pre-packed commands on one pooled connection; read every reply."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([b"".join(commands)], check_health=False)
        replies = [conn.read_response() for _ in range(len(commands))]
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return replies


def plan_read(
    registry: Any,
    project: str,
    features: Any,
    *,
    full_feature_names: bool = False,
) -> tuple[ReadPlan, tuple[Any, ...]]:
    """Plan a read with Feast's own request resolution; ``(plan, Feast context)``.

    Raises ``UnsupportedRead`` for what the fast path does not cover
    (on-demand views, request data, entityless views, join key maps, ...), and
    Feast's own errors for unknown services, views or features.
    """
    from feature_platform.feast_compat import online_request_context

    context = online_request_context(registry, project, features, full_feature_names)
    (_refs, odfvs, _names, _types, _keys, grouped, _rows, request_data, entityless) = (
        context
    )
    if odfvs or request_data or entityless:
        raise UnsupportedRead("on-demand views, request data or entityless views")
    if getattr(features, "precompute_online", False):
        raise UnsupportedRead("precomputed feature service vectors")
    plans = [plan_view(v, names, full=full_feature_names) for v, names in grouped]
    outputs = [o for p in plans for o in p.outputs]
    if len(set(outputs)) != len(outputs):
        raise UnsupportedRead("colliding output names (Feast reports them)")
    return ReadPlan(plans, project), context


class FastOnlineReader:
    """Reads one feature service (or a fixed feature list) from Redis, fast.

    Build it once per process (it plans from the registry's current snapshot)
    and call :meth:`read` per request. Returns the same dict as
    ``store.get_online_features(...).to_dict()``, with freshness enforced.
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

        if (feature_service is None) == (features is None):
            raise ValueError("pass exactly one of feature_service and features")
        check_store_config(store.config)
        for ref in features or []:
            parse_ref(ref)  # InvalidFeatureReference (a ValueError) naming it
        request: Any = (
            store.get_feature_service(feature_service, allow_cache=True)
            if feature_service is not None
            else list(features or [])
        )
        self._plan, _context = plan_read(store.registry, store.project, request)
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        self.join_keys = self._plan.join_keys
        self.feature_names = self._plan.feature_names
        online = provider(store).online_store
        self._client = redis_client(online, store.config.online_store)

    @property
    def views(self) -> list[tuple[str, tuple[str, ...], float | None]]:
        """``(output view name, output columns, ttl seconds or None)`` per view."""
        return [(p.name, p.outputs, p.ttl_s) for p in self._plan.views]

    def read_views(
        self, columns: Mapping[str, Sequence[Any]], *, now_s: float | None = None
    ) -> list[ViewRead]:
        """Decoded ``ViewRead`` per view for entity columns (freshness applied)."""
        return self._plan.read(
            self._client,
            columns,
            now_s=self._clock() if now_s is None else now_s,
            enforce_ttl=self._enforce_ttl,
        )

    def read(
        self,
        entity_rows: Sequence[dict[str, Any]],
        *,
        now: datetime | None = None,
        include_status: bool = False,
    ) -> dict[str, list[Any]]:
        """Feature values for ``entity_rows``; join key columns come first.

        With ``include_status`` a ``"__status__"`` entry maps each feature
        column to per-row status names (PRESENT, NULL_VALUE, NOT_FOUND,
        OUTSIDE_MAX_AGE).
        """
        if not entity_rows:
            raise ValueError("entity_rows is empty")
        columns: dict[str, list[Any]] = {}
        for key in self.join_keys:
            try:
                columns[key] = [row[key] for row in entity_rows]
            except KeyError as exc:
                raise ValueError(f"entity row lacks join key {key!r}") from exc
        now_s = ensure_utc(now, "now").timestamp() if now is not None else None
        reads = self.read_views(columns, now_s=now_s)

        result: dict[str, list[Any]] = {}
        # Like Feast: every entity column passed comes back, served keys first.
        entity_columns = dict.fromkeys(self.join_keys)
        for row in entity_rows:
            entity_columns.update(dict.fromkeys(row))
        for key in entity_columns:
            result[key] = [row.get(key) for row in entity_rows]
        statuses: dict[str, list[str]] = {}
        for view in reads:
            for name, column in zip(view.plan.outputs, view.values, strict=True):
                result[name] = column
                statuses[name] = [
                    STATUS_NOT_FOUND
                    if stamp is None
                    else STATUS_OUTSIDE_MAX_AGE
                    if stale
                    else STATUS_NULL_VALUE
                    if value is None
                    else STATUS_PRESENT
                    for value, stamp, stale in zip(
                        column, view.stamps, view.stale, strict=True
                    )
                ]
        if include_status:
            result["__status__"] = statuses  # type: ignore[assignment,unused-ignore]
        return result
