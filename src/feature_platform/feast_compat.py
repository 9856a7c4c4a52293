"""Every private Feast and redis-py symbol the platform touches, in one place.

Feast's plugin points (online store, batch engine, offline store) are public,
but a fast plugin needs a few of Feast's internals: the hash of a Redis field
name, the cached request resolution of an online read, the Arrow -> proto row
conversion, the provider of a store, a store's Redis client, and the socket of
a redis-py connection. They are imported here and nowhere else, each behind a
small function with the platform's name for it, and each is pinned by
``tests/unit/test_feast_compat.py``: a Feast or redis-py upgrade that moves one
fails that test first, and the fix is one line here.

Heavy imports stay inside the functions.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pyarrow as pa
    from fastapi import FastAPI
    from feast import FeatureStore, FeatureView

__all__ = [
    "AfterViewReads",
    "FailFastRedisClient",
    "RequestContext",
    "apply_on_demand_views",
    "arrow_to_proto_rows",
    "batch_engine",
    "bigquery_query_job",
    "connection_socket",
    "fail_fast_redis",
    "feature_field",
    "feast_metrics_on",
    "install_registry_snapshot",
    "online_request_context",
    "provider",
    "redis_client",
    "store_redis_client",
    "registry_snapshot_stamp",
    "remove_feast_route",
    "snapshot_check",
    "version_registry_snapshots",
    "write_saved_dataset",
]


def feature_field(view_name: str, feature: str) -> bytes:
    """The Redis hash field of a feature: murmur3 of ``"<view>:<feature>"``.

    (``feast.infra.online_stores.helpers._mmh3``.)
    """
    from feast.infra.online_stores.helpers import _mmh3

    return _mmh3(f"{view_name}:{feature}")


def provider(store: FeatureStore) -> Any:
    """The store's provider (``FeatureStore._get_provider``)."""
    return store._get_provider()


def feast_metrics_on() -> bool:
    """Whether Feast's offline metrics or offline audit log are switched on
    (``feast.metrics._config``): then a retrieval job must go through Feast's
    own ``to_df``, which records them."""
    from feast import metrics

    cfg = metrics._config
    return bool(cfg.offline_features or cfg.audit_logging)


def batch_engine(store: FeatureStore) -> Any:
    """The batch engine the store's profile configures (built by the provider)."""
    return provider(store).batch_engine


def redis_client(online_store: Any, online_config: Any) -> Any:
    """The redis-py client of a Redis online store.

    (``RedisOnlineStore._get_client``.)
    """
    return online_store._get_client(online_config)


def store_redis_client(store: FeatureStore) -> Any:
    """The redis-py client of a store's (Redis) online store."""
    return redis_client(provider(store).online_store, store.config.online_store)


class FailFastRedisClient:
    """Mixed in before Feast's ``RedisOnlineStore``: its client fails fast.

    Overrides ``RedisOnlineStore._get_client`` (which builds the client once,
    in ``self._client``): the first time, ``fail_fast_redis`` sets the
    timeouts the online store config names (``connect_timeout_s``,
    ``read_timeout_s``) and turns redis-py's blind retries off.
    """

    _client: Any

    def _get_client(self, online_store_config: Any) -> Any:
        client = self._client
        if client is not None:  # built (every read after the first)
            return client
        client = super()._get_client(online_store_config)  # type: ignore[misc]
        fail_fast_redis(
            client,
            connect_timeout_s=getattr(online_store_config, "connect_timeout_s", 0.25),
            read_timeout_s=getattr(online_store_config, "read_timeout_s", 2.0),
        )
        return client


def fail_fast_redis(
    client: Any, *, connect_timeout_s: float, read_timeout_s: float
) -> None:
    """Make a redis-py client (as Feast built it) fail fast: timeouts where the
    connection string set none, and no retries. Sets redis-py's connection-pool
    keyword arguments (``connection_pool.connection_kwargs``) before the first
    connection is made. (The platform's store overrides
    ``RedisOnlineStore._get_client`` to call this.)"""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    no_retry = Retry(NoBackoff(), 0)
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a cluster client: it routes and retries on its own
        return
    kwargs = pool.connection_kwargs
    if kwargs.get("socket_connect_timeout") is None:
        kwargs["socket_connect_timeout"] = connect_timeout_s
    if kwargs.get("socket_timeout") is None:
        kwargs["socket_timeout"] = read_timeout_s
    kwargs["retry"] = no_retry
    client.set_retry(no_retry)


def connection_socket(connection: Any) -> Any:
    """The socket of a connected redis-py ``Connection`` (``Connection._sock``)."""
    sock = connection._sock
    if sock is None:
        connection.connect()
        sock = connection._sock
    return sock


def arrow_to_proto_rows(
    table: pa.Table | pa.RecordBatch, view: FeatureView, join_keys: dict[str, Any]
) -> list[Any]:
    """Feast's rows for ``online_write_batch``.

    (``feast.utils._convert_arrow_to_proto``.)
    """
    from feast.utils import _convert_arrow_to_proto

    return _convert_arrow_to_proto(table, view, join_keys)


def write_saved_dataset(
    table: pa.Table, storage: Any, repo_path: str, *, allow_overwrite: bool
) -> None:
    """Write a retrieval's result where a saved dataset's storage says, exactly
    as Feast's DuckDB store's ``persist`` does (file, Delta, Lance or Iceberg;
    ``SavedDatasetLocationAlreadyExists`` unless ``allow_overwrite``).

    (``feast.infra.offline_stores.duckdb._write_data_source``.)
    """
    import ibis
    from feast.infra.offline_stores.duckdb import _write_data_source

    _write_data_source(
        ibis.memtable(table),
        storage.to_data_source(),
        repo_path,
        "overwrite",
        allow_overwrite,
    )


class AfterViewReads:
    """Mixed in before a Feast online store: ``after_view_reads`` runs once
    Feast's own read has filled the response with the stored views' values and
    before Feast computes on-demand features from it.

    Overrides Feast's per-view read hook ``OnlineStore._read_features_per_fv``
    (and its async twin), whose call order in ``get_online_features`` is pinned
    by ``tests/unit/test_feast_compat.py``.
    """

    def after_view_reads(
        self, config: Any, grouped_refs: Any, proto: Any, full_feature_names: bool
    ) -> None:
        """Called with Feast's response proto (features filled, on-demand
        features not yet computed)."""

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
        self.after_view_reads(
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
        self.after_view_reads(
            config, grouped_refs, online_features_response, full_feature_names
        )


class RequestContext(NamedTuple):
    """Feast's resolution of an online read request, by name (Feast returns a
    9-item tuple; ``feast.utils._get_cached_request_context``)."""

    feature_refs: list[str]
    on_demand_views: list[Any]
    entity_name_to_join_key: dict[str, str]
    entity_types: dict[str, Any]  # join key -> feast ValueType
    join_keys: set[str]
    grouped_refs: list[tuple[Any, list[str]]]  # (view with projection, features)
    result_row_names: set[str]
    request_data: set[str]
    entityless: bool


def online_request_context(
    registry: Any, project: str, features: Any, full_feature_names: bool
) -> RequestContext:
    """Feast's cached resolution of an online read request.

    (``feast.utils._get_cached_request_context``.) It raises Feast's own errors
    for unknown services, views and features, and views Feast would not serve
    now; Feast keeps its tuple while the registry cache is unchanged.
    """
    from feast.utils import _get_cached_request_context

    return RequestContext._make(
        _get_cached_request_context(registry, project, features, full_feature_names)
    )


def apply_on_demand_views(
    proto: Any,
    context: RequestContext,
    *,
    keep: set[str],
    full_feature_names: bool,
    feature_types: dict[str, Any],
) -> None:
    """What Feast's online read does after filling the stored views: compute
    the request's on-demand features from the response proto and drop the
    columns not asked for (inputs, request data), keeping join keys ``keep``.

    (``feast.utils._augment_response_with_on_demand_transforms`` and
    ``_drop_unneeded_columns``, as ``OnlineStore.get_online_features`` calls
    them.)
    """
    from feast import utils

    if context.on_demand_views:
        utils._augment_response_with_on_demand_transforms(
            proto,
            context.feature_refs,
            context.on_demand_views,
            full_feature_names,
            feature_types=feature_types,
        )
    utils._drop_unneeded_columns(proto, set(context.result_row_names) | keep)


def registry_snapshot_stamp(registry: Any) -> Any:
    """When the registry's cached snapshot was taken (changes on every refresh)."""
    return getattr(registry, "cached_registry_proto_created", None)


def snapshot_check(registry: Any) -> Callable[[Any], bool]:
    """A check that ``registry``'s current snapshot is still the one to read,
    by Feast's rule (``is_cache_valid``): the same snapshot
    (``cached_registry_proto_created``: a refresh replaces it) and not past
    ``cached_registry_proto_ttl`` (0: never expires). Always false when the
    cache is not valid now. About 0.2 us a call where ``is_cache_valid`` takes
    about 2 (it builds an empty registry proto and compares, and the time): the
    fast read checks its plan's snapshot on every read."""
    if not registry.is_cache_valid():
        return lambda _registry: False
    created = registry.cached_registry_proto_created
    ttl = registry.cached_registry_proto_ttl.total_seconds()
    deadline = created.timestamp() + ttl if ttl > 0 else math.inf
    clock = time.time

    def current(registry: Any) -> bool:
        return registry.cached_registry_proto_created is created and (
            clock() <= deadline
        )

    return current


def install_registry_snapshot(registry: Any, proto: Any) -> None:
    """Make ``proto`` the registry's cached snapshot, taken now, as Feast's own
    refresh does (``cached_registry_proto``, ``cached_registry_proto_created``)."""
    registry.cached_registry_proto = proto
    registry.cached_registry_proto_created = datetime.now(UTC)


def remove_feast_route(app: FastAPI, path: str) -> None:
    """Drop the route Feast's feature server app (``feast.feature_server.get_app``)
    registered for ``path``, so the platform can serve its own there."""
    before = len(app.router.routes)
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "path", None) != path
    ]
    if len(app.router.routes) == before:
        raise LookupError(f"Feast's app has no route {path!r} to replace")


def version_registry_snapshots(registry: Any) -> None:
    """Give every registry snapshot a unique ``version_id``.

    Feast memoizes its list lookups (``list_entities``, ...) on
    ``(id(snapshot), snapshot.version_id, project)``. The SQL registry builds its
    snapshots without a ``version_id``, so a snapshot allocated where a freed one
    lived (same ``id``) gets the old snapshot's cached lists: stale entities after
    a refresh, or another registry's entities for the same project name.
    """
    build = getattr(registry, "proto", None)
    if build is None or not hasattr(registry, "cached_registry_proto"):
        return
    if getattr(build, "_fp_versioned", False):
        return

    def versioned():  # type: ignore[no-untyped-def]
        snapshot = build()
        if not snapshot.version_id:
            snapshot.version_id = str(uuid.uuid4())
        return snapshot

    versioned._fp_versioned = True  # type: ignore[attr-defined]
    registry.proto = versioned
    current = registry.cached_registry_proto
    if current is not None and not current.version_id:
        current.version_id = str(uuid.uuid4())


@contextmanager
def bigquery_query_job(job: Any, timeout: int | None) -> Iterator[Any]:
    """Run a Feast ``BigQueryRetrievalJob``'s query the way its own
    ``_to_arrow_internal`` does and yield the finished ``QueryJob``: its private
    ``_query_generator`` uploads the entity table (dropped on exit, so read the
    result inside the ``with``) and ``_execute_query`` runs the query."""
    with job._query_generator() as query:
        query_job = job._execute_query(query=query, timeout=timeout)
        assert query_job is not None  # None only for a dry run
        yield query_job
