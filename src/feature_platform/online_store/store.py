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
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.online_response import OnlineResponse

from feature_platform.errors import OnlineStoreUnavailable, is_unavailable
from feature_platform.feast_compat import (
    AfterViewReads,
    FailFastRedisClient,
    redis_client,
)
from feature_platform.freshness import now_seconds
from feature_platform.online_store.reader import (
    UnsupportedRead,
    cached_plan,
    check_store_config,
)
from feature_platform.online_store.response import PlatformOnlineResponse

__all__ = [
    "PlatformOnlineResponse",
    "PlatformRedisOnlineStore",
    "PlatformRedisOnlineStoreConfig",
    "PlatformSqliteOnlineStore",
    "PlatformSqliteOnlineStoreConfig",
]

REDIS_TYPE = "feature_platform.online_store.PlatformRedisOnlineStore"
SQLITE_TYPE = "feature_platform.online_store.PlatformSqliteOnlineStore"


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


class _FreshReads(AfterViewReads):
    """Freshness over Feast's own read paths (mixed into an online store)."""

    _fast = False  # a store with a fast read path sets it and has fast_read

    @contextlib.contextmanager
    def _reading(self, config: Any) -> Iterator[None]:
        """Around every read; the Redis store fails fast through it."""
        yield

    def fast_read(  # type: ignore[no-untyped-def]
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
        if self._fast and not include_feature_view_version_metadata:
            try:
                return self.fast_read(*request, full_feature_names)
            except UnsupportedRead:
                pass
        with self._reading(config):
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
        if self._fast and not include_feature_view_version_metadata:
            try:
                # One short blocking round trip on a pooled connection, off
                # the event loop.
                return await asyncio.to_thread(
                    self.fast_read, *request, full_feature_names
                )
            except UnsupportedRead:
                pass
        with self._reading(config):
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
    # without ``online_read``, so the rule in ``online_read`` never runs on it.
    # Feast calls ``after_view_reads`` from its per-view read hook
    # (``feast_compat.AfterViewReads``).
    def after_view_reads(
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
            ttls = column_ttls(
                context.grouped_refs, full_feature_names=full_feature_names
            )
            enforce_on_response(response, ttls)
        return response

    def _fresh_rows(self, config: Any, table: Any, rows: list) -> list:
        """``online_read`` rows with values past the view's ttl nulled."""
        from feast.protos.feast.types.Value_pb2 import Value

        from feature_platform.freshness import is_stale_epoch, ttl_seconds

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


class PlatformRedisOnlineStore(_FreshReads, FailFastRedisClient, RedisOnlineStore):
    """Feast's Redis online store with the platform's fast, fresh reads and writes."""

    _fast = True
    _breaker: _Breaker | None = None

    # ------------------------------------------------------- failing fast
    # (the client's timeouts and no blind retries: feast_compat.FailFastRedisClient)

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
            redis_client(self, config.online_store).ping()

    # ----------------------------------------------------------------- reads

    def fast_read(
        self,
        config: Any,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        *,
        now_s: float | None = None,
        enforce_ttl: bool | None = None,
    ) -> PlatformOnlineResponse:
        """The read on the fast path (``reader``), through the circuit breaker.

        ``features``: a ``FeatureService``, its name or ``view:feature``
        references; ``entity_rows``: row dicts or columns. Raises
        ``UnsupportedRead`` for what only Feast's path serves. Freshness is
        judged at ``now_s`` (default ``freshness.now_seconds()``), enforced
        unless ``enforce_ttl`` (default the config's) is off.
        """
        plan = cached_plan(
            config, registry, project, features, full_feature_names=full_feature_names
        )
        columns = plan.entity_columns(entity_rows)
        client = redis_client(self, config.online_store)
        now = now_seconds() if now_s is None else now_s
        enforce = _enforcing(config) if enforce_ttl is None else enforce_ttl
        breaker = self._breaker
        if breaker is None or not breaker.closed():
            with self._reading(config):  # builds it / fails fast while open
                reads = plan.read(client, columns, now_s=now, enforce_ttl=enforce)
            return PlatformOnlineResponse(plan, columns, reads)
        # The breaker is closed (the usual case): _reading's rule without a
        # generator context manager per read (a few us each).
        try:
            reads = plan.read(client, columns, now_s=now, enforce_ttl=enforce)
        except Exception as exc:
            if is_unavailable(exc):
                raise self._failed(breaker, exc) from exc
            raise
        breaker.success()
        return PlatformOnlineResponse(plan, columns, reads)

    @staticmethod
    def _failed(breaker: _Breaker, exc: BaseException) -> BaseException:
        if isinstance(exc, OnlineStoreUnavailable):
            return exc
        breaker.failure(exc)
        return _RedisUnavailable(breaker.describe())

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
        from feature_platform.online_store.writer import write_proto_rows

        write_proto_rows(redis_client(self, config.online_store), config, table, data)
        if progress:
            progress(len(data))
        return None
