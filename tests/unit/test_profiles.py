"""Profiles resolve to valid RepoConfigs (paths, ${VAR} expansion, auth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_platform.errors import ConfigError
from feature_platform.profiles import load_repo_config, resolve_profile


def test_local_profile_is_embedded(sample_repo: Path) -> None:
    cfg = load_repo_config("local", repo=sample_repo)
    assert cfg.registry.registry_type == "sql"
    # Relative SQLite paths become absolute against the repo, not the cwd.
    assert cfg.registry.path == f"sqlite:///{sample_repo / 'data' / 'registry.db'}"
    # Feast's SQLite store through the platform's plugin (freshness at read).
    assert cfg.online_store.type == (
        "feature_platform.online_store.PlatformSqliteOnlineStore"
    )
    assert cfg.batch_engine_config["type"] == "feature_platform.engine.PlatformEngine"
    # Feast's DuckDB store plus the platform's fast PIT join (a Feast plugin).
    assert cfg.offline_store.type == "feature_platform.pit_store.FastPitOfflineStore"
    assert cfg.entity_key_serialization_version == 3


def test_services_profile_uses_env_with_defaults(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FP_PG_DATABASE", "registry_db")
    monkeypatch.setenv("FP_REDIS_PORT", "6390")
    cfg = load_repo_config("services", repo=sample_repo)
    assert cfg.registry.path.startswith(
        "postgresql+psycopg://postgres:@127.0.0.1:5432/"
    )
    assert cfg.registry.path.endswith("/registry_db")
    assert cfg.registry.cache_ttl_seconds == 60
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    # Feast's Redis store keys through the platform's plugin.
    assert cfg.online_store.type == (
        "feature_platform.online_store.PlatformRedisOnlineStore"
    )
    assert isinstance(cfg.online_store, RedisOnlineStoreConfig)
    assert cfg.online_store.connection_string.startswith("127.0.0.1:6390,")


PRODUCTION_ENV = {
    "FP_PG_USER": "feast",
    "FP_PG_PASSWORD": "s3cret",
    "FP_PG_HOST": "pg.internal",
    "FP_PG_PORT": "5432",
    "FP_PG_DATABASE": "feast_registry",
    "FP_REDIS_HOST": "redis.internal",
    "FP_REDIS_PORT": "6380",
    "FP_REDIS_PASSWORD": "r3dis",
    "FP_REDIS_SSL": "true",
    "FP_GCP_PROJECT": "acme-ml",
    "FEATURE_PLATFORM_BQ_DATASET": "features",
    "FP_BQ_LOCATION": "EU",
    "FP_OIDC_DISCOVERY_URL": "https://idp.example.com/.well-known/openid-configuration",
    "FP_OIDC_CLIENT_ID": "feature-platform",
}


def test_production_profile_validates(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    from feast.infra.offline_stores.bigquery import BigQueryOfflineStoreConfig

    cfg = load_repo_config("production", repo=sample_repo)
    assert cfg.provider == "gcp"
    # Feast's BigQuery store with the platform's read setting, unset by default.
    assert cfg.offline_store.type == (
        "feature_platform.bigquery.PlatformBigQueryOfflineStore"
    )
    assert isinstance(cfg.offline_store, BigQueryOfflineStoreConfig)
    assert cfg.offline_store.storage_read_endpoint is None
    assert cfg.offline_store.project_id == "acme-ml"
    assert cfg.registry.path == (
        "postgresql+psycopg://feast:s3cret@pg.internal:5432/feast_registry"
    )
    assert "ssl=true" in cfg.online_store.connection_string
    assert cfg.auth_config.type == "oidc"
    assert cfg.auth_config.auth_discovery_url == PRODUCTION_ENV["FP_OIDC_DISCOVERY_URL"]
    assert cfg.auth_config.client_id == "feature-platform"


def test_auth_is_on_and_only_an_explicit_override_drops_it(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """services and production authenticate (Feast's oidc, from the FP_OIDC_*
    variables); FP_AUTH=no_auth drops it on services, never on production."""
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    services = load_repo_config("services", repo=sample_repo)
    assert services.auth_config.type == "oidc"
    assert services.auth_config.client_id == "feature-platform"
    assert load_repo_config("local", repo=sample_repo).auth_config.type == "no_auth"
    monkeypatch.setenv("FP_AUTH", "no_auth")
    assert load_repo_config("services", repo=sample_repo).auth_config.type == "no_auth"
    with pytest.raises(ConfigError, match="refused on the production profile"):
        load_repo_config("production", repo=sample_repo)
    monkeypatch.setenv("FP_AUTH", "off")
    with pytest.raises(ConfigError, match=r"\$FP_AUTH='off' is invalid"):
        load_repo_config("services", repo=sample_repo)


def test_production_profile_names_missing_variables(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in PRODUCTION_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="FP_GCP_PROJECT") as err:
        load_repo_config("production", repo=sample_repo)
    assert "FP_REDIS_PASSWORD" in str(err.value)
    assert "FP_OIDC_DISCOVERY_URL" in str(err.value)


def test_production_definitions_read_bigquery(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import BigQuerySource

    from feature_platform.definitions import load_definitions

    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    load_repo_config("production", repo=sample_repo)
    try:
        contents = load_definitions(sample_repo)
        sources = {s.name: s for s in contents.data_sources}
        assert isinstance(sources["customer_stats_source"], BigQuerySource)
        assert sources["customer_stats_source"].table == "features.customer_stats"
    finally:
        monkeypatch.setenv("FEATURE_PLATFORM_OFFLINE", "file")


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'staging'"):
        resolve_profile("staging")


def test_registry_snapshots_are_versioned(applied_local_store) -> None:
    """Feast memoizes registry lists on (id(snapshot), version_id, project); every
    snapshot needs its own version_id or a reused address serves stale lists."""
    registry = applied_local_store.registry
    first = registry.cached_registry_proto.version_id
    assert first
    applied_local_store.refresh_registry()
    second = registry.cached_registry_proto.version_id
    assert second and second != first
    assert {
        e.name for e in registry.list_entities(applied_local_store.project, True)
    } >= {
        "customer",
        "driver",
    }


def test_loading_a_profile_writes_no_environment_variable(sample_repo: Path) -> None:
    import os

    from feature_platform.profiles import load_repo_config, offline_kind

    before = dict(os.environ)
    load_repo_config("local", repo=sample_repo)
    assert dict(os.environ) == before
    assert offline_kind() == "file"
