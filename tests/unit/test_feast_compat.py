"""Pins every private Feast / redis-py symbol the platform reaches through
``feature_platform.feast_compat``: an upgrade that moves one fails here first."""

from __future__ import annotations

import pyarrow as pa
import pytest

from feature_platform import feast_compat


def test_feature_field_is_feasts_murmur3_field() -> None:
    from feast.infra.online_stores.helpers import _mmh3

    assert feast_compat.feature_field("driver_stats", "avg_rating") == _mmh3(
        "driver_stats:avg_rating"
    )
    assert len(feast_compat.feature_field("v", "f")) == 4


def test_provider_engine_and_request_context(applied_local_store) -> None:
    from feast import FeatureService

    store = applied_local_store
    prov = feast_compat.provider(store)
    assert prov is store._get_provider()
    assert type(feast_compat.batch_engine(store)).__name__ == "PlatformEngine"
    service = store.get_feature_service("driver_matching_service")
    assert isinstance(service, FeatureService)
    context = feast_compat.online_request_context(
        store.registry, store.project, service, False
    )
    assert isinstance(context, feast_compat.RequestContext)
    grouped = context.grouped_refs
    assert {view.name for view, _names in grouped} == {"driver_stats", "customer_stats"}
    assert {"customer_id", "driver_id"} <= set(context.join_keys)
    assert context.entity_types["driver_id"].name == "INT64"
    assert not context.on_demand_views and not context.request_data
    assert context.entityless is False
    assert sorted(context.feature_refs) == sorted(
        f"{view.name}:{name}" for view, names in grouped for name in names
    )
    again = feast_compat.online_request_context(
        store.registry, store.project, service, False
    )
    # Feast's cache: the same resolution while the registry is unchanged
    assert all(a is b for a, b in zip(again, context, strict=True))
    assert feast_compat.registry_snapshot_stamp(store.registry) is not None


def test_version_registry_snapshots_is_idempotent(applied_local_store) -> None:
    registry = applied_local_store.registry
    feast_compat.version_registry_snapshots(registry)
    wrapped = registry.proto
    feast_compat.version_registry_snapshots(registry)
    assert registry.proto is wrapped
    assert registry.proto().version_id  # every snapshot gets one


def test_arrow_to_proto_rows(applied_local_store) -> None:
    from datetime import UTC, datetime

    view = applied_local_store.get_feature_view("driver_stats")
    now = datetime(2026, 11, 29, tzinfo=UTC)
    table = pa.table(
        {
            "driver_id": [5001],
            "avg_rating": [4.5],
            "total_trips": [10],
            "acceptance_rate": [0.9],
            "avg_delivery_time_min": [21.0],
            "event_timestamp": [now],
        }
    )
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    [(key, values, ts, _created)] = feast_compat.arrow_to_proto_rows(
        table, view, join_keys
    )
    assert key.join_keys == ["driver_id"] and key.entity_values[0].int64_val == 5001
    assert values["avg_rating"].double_val == 4.5
    from feature_platform.utc import stored_utc

    assert stored_utc(ts) == now  # Feast hands back naive UTC


@pytest.mark.parametrize(
    ("entry", "hook"),
    [
        ("get_online_features", "_read_features_per_fv"),
        ("get_online_features_async", "_read_features_per_fv_async"),
    ],
)
def test_read_hook_runs_before_on_demand_transforms(entry: str, hook: str) -> None:
    """The platform's stores apply the ttl rule in Feast's per-view read hook
    (``PlatformRedisOnlineStore._read_features_per_fv``): Feast must call it
    with these parameters, on the Redis store too, before it computes the
    on-demand features from the response."""
    import inspect

    from feast.infra.online_stores.online_store import OnlineStore
    from feast.infra.online_stores.redis import RedisOnlineStore

    from feature_platform.online_store import PlatformRedisOnlineStore

    params = [
        "self",
        "config",
        "grouped_refs",
        "join_key_values",
        "entity_name_to_join_key_map",
        "online_features_response",
        "full_feature_names",
        "include_feature_view_version_metadata",
    ]
    for cls in (OnlineStore, RedisOnlineStore, PlatformRedisOnlineStore):
        assert list(inspect.signature(getattr(cls, hook)).parameters) == params
    source = inspect.getsource(getattr(OnlineStore, entry))
    assert f"self.{hook}(" in source
    assert source.index(f"self.{hook}(") < source.index(
        "_augment_response_with_on_demand_transforms("
    )
    assert entry not in vars(RedisOnlineStore)  # Redis keeps the base's order


def test_fail_fast_client_overrides_feasts_get_client() -> None:
    """``FailFastRedisClient`` wraps ``RedisOnlineStore._get_client`` (which
    keeps its client in ``_client``): the first client is made to fail fast."""
    from feast.infra.online_stores.redis import (
        RedisOnlineStore,
        RedisOnlineStoreConfig,
    )

    assert callable(RedisOnlineStore._get_client)

    class Store(feast_compat.FailFastRedisClient, RedisOnlineStore):
        pass

    store = Store()
    assert store._client is None
    config = RedisOnlineStoreConfig(connection_string="127.0.0.1:1")
    client = store._get_client(config)  # builds the client; connects lazily
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["socket_timeout"] == 2.0
    assert kwargs["retry"].get_retries() == 0
    assert store._get_client(config) is client


def test_install_registry_snapshot(applied_local_store) -> None:
    registry = applied_local_store.registry
    before = feast_compat.registry_snapshot_stamp(registry)
    proto = registry.proto()
    feast_compat.install_registry_snapshot(registry, proto)
    assert registry.cached_registry_proto is proto
    assert feast_compat.registry_snapshot_stamp(registry) > before
    assert registry.is_cache_valid()


def test_snapshot_check_follows_feasts_cache_rule(applied_local_store) -> None:
    """True while ``is_cache_valid`` holds for the snapshot it was made on: false
    past the ttl, for a newer snapshot, and from the start when not valid."""
    import time
    from datetime import timedelta

    registry = applied_local_store.registry
    saved = registry.cached_registry_proto_ttl
    try:
        registry.cached_registry_proto_ttl = timedelta(seconds=0.3)
        feast_compat.install_registry_snapshot(registry, registry.proto())
        current = feast_compat.snapshot_check(registry)
        assert registry.is_cache_valid() and current(registry)
        time.sleep(0.4)
        assert not registry.is_cache_valid() and not current(registry)
        feast_compat.install_registry_snapshot(registry, registry.proto())
        assert registry.is_cache_valid() and not current(registry)  # a new one
        registry.cached_registry_proto_ttl = timedelta(0)  # never expires
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(time, "time", lambda: 4e9)  # in 2096
            assert feast_compat.snapshot_check(registry)(registry)
        registry.cached_registry_proto_created = None
        assert not registry.is_cache_valid()
        assert not feast_compat.snapshot_check(registry)(registry)
    finally:
        registry.cached_registry_proto_ttl = saved
        feast_compat.install_registry_snapshot(registry, registry.proto())


def test_remove_feast_route(applied_local_store) -> None:
    from feast.feature_server import get_app

    app = get_app(applied_local_store, registry_ttl_sec=60)
    assert "/health" in {getattr(r, "path", None) for r in app.router.routes}
    feast_compat.remove_feast_route(app, "/health")
    assert "/health" not in {getattr(r, "path", None) for r in app.router.routes}
    with pytest.raises(LookupError, match="/health"):
        feast_compat.remove_feast_route(app, "/health")


def test_bigquery_query_job_reaches_feasts_private_job_methods() -> None:
    """The two private methods of Feast's BigQuery job that
    ``bigquery_query_job`` calls, with the parameters it passes (their
    behaviour against BigQuery's API is exercised by tests/production)."""
    import inspect

    from feast.infra.offline_stores.bigquery import BigQueryRetrievalJob

    params = inspect.signature(BigQueryRetrievalJob._execute_query).parameters
    assert {"query", "timeout"} <= set(params)
    from types import SimpleNamespace

    config = SimpleNamespace(  # what the job's constructor reads of a RepoConfig
        project="p", offline_store=SimpleNamespace(gcs_staging_location=None)
    )
    job = BigQueryRetrievalJob(
        "SELECT 1", client=None, config=config, full_feature_names=False
    )
    with job._query_generator() as query:  # a str query: yielded as it is
        assert query == "SELECT 1"


def test_feast_metrics_on_follows_feasts_metrics_config(monkeypatch) -> None:
    from feast import metrics

    cfg = metrics._config
    monkeypatch.setattr(cfg, "offline_features", False)
    monkeypatch.setattr(cfg, "audit_logging", False)
    assert feast_compat.feast_metrics_on() is False
    monkeypatch.setattr(cfg, "audit_logging", True)
    assert feast_compat.feast_metrics_on() is True
    monkeypatch.setattr(cfg, "audit_logging", False)
    monkeypatch.setattr(cfg, "offline_features", True)
    assert feast_compat.feast_metrics_on() is True
