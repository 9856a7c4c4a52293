"""The platform's online stores, plugged into Feast by class path.

``online_store: type: feature_platform.online_store.PlatformRedisOnlineStore``
(every Redis profile) makes every Feast entry point carry the platform's read
and write behaviour: ``FeatureStore.get_online_features`` in a notebook,
``feast serve`` (and so Feast's remote online store client), the platform's
own server and functions. It is Feast's ``RedisOnlineStore`` with the same
config keys (plus ``enforce_ttl``), the same Redis key and value format byte for
byte, and:

* ``get_online_features`` / ``get_online_features_async``: planned once per
  registry snapshot and request, one pipelined round trip, values decoded from
  their wire bytes (``reader``), and a lazily built ``OnlineResponse``: its
  ``to_dict()``/``to_df()`` come from the decoded columns, its ``proto`` (what
  ``feast serve`` encodes) is assembled only when asked for;
* freshness on every read: a value older than its view's ttl comes back null
  with status ``OUTSIDE_MAX_AGE`` (Feast 0.67 returns it as ``PRESENT``,
  feast#6821). Reads the fast path does not cover (on-demand views, join key
  maps, Redis Cluster, ...) take Feast's own path and get the same rule applied
  to its response; ``online_read`` returns stale rows with null values;
* ``online_write_batch`` (pushes, Feast's engines): the rows' pii fields are
  masked (``feature_platform.pii``) and the HSETs go out as one pre-packed
  pipeline with Feast's skip-if-not-newer rule. Bulk materialization uses the
  streaming writer (``writer``) through the batch engine plugin.

``PlatformSqliteOnlineStore`` gives the embedded ``local`` profile the same
freshness rule over Feast's SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.online_response import TIMESTAMP_POSTFIX, OnlineResponse

from feature_platform.errors import OnlineStoreUnavailable
from feature_platform.online_store.reader import (
    ReadPlan,
    UnsupportedRead,
    ViewRead,
    check_store_config,
    plan_read,
)

__all__ = [
    "PlatformOnlineResponse",
    "PlatformRedisOnlineStore",
    "PlatformRedisOnlineStoreConfig",
    "PlatformSqliteOnlineStore",
    "PlatformSqliteOnlineStoreConfig",
]

REDIS_TYPE = "feature_platform.online_store.PlatformRedisOnlineStore"
SQLITE_TYPE = "feature_platform.online_store.PlatformSqliteOnlineStore"
_MAX_PLANS = 256


class PlatformRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis config keys, plus ``enforce_ttl`` (default on)."""

    type: Literal["feature_platform.online_store.PlatformRedisOnlineStore"] = (  # type: ignore[assignment]
        "feature_platform.online_store.PlatformRedisOnlineStore"  # type: ignore[assignment]
    )
    enforce_ttl: bool = True
    """Withhold values older than their view's ttl (OUTSIDE_MAX_AGE). Off only
    to compare with plain Feast."""
    connect_timeout_s: float = 0.25
    """Connect timeout of the client (unless the connection string sets one)."""
    read_timeout_s: float = 2.0
    """Read timeout of the client (unless the connection string sets one)."""
    breaker_cooldown_s: float = 0.5
    """After a failed read, reads fail at once for this long, then one tries."""


class PlatformSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast's SQLite config keys, plus ``enforce_ttl`` (default on)."""

    type: Literal["feature_platform.online_store.PlatformSqliteOnlineStore"] = (  # type: ignore[assignment]
        "feature_platform.online_store.PlatformSqliteOnlineStore"  # type: ignore[assignment]
    )
    enforce_ttl: bool = True


def _enforcing(config: Any) -> bool:
    return bool(getattr(config.online_store, "enforce_ttl", True))


class _FreshReads:
    """Freshness over Feast's own read paths (mixed into an online store)."""

    _fast = False  # a store with a fast read path sets it and has _fast_read

    @contextlib.contextmanager
    def _reading(self, config: Any) -> Iterator[None]:
        """Around every read; the Redis store fails fast through it."""
        yield

    def _fast_read(  # type: ignore[no-untyped-def]
        self, config, features, entity_rows, registry, project, full_feature_names
    ):
        raise UnsupportedRead("no fast read path")

    def get_online_features(  # type: ignore[no-untyped-def]
        self,
        config,
        features,
        entity_rows,
        registry,
        project,
        full_feature_names=False,
        include_feature_view_version_metadata=False,
    ):
        request = (config, features, entity_rows, registry, project)
        with self._reading(config):
            if self._fast and not include_feature_view_version_metadata:
                try:
                    return self._fast_read(*request, full_feature_names)
                except UnsupportedRead:
                    pass
            response = super().get_online_features(  # type: ignore[misc]
                *request, full_feature_names, include_feature_view_version_metadata
            )
        return self._fresh(
            response, config, registry, project, features, full_feature_names
        )

    async def get_online_features_async(  # type: ignore[no-untyped-def]
        self,
        config,
        features,
        entity_rows,
        registry,
        project,
        full_feature_names=False,
        include_feature_view_version_metadata=False,
    ):
        request = (config, features, entity_rows, registry, project)
        with self._reading(config):
            if self._fast and not include_feature_view_version_metadata:
                try:
                    # One short blocking round trip on a pooled connection, off
                    # the event loop.
                    return await asyncio.to_thread(
                        self._fast_read, *request, full_feature_names
                    )
                except UnsupportedRead:
                    pass
            response = await super().get_online_features_async(  # type: ignore[misc]
                *request, full_feature_names, include_feature_view_version_metadata
            )
        return self._fresh(
            response, config, registry, project, features, full_feature_names
        )

    # Feast's own read fills the response view by view, then computes the
    # on-demand features from it. The ttl rule must be applied in between:
    # applied to the finished response (``_fresh``), the stored columns come
    # back null but the on-demand outputs were computed from the stale values
    # (training, where the point-in-time join gives NULL past the ttl, saw
    # other numbers). Feast's Redis store reads every view in one pipeline
    # here without ``online_read``, so the rule in ``online_read`` never runs
    # on it. (A Feast method, pinned in tests/unit/test_feast_compat.py.)
    def _read_features_per_fv(  # type: ignore[no-untyped-def]
        self,
        config,
        grouped_refs,
        join_key_values,
        entity_name_to_join_key_map,
        online_features_response,
        full_feature_names,
        include_feature_view_version_metadata,
    ):
        super()._read_features_per_fv(  # type: ignore[misc]
            config,
            grouped_refs,
            join_key_values,
            entity_name_to_join_key_map,
            online_features_response,
            full_feature_names,
            include_feature_view_version_metadata,
        )
        self._fresh_read(
            config, grouped_refs, online_features_response, full_feature_names
        )

    async def _read_features_per_fv_async(  # type: ignore[no-untyped-def]
        self,
        config,
        grouped_refs,
        join_key_values,
        entity_name_to_join_key_map,
        online_features_response,
        full_feature_names,
        include_feature_view_version_metadata,
    ):
        await super()._read_features_per_fv_async(  # type: ignore[misc]
            config,
            grouped_refs,
            join_key_values,
            entity_name_to_join_key_map,
            online_features_response,
            full_feature_names,
            include_feature_view_version_metadata,
        )
        self._fresh_read(
            config, grouped_refs, online_features_response, full_feature_names
        )

    def _fresh_read(
        self, config: Any, grouped_refs: Any, proto: Any, full_feature_names: bool
    ) -> None:
        """The ttl rule on a response proto Feast is still filling."""
        import types

        from feature_platform.freshness import column_ttls, enforce_on_response

        if _enforcing(config):
            ttls = column_ttls(grouped_refs, full_feature_names=full_feature_names)
            enforce_on_response(types.SimpleNamespace(proto=proto), ttls)  # type: ignore[arg-type]

    def online_read(self, config, table, entity_keys, requested_features=None):  # type: ignore[no-untyped-def]
        rows = super().online_read(config, table, entity_keys, requested_features)  # type: ignore[misc]
        return self._fresh_rows(config, table, rows)

    async def online_read_async(  # type: ignore[no-untyped-def]
        self, config, table, entity_keys, requested_features=None
    ):
        rows = await super().online_read_async(  # type: ignore[misc]
            config, table, entity_keys, requested_features
        )
        return self._fresh_rows(config, table, rows)

    def _fresh(
        self,
        response: OnlineResponse,
        config: Any,
        registry: Any,
        project: str,
        features: Any,
        full_feature_names: bool,
    ) -> OnlineResponse:
        from feature_platform.feast_compat import online_request_context
        from feature_platform.freshness import column_ttls, enforce_on_response

        if _enforcing(config):
            context = online_request_context(
                registry, project, features, full_feature_names
            )
            ttls = column_ttls(context[5], full_feature_names=full_feature_names)
            enforce_on_response(response, ttls)
        return response

    def _fresh_rows(self, config: Any, table: Any, rows: list) -> list:
        """``online_read`` rows with values past the view's ttl nulled."""
        from feast.protos.feast.types.Value_pb2 import Value

        from feature_platform.freshness import is_stale_epoch, now_seconds, ttl_seconds

        ttl_s = ttl_seconds(table.ttl)
        if ttl_s is None or not _enforcing(config):
            return rows
        now_s = now_seconds()
        out = []
        for ts, values in rows:
            event_s = ts.timestamp() if isinstance(ts, datetime) else None
            if values is not None and is_stale_epoch(event_s, ttl_s, now_s):
                values = {name: Value() for name in values}
            out.append((ts, values))
        return out


class PlatformSqliteOnlineStore(_FreshReads, SqliteOnlineStore):
    """Feast's SQLite online store with the ttl rule applied to every read."""


def _redis_connection_error() -> type[Exception]:
    import redis.exceptions as redis_errors

    return redis_errors.ConnectionError


class _RedisUnavailable(OnlineStoreUnavailable, _redis_connection_error()):  # type: ignore[misc]
    """``errors.OnlineStoreUnavailable`` as this plugin raises it: also a redis
    ``ConnectionError``, so code written against Feast's Redis store catches it
    as it would Feast's own error."""


class _Breaker:
    """A small circuit breaker: open for ``cooldown_s`` after a failure."""

    def __init__(self, cooldown_s: float, target: str) -> None:
        self.cooldown_s = cooldown_s
        self.target = target.split(",", 1)[0]  # host:port, never the password
        self._open_until = 0.0
        self._last: str = ""
        self._lock = threading.Lock()

    def closed(self) -> bool:
        return time.monotonic() >= self._open_until

    def describe(self) -> str:
        return (
            f"online store (Redis {self.target}) is unavailable: {self._last}; "
            f"reads fail at once for {self.cooldown_s:g}s, then retry"
        )

    def before(self) -> None:
        if not self.closed():
            raise _RedisUnavailable(self.describe())

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self._last = f"{type(exc).__name__}: {exc}"
            self._open_until = time.monotonic() + self.cooldown_s

    def success(self) -> None:
        if self._open_until:
            with self._lock:
                self._open_until = 0.0


class PlatformOnlineResponse(OnlineResponse):
    """An ``OnlineResponse`` built from decoded columns; its proto on demand.

    ``to_dict()`` (and ``to_df``/``to_arrow``, which use it) returns the decoded
    columns (the same values Feast's proto conversion gives); ``proto`` is
    assembled the first time it is read (``feast serve`` encodes it), after
    which every method reads the proto, as Feast's own response does.
    """

    def __init__(
        self,
        entity_columns: dict[str, list[Any]],
        entity_types: Mapping[str, Any],
        reads: list[ViewRead],
        feature_types: dict[str, Any],
    ) -> None:
        self._entity_columns = entity_columns
        self._entity_types = entity_types
        self._reads = reads
        self._feature_types = feature_types
        self._proto: Any = None

    @property  # type: ignore[override]
    def proto(self) -> Any:
        if self._proto is None:
            self._proto = self._build_proto()
        return self._proto

    @proto.setter
    def proto(self, value: Any) -> None:
        self._proto = value

    def _build_proto(self) -> Any:
        from feast.protos.feast.serving.ServingService_pb2 import (
            FieldStatus,
            GetOnlineFeaturesResponse,
        )
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import python_values_to_proto_values
        from google.protobuf.timestamp_pb2 import Timestamp

        vector = GetOnlineFeaturesResponse.FeatureVector
        response = GetOnlineFeaturesResponse(results=[])
        names = response.metadata.feature_names.val
        empty_ts = Timestamp()
        for key, values in self._entity_columns.items():
            n = len(values)
            names.append(key)
            response.results.append(
                vector(
                    values=python_values_to_proto_values(
                        values, self._entity_types[key]
                    ),
                    statuses=[FieldStatus.PRESENT] * n,
                    event_timestamps=[empty_ts] * n,
                )
            )
        for view in self._reads:
            stamps = [
                Timestamp(seconds=s[0], nanos=s[1]) if s else empty_ts
                for s in view.stamps
            ]
            for j, name in enumerate(view.plan.outputs):
                names.append(name)
                values = [
                    Value() if stale or reply[j] is None else Value.FromString(reply[j])
                    for reply, stale in zip(view.raw, view.stale, strict=True)
                ]
                statuses = [
                    FieldStatus.OUTSIDE_MAX_AGE if stale else FieldStatus.PRESENT
                    for stale in view.stale
                ]
                response.results.append(
                    vector(values=values, statuses=statuses, event_timestamps=stamps)
                )
        return response

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, Any]:
        if self._proto is not None:  # read (and maybe changed) as a proto
            return super().to_dict(include_event_timestamps)
        out: dict[str, Any] = {}
        for key, values in self._entity_columns.items():
            out[key] = list(values)
            if include_event_timestamps:
                out[key + TIMESTAMP_POSTFIX] = [0] * len(values)
        for view in self._reads:
            seconds = [s[0] if s else 0 for s in view.stamps]
            for name, column in zip(view.plan.outputs, view.values, strict=True):
                out[name] = list(column)
                if include_event_timestamps:
                    out[name + TIMESTAMP_POSTFIX] = list(seconds)
        return out


def _entity_columns(
    entity_rows: Any, join_keys: Any, entity_types: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """Entity rows (list of dicts or columns) as native columns of join keys.

    Only what the fast path can encode exactly as Feast would: native ints for
    integer keys, ``str`` for string keys. Anything else (protos, entity names,
    other types) raises ``UnsupportedRead`` and Feast's path answers it.
    """
    import numbers

    from feast.value_type import ValueType

    if isinstance(entity_rows, list):
        if not entity_rows:
            raise UnsupportedRead("no entity rows")
        keys = list(entity_rows[0])
        try:
            columns = {k: [row[k] for row in entity_rows] for k in keys}
        except KeyError as exc:
            raise UnsupportedRead("ragged entity rows") from exc
        if any(len(row) != len(keys) for row in entity_rows):
            raise UnsupportedRead("ragged entity rows")
    elif isinstance(entity_rows, Mapping):
        columns = {}
        for k, v in entity_rows.items():
            if not isinstance(v, Sequence) or isinstance(v, str | bytes):
                raise UnsupportedRead(f"entity column {k!r} is not a list")
            columns[k] = list(v)
    else:
        raise UnsupportedRead("entity rows of an unknown shape")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise UnsupportedRead("entity columns of different or zero lengths")
    out: dict[str, list[Any]] = {}
    for key, values in columns.items():
        if key not in join_keys:
            continue  # Feast skips keys that are not join keys
        vtype = entity_types.get(key)
        if vtype in (ValueType.INT64, ValueType.INT32):
            if not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool)
                for v in values
            ):
                raise UnsupportedRead(f"{key}: not all integers")
            out[key] = [int(v) for v in values]
        elif vtype == ValueType.STRING:
            if not all(isinstance(v, str) for v in values):
                raise UnsupportedRead(f"{key}: not all strings")
            out[key] = values
        else:
            raise UnsupportedRead(f"{key}: entity type {vtype}")
    return out


class PlatformRedisOnlineStore(_FreshReads, RedisOnlineStore):
    """Feast's Redis online store with the platform's fast, fresh reads and writes."""

    _fast = True
    _breaker: _Breaker | None = None

    # ------------------------------------------------------- failing fast

    def _get_client(self, online_store_config: Any) -> Any:  # type: ignore[override]
        """Feast's client, made to fail fast: connect/read timeouts (unless the
        connection string sets them) and no blind retries (redis-py retries a
        refused connection with backoff for seconds by default)."""
        fresh = self._client is None
        client = super()._get_client(online_store_config)
        if fresh:
            from feature_platform.feast_compat import fail_fast_redis

            fail_fast_redis(
                client,
                connect_timeout_s=getattr(
                    online_store_config, "connect_timeout_s", 0.25
                ),
                read_timeout_s=getattr(online_store_config, "read_timeout_s", 2.0),
            )
        return client

    @contextlib.contextmanager
    def _reading(self, config: Any) -> Iterator[None]:
        """Reads through a circuit breaker: after a connection failure, reads
        fail at once (``OnlineStoreUnavailable``, a redis ``ConnectionError``)
        for ``breaker_cooldown_s``, then the next read tries Redis again."""
        import redis.exceptions as redis_errors

        breaker = self._breaker
        if breaker is None:
            breaker = self._breaker = _Breaker(
                float(getattr(config.online_store, "breaker_cooldown_s", 0.5)),
                str(getattr(config.online_store, "connection_string", "")),
            )
        breaker.before()
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            if isinstance(exc, OnlineStoreUnavailable):
                raise
            breaker.failure(exc)
            raise _RedisUnavailable(breaker.describe()) from exc
        breaker.success()

    def ping(self, config: Any) -> None:
        """Raise ``OnlineStoreUnavailable`` unless Redis answers (through the
        breaker, so a health probe and the reads see the same state)."""
        with self._reading(config):
            self._get_client(config.online_store).ping()

    _plans: dict[tuple[Any, ...], tuple[Any, Any, Any]] | None = None

    # ----------------------------------------------------------------- reads

    def _plan(
        self, config: Any, registry: Any, project: str, features: Any, full: bool
    ) -> tuple[ReadPlan, tuple[Any, ...], dict[str, Any]]:
        """The read plan of a request, kept while the registry snapshot it was
        made from is current (same snapshot, cache not expired). Keyed per
        registry: Feast keeps one process-wide resolution cache that stores with
        other registries (a second FeatureStore) keep clearing.
        """
        from feature_platform.feast_compat import (
            online_request_context,
            registry_snapshot_stamp,
            version_registry_snapshots,
        )

        name = getattr(features, "name", None)
        wanted = ("__fs__", name) if name is not None else tuple(features)
        key = (id(registry), project, wanted, full)
        plans = self._plans
        if plans is None:
            plans = self._plans = {}
        hit = plans.get(key)
        stamp = registry_snapshot_stamp(registry)
        if (
            hit is not None
            and hit[0] is registry
            and stamp is not None
            and hit[1] == stamp
            and registry.is_cache_valid()
        ):
            cached_context, cached_plan, cached_types = hit[2]
            if cached_plan is None:
                raise UnsupportedRead("planned before: not covered")
            return cached_plan, cached_context, cached_types
        if len(plans) >= _MAX_PLANS:
            plans.clear()
        version_registry_snapshots(registry)
        context = online_request_context(registry, project, features, full)
        feature_types = self._build_feature_types(context[5])
        plan: ReadPlan | None = None
        try:
            check_store_config(config)
            plan = plan_read(registry, project, features, full_feature_names=full)[0]
        finally:  # planned (or found not coverable) for this snapshot
            entry = (context, plan, feature_types)
            plans[key] = (registry, registry_snapshot_stamp(registry), entry)
        return plan, context, feature_types

    def _fast_read(
        self,
        config: Any,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool,
    ) -> PlatformOnlineResponse:
        from feature_platform.feast_compat import redis_client
        from feature_platform.freshness import now_seconds

        plan, context, feature_types = self._plan(
            config, registry, project, features, full_feature_names
        )
        entity_types, join_keys = context[3], context[4]
        columns = _entity_columns(entity_rows, join_keys, entity_types)
        reads = plan.read(
            redis_client(self, config.online_store),
            columns,
            now_s=now_seconds(),
            enforce_ttl=_enforcing(config),
        )
        return PlatformOnlineResponse(columns, entity_types, reads, feature_types)

    # ---------------------------------------------------------------- writes

    def online_write_batch(self, config, table, data, progress):  # type: ignore[no-untyped-def]
        """Feast's write (same keys, bytes, skip rule, key ttl), pii masked, with
        the commands pre-packed into one pipeline per round trip."""
        from feature_platform.pii import mask_proto_rows

        data = mask_proto_rows(table, data)
        try:
            check_store_config(config)
        except UnsupportedRead:
            return super().online_write_batch(config, table, data, progress)
        if not data:
            return None
        from feature_platform.feast_compat import redis_client
        from feature_platform.online_store.writer import write_proto_rows

        write_proto_rows(redis_client(self, config.online_store), config, table, data)
        if progress:
            progress(len(data))
        return None
