"""The one place configuration is resolved: profile -> RepoConfig -> FeatureStore.

A profile is a feature_store.yaml under ``feature_repo/``:

* ``local`` (default): ``feature_store.yaml`` - SQL registry on SQLite, SQLite
  online store, DuckDB offline store over parquet. No services needed.
* ``services``: ``profiles/services.yaml`` - SQL registry on PostgreSQL, Redis.
* ``production``: ``profiles/production.yaml`` - PostgreSQL, Redis, BigQuery.
* ``scale``: ``profiles/scale.yaml`` - PostgreSQL, Redis Cluster, Spark offline
  store and Spark materialization engine over the same parquet (SparkSource).

Environment:

* ``FEATURE_PLATFORM_PROFILE`` picks the profile when none is passed.
* ``FEATURE_PLATFORM_REPO`` points at another feature repo directory.
* ``FEATURE_PLATFORM_PROJECT`` overrides the Feast project name (tests use a
  fresh one per run so Redis keys and registry rows never collide).
* ``${VAR}`` references in a profile are expanded from the environment;
  ``profiles/<name>.env`` supplies defaults for unset variables (never secrets).

This module also holds the UTC helpers: every timestamp entering the platform's
API must be timezone-aware; naive values are rejected, not guessed.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay out of module import time
    import pandas as pd
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

__all__ = [
    "PROFILES",
    "ConfigError",
    "Profile",
    "artifacts_dir",
    "data_dir",
    "ensure_utc",
    "ensure_utc_column",
    "get_store",
    "load_repo_config",
    "parse_utc",
    "repo_dir",
    "resolve_profile",
    "utc_now",
]

PROFILES: dict[str, str] = {
    "local": "feature_store.yaml",
    "services": "profiles/services.yaml",
    "production": "profiles/production.yaml",
    "scale": "profiles/scale.yaml",
}
# Which physical sources the definitions should build for a profile
# (read by feature_repo/data_sources.py through FEATURE_PLATFORM_OFFLINE).
_OFFLINE_KIND = {
    "local": "file",
    "services": "file",
    "production": "bigquery",
    "scale": "spark",
}
_DEFAULT_PROJECT = "feature_platform"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """A profile cannot be resolved (unknown name, missing variable, bad yaml)."""


class NaiveTimestampError(ValueError):
    """A timestamp without a timezone reached the platform's API."""


@dataclass(frozen=True)
class Profile:
    name: str
    yaml_path: Path
    repo_dir: Path


def repo_dir() -> Path:
    """The feature repo: $FEATURE_PLATFORM_REPO or ``<project>/feature_repo``."""
    env = os.environ.get("FEATURE_PLATFORM_REPO")
    if env:
        return Path(env).resolve()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "feature_repo"
        if (candidate / "feature_store.yaml").is_file():
            return candidate
    return (Path.cwd() / "feature_repo").resolve()


def data_dir() -> Path:
    """Where the sample sources live: $FEATURE_PLATFORM_DATA_DIR or ``<repo>/data``."""
    env = os.environ.get("FEATURE_PLATFORM_DATA_DIR")
    return Path(env).resolve() if env else repo_dir() / "data"


def artifacts_dir() -> Path:
    """Models and reports: $FEATURE_PLATFORM_ARTIFACTS or ``<project>/artifacts``."""
    env = os.environ.get("FEATURE_PLATFORM_ARTIFACTS")
    return Path(env).resolve() if env else repo_dir().parent / "artifacts"


def resolve_profile(
    name: str | None = None, *, repo: Path | str | None = None
) -> Profile:
    """Map a profile name (default $FEATURE_PLATFORM_PROFILE or ``local``) to a yaml."""
    name = name or os.environ.get("FEATURE_PLATFORM_PROFILE") or "local"
    if name not in PROFILES:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        )
    root = Path(repo).resolve() if repo else repo_dir()
    path = root / PROFILES[name]
    if not path.is_file():
        raise ConfigError(f"profile {name!r}: {path} does not exist")
    return Profile(name=name, yaml_path=path, repo_dir=root)


def _env_defaults(profile: Profile) -> dict[str, str]:
    """Defaults from ``profiles/<name>.env`` (KEY=VALUE lines), if the file exists."""
    env_file = profile.repo_dir / "profiles" / f"{profile.name}.env"
    defaults: dict[str, str] = {}
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                defaults[key.strip()] = value.strip()
    return defaults


def _expand(text: str, profile: Profile) -> str:
    defaults = _env_defaults(profile)
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        var = match.group(1)
        if var in os.environ:
            return os.environ[var]
        if var in defaults:
            return defaults[var]
        missing.append(var)
        return match.group(0)

    # Comment lines are left alone (they may mention ${VARS} in prose).
    expanded = "\n".join(
        line if line.lstrip().startswith("#") else _VAR.sub(sub, line)
        for line in text.splitlines()
    )
    if missing:
        raise ConfigError(
            f"profile {profile.name!r} ({profile.yaml_path}) needs environment "
            f"variable(s) {', '.join(sorted(set(missing)))}"
        )
    return expanded


def _absolute_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def load_repo_config(
    profile: str | None = None, *, repo: Path | str | None = None
) -> RepoConfig:
    """Build a validated Feast ``RepoConfig`` for a profile.

    Relative paths (SQLite registry and online store) are made absolute against
    the repo directory, so the result does not depend on the current directory.
    """
    import yaml
    from feast.repo_config import RepoConfig

    prof = resolve_profile(profile, repo=repo)
    raw: dict[str, Any] = yaml.safe_load(_expand(prof.yaml_path.read_text(), prof))
    if not isinstance(raw, dict):
        raise ConfigError(f"{prof.yaml_path} is not a mapping")
    raw["project"] = os.environ.get("FEATURE_PLATFORM_PROJECT") or raw.get(
        "project", _DEFAULT_PROJECT
    )
    registry = raw.get("registry")
    if isinstance(registry, dict) and registry.get("registry_type") == "sql":
        registry["path"] = _absolute_sqlite(registry["path"], prof.repo_dir)
    online = raw.get("online_store")
    if isinstance(online, dict) and online.get("type") == "sqlite":
        online["path"] = str(prof.repo_dir / online.get("path", "data/online.db"))
    raw["repo_path"] = prof.repo_dir
    # The definitions pick their physical sources and project from these.
    os.environ["FEATURE_PLATFORM_OFFLINE"] = _OFFLINE_KIND[prof.name]
    os.environ.setdefault("FEATURE_PLATFORM_PROJECT", raw["project"])
    if _OFFLINE_KIND[prof.name] == "spark":
        # Spark's Python workers must run this interpreter (it has feast and
        # the platform installed), not whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    try:
        config = RepoConfig(**raw)
    except Exception as exc:  # pydantic ValidationError, feast config errors
        raise ConfigError(f"profile {prof.name!r} is invalid: {exc}") from exc
    config.repo_path = prof.repo_dir
    return config


def get_store(
    profile: str | None = None, *, repo: Path | str | None = None
) -> FeatureStore:
    """The ``FeatureStore`` for a profile; the single front door of the platform."""
    import warnings

    from feast import FeatureStore

    # ibis (under Feast's DuckDB store) warns about its own duckdb call on every
    # query; nobody using the platform can act on it. Added after `import feast`,
    # whose modules install their own "once" filters at import.
    warnings.filterwarnings(
        "ignore",
        message=r"fetch_arrow_table\(\) is deprecated",
        category=DeprecationWarning,
    )
    config = load_repo_config(profile, repo=repo)
    store = FeatureStore(config=config, repo_path=str(config.repo_path))
    _version_registry_snapshots(store.registry)
    return store


def _version_registry_snapshots(registry: Any) -> None:
    """Give every registry snapshot a unique ``version_id``.

    Feast memoizes its list lookups (``list_entities``, ...) on
    ``(id(snapshot), snapshot.version_id, project)``. The SQL registry builds its
    snapshots without a ``version_id``, so a snapshot allocated where a freed one
    lived (same ``id``) gets the old snapshot's cached lists: stale entities after
    a refresh, or another registry's entities for the same project name.
    """
    import uuid

    build = getattr(registry, "proto", None)
    if build is None or not hasattr(registry, "cached_registry_proto"):
        return

    def versioned():  # type: ignore[no-untyped-def]
        snapshot = build()
        if not snapshot.version_id:
            snapshot.version_id = str(uuid.uuid4())
        return snapshot

    registry.proto = versioned
    current = registry.cached_registry_proto
    if current is not None and not current.version_id:
        current.version_id = str(uuid.uuid4())


# --------------------------------------------------------------------------- time


def utc_now() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime, name: str = "timestamp") -> datetime:
    """Return ``value`` in UTC; reject naive datetimes with a clear message."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise NaiveTimestampError(
            f"{name}={value.isoformat()} has no timezone; pass an aware UTC "
            f"datetime (e.g. datetime(..., tzinfo=UTC) or '...Z')"
        )
    value = value.astimezone(UTC)
    if type(value) is not datetime:
        # Subclasses (pendulum's DateTime from Airflow contexts) can turn naive
        # in arithmetic (`end - timedelta(...)` drops tzinfo=UTC): return a plain one.
        value = datetime(*value.timetuple()[:6], value.microsecond, tzinfo=UTC)
    return value


def parse_utc(text: str | datetime, name: str = "timestamp") -> datetime:
    """Parse an ISO-8601 string that carries an offset (``Z`` or ``+00:00``)."""
    if isinstance(text, datetime):
        return ensure_utc(text, name)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}={text!r} is not an ISO-8601 timestamp") from exc
    return ensure_utc(value, name)


def ensure_utc_column(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Check a dataframe column holds timezone-aware timestamps; convert to UTC.

    Naive columns are rejected (naming the column) instead of silently assumed UTC.
    """
    import pandas as pd

    if column not in df.columns:
        raise ValueError(f"column {column!r} is missing (columns: {list(df.columns)})")
    series = df[column]
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            raise NaiveTimestampError(
                f"column {column!r} holds naive timestamps; localize them to UTC "
                f"first (df[{column!r}].dt.tz_localize('UTC'))"
            )
        raise NaiveTimestampError(
            f"column {column!r} must hold timezone-aware timestamps, "
            f"got dtype {series.dtype}"
        )
    if str(series.dt.tz) != "UTC":
        df = df.copy()
        df[column] = series.dt.tz_convert("UTC")
    return df
