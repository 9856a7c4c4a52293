"""The one place configuration is resolved: profile -> RepoConfig -> FeatureStore.

A profile is a feature_store.yaml under ``feature_repo/``:

* ``local`` (default): ``feature_store.yaml`` - SQL registry on SQLite, SQLite
  online store, DuckDB offline store over parquet. No services needed.
* ``services``: ``profiles/services.yaml`` - SQL registry on PostgreSQL, Redis.
* ``production``: ``profiles/production.yaml`` - PostgreSQL, Redis, BigQuery.
* ``scale``: ``profiles/scale.yaml`` - PostgreSQL, Redis Cluster, Spark offline
  store and Spark materialization engine over the same parquet (SparkSource).

Environment: every variable the package reads is declared once, in
``Settings`` (name, type, default, meaning), parsed and validated by
``settings()``; a bad value is an error naming the variable. No other module
reads ``os.environ`` and nothing here writes it. ``${VAR}`` references in a
profile are expanded from the environment; ``profiles/<name>.env`` supplies
defaults for unset variables (never secrets).

Which profile a process loaded last is process state (``active_profile``): the
definitions in ``feature_repo/`` ask ``offline_kind()`` and ``project_name()``
which physical sources and project to build, instead of reading variables
that this module used to set.

This module also holds the UTC helpers: every timestamp entering the platform's
API must be timezone-aware; naive values are rejected, not guessed.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay out of module import time
    import pandas as pd
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

__all__ = [
    "PLAIN_FEAST",
    "PLAIN_FEAST_LOCAL",
    "PROFILES",
    "ConfigError",
    "Profile",
    "RegistryNotApplied",
    "Settings",
    "active_profile",
    "child_environment",
    "read_env_file",
    "offline_kind",
    "project_name",
    "repo_module",
    "settings",
    "artifacts_dir",
    "data_dir",
    "ensure_utc",
    "ensure_utc_column",
    "feast_cli",
    "get_store",
    "load_repo_config",
    "mlflow_artifact_location",
    "mlflow_tracking_uri",
    "parse_utc",
    "repo_dir",
    "require_applied",
    "resolve_profile",
    "stored_utc",
    "utc_now",
]

PROFILES: dict[str, str] = {
    "local": "feature_store.yaml",
    "services": "profiles/services.yaml",
    "production": "profiles/production.yaml",
    "scale": "profiles/scale.yaml",
}
# Which physical sources the definitions build for a profile
# (feature_repo/data_sources.py asks offline_kind()).
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


class RegistryNotApplied(ConfigError):
    """The profile's registry holds no definitions: ``apply`` was never run."""


class NaiveTimestampError(ValueError):
    """A timestamp without a timezone reached the platform's API."""


def _text(value: str) -> str:
    return value


def _flag(value: str) -> bool:
    low = value.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ValueError("not a boolean (1/0, true/false, yes/no, on/off)")


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0 seconds")
    return number


def _auth(value: str) -> str:
    if value not in {"profile", "no_auth"}:
        raise ValueError("must be profile (the profile's auth block) or no_auth")
    return value


def _offline(value: str) -> str:
    if value not in {"file", "bigquery", "spark"}:
        raise ValueError("must be one of file, bigquery, spark")
    return value


# (field, variable, parser, default, meaning): the one list of the package's
# environment variables.
_VARIABLES: tuple[tuple[str, str, Any, Any, str], ...] = (
    ("profile", "FEATURE_PLATFORM_PROFILE", _text, None, "profile when none is passed"),
    ("repo", "FEATURE_PLATFORM_REPO", _text, None, "another feature repo directory"),
    ("project", "FEATURE_PLATFORM_PROJECT", _text, None, "Feast project override"),
    ("data_dir", "FEATURE_PLATFORM_DATA_DIR", _text, None, "source data dir or URI"),
    ("artifacts", "FEATURE_PLATFORM_ARTIFACTS", _text, None, "models and reports"),
    ("offline", "FEATURE_PLATFORM_OFFLINE", _offline, None, "source kind override"),
    ("bq_dataset", "FEATURE_PLATFORM_BQ_DATASET", _text, "feature_platform", "BQ"),
    ("pii_salt", "FEATURE_PLATFORM_PII_SALT", _text, None, "pii masking salt"),
    ("actor", "FEATURE_PLATFORM_ACTOR", _text, None, "who applies (audit log)"),
    ("registry_lock", "FEATURE_PLATFORM_REGISTRY_LOCK", _flag, True, "tests only"),
    ("lock_timeout_s", "FEATURE_PLATFORM_LOCK_TIMEOUT", _seconds, 600.0, "lock wait"),
    ("retry_delay_s", "FEATURE_PLATFORM_RETRY_DELAY_SECONDS", _seconds, 300.0, "DAG"),
    ("late_arrival_s", "FEATURE_PLATFORM_LATE_ARRIVAL_SECONDS", _seconds, 3600.0, ""),
    ("webhook_url", "FEATURE_PLATFORM_WEBHOOK_URL", _text, None, "alert webhook"),
    ("image", "FEATURE_PLATFORM_IMAGE", _text, None, "KFP component image"),
    ("server_host", "FP_SERVER_HOST", _text, "127.0.0.1", "feature server host"),
    ("server_port", "FP_SERVER_PORT", _positive_int, 6566, "feature server port"),
    ("server_workers", "FP_SERVER_WORKERS", _positive_int, 1, "uvicorn workers"),
    ("server_max_entity_rows", "FP_SERVER_MAX_ENTITY_ROWS", _positive_int, 1000, ""),
    ("server_max_body_bytes", "FP_SERVER_MAX_BODY_BYTES", _positive_int, 1 << 20, ""),
    ("server_body_timeout_s", "FP_SERVER_BODY_TIMEOUT_S", _positive_int, 10, ""),
    ("server_registry_ttl_s", "FP_SERVER_REGISTRY_TTL_SEC", _positive_int, 5, ""),
    ("server_fast_reads", "FP_SERVER_FAST_READS", _flag, True, "fast JSON reads"),
    ("server_gc_freeze", "FP_SERVER_GC_FREEZE", _flag, True, "gc.freeze at start"),
    ("server_admin_endpoints", "FP_SERVER_ADMIN_ENDPOINTS", _flag, False, "admin"),
    ("server_tls_key_file", "FP_SERVER_TLS_KEY_FILE", _text, None, "HTTPS key"),
    ("server_tls_cert_file", "FP_SERVER_TLS_CERT_FILE", _text, None, "HTTPS cert"),
    ("server_log_level", "FP_SERVER_LOG_LEVEL", _text, "info", "uvicorn log level"),
    ("auth", "FP_AUTH", _auth, "profile", "no_auth: drop auth (not production)"),
    ("monitor_server_url", "FP_MONITOR_SERVER_URL", _text, None, "server to scrape"),
    ("mlflow_tracking_uri", "FP_MLFLOW_TRACKING_URI", _text, None, "MLflow tracking"),
    ("materialize_max_rows_per_s", "FP_MATERIALIZE_MAX_ROWS_PER_S", _seconds, 0.0, ""),
)


@dataclass(frozen=True)
class Settings:
    """Every environment variable the package reads, typed (see ``_VARIABLES``)."""

    profile: str | None = None
    repo: str | None = None
    project: str | None = None
    data_dir: str | None = None
    artifacts: str | None = None
    offline: str | None = None
    bq_dataset: str = "feature_platform"
    pii_salt: str | None = None
    actor: str | None = None
    registry_lock: bool = True
    lock_timeout_s: float = 600.0
    retry_delay_s: float = 300.0
    late_arrival_s: float = 3600.0
    webhook_url: str | None = None
    image: str | None = None
    server_host: str = "127.0.0.1"
    server_port: int = 6566
    server_workers: int = 1
    server_max_entity_rows: int = 1000
    server_max_body_bytes: int = 1 << 20
    server_body_timeout_s: int = 10
    server_registry_ttl_s: int = 5
    server_fast_reads: bool = True
    server_gc_freeze: bool = True
    server_admin_endpoints: bool = False
    server_tls_key_file: str | None = None
    server_tls_cert_file: str | None = None
    server_log_level: str = "info"
    auth: str = "profile"
    monitor_server_url: str | None = None
    mlflow_tracking_uri: str | None = None
    materialize_max_rows_per_s: float = 0.0

    @property
    def offline_kind(self) -> str:
        """Which physical sources the definitions build (see ``offline_kind()``)."""
        return offline_kind(self)


_SETTINGS_LOCK = threading.Lock()
_SETTINGS_CACHE: dict[tuple[str | None, ...], Settings] = {}


def settings() -> Settings:
    """The package's settings from the environment, parsed once per distinct
    environment (a test that changes a variable gets new settings); a bad value
    raises ``ConfigError`` naming the variable and what it must be."""
    raw = tuple(os.environ.get(var) for _f, var, _p, _d, _m in _VARIABLES)
    with _SETTINGS_LOCK:
        cached = _SETTINGS_CACHE.get(raw)
    if cached is not None:
        return cached
    values: dict[str, Any] = {}
    for (field, var, parse, default, _meaning), text in zip(
        _VARIABLES, raw, strict=True
    ):
        if text is None or text.strip() == "":
            values[field] = default
            continue
        try:
            values[field] = parse(text.strip())
        except ValueError as exc:
            raise ConfigError(f"${var}={text!r} is invalid: {exc}") from exc
    result = Settings(**values)
    with _SETTINGS_LOCK:
        if len(_SETTINGS_CACHE) > 64:
            _SETTINGS_CACHE.clear()
        _SETTINGS_CACHE[raw] = result
    return result


assert {f.name for f in fields(Settings)} == {v[0] for v in _VARIABLES}

# (profile name, project) of the last profile this process loaded.
_ACTIVE: dict[str, str] = {}


def active_profile() -> str:
    """The profile this process loaded last, else ``$FEATURE_PLATFORM_PROFILE``,
    else ``local``."""
    return _ACTIVE.get("profile") or settings().profile or "local"


def offline_kind(current: Settings | None = None) -> str:
    """``file``, ``bigquery`` or ``spark``: the physical sources of the active
    profile (``$FEATURE_PLATFORM_OFFLINE`` overrides it)."""
    current = current or settings()
    if current.offline:
        return current.offline
    return _OFFLINE_KIND.get(active_profile(), "file")


def project_name() -> str:
    """The Feast project: ``$FEATURE_PLATFORM_PROJECT``, else the one the active
    profile declares, else ``feature_platform``."""
    return settings().project or _ACTIVE.get("project") or _DEFAULT_PROJECT


@dataclass(frozen=True)
class Profile:
    name: str
    yaml_path: Path
    repo_dir: Path


def repo_dir() -> Path:
    """The feature repo: $FEATURE_PLATFORM_REPO or ``<project>/feature_repo``."""
    env = settings().repo
    if env:
        return Path(env).resolve()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "feature_repo"
        if (candidate / "feature_store.yaml").is_file():
            return candidate
    return (Path.cwd() / "feature_repo").resolve()


def data_dir() -> Path:
    """Where the sample sources live: $FEATURE_PLATFORM_DATA_DIR or ``<repo>/data``."""
    env = settings().data_dir
    return Path(env).resolve() if env else repo_dir() / "data"


def artifacts_dir() -> Path:
    """Models and reports: $FEATURE_PLATFORM_ARTIFACTS or ``<project>/artifacts``."""
    env = settings().artifacts
    return Path(env).resolve() if env else repo_dir().parent / "artifacts"


# MLflow tracking server + model registry of a profile when
# $FP_MLFLOW_TRACKING_URI is unset (``local``: an embedded SQLite store beside
# the profile's Feast registry, see ``mlflow_tracking_uri``; ``services``/``scale``:
# the stack's PostgreSQL-backed ``mlflow server``; ``production``: required).
_MLFLOW_SERVER = {"services": "http://127.0.0.1:5000", "scale": "http://127.0.0.1:5000"}


def mlflow_tracking_uri(
    profile: str | None = None, *, repo: Path | str | None = None
) -> str:
    """The MLflow tracking (and model registry) URI of a profile.

    ``$FP_MLFLOW_TRACKING_URI`` if set; else on ``local`` the embedded store
    ``sqlite:///<repo>/data/mlflow/mlflow.db`` beside the Feast registry (no
    server process), on ``services`` and ``scale`` the stack's server
    ``http://127.0.0.1:5000``; ``production`` has no default (a ``ConfigError``
    names the variable). A loaded store carries the same value as
    ``store.config.mlflow.tracking_uri``.
    """
    uri = settings().mlflow_tracking_uri
    if uri:
        return uri
    name = profile or active_profile()
    if name == "local":
        root = resolve_profile(name, repo=repo).repo_dir
        return f"sqlite:///{root / 'data' / 'mlflow' / 'mlflow.db'}"
    if name in _MLFLOW_SERVER:
        return _MLFLOW_SERVER[name]
    raise ConfigError(
        f"profile {name!r} has no MLflow tracking server: set FP_MLFLOW_TRACKING_URI"
    )


def mlflow_artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to an embedded SQLite
    store (MLflow's default would be ``./mlruns`` under the current directory);
    ``None`` for a server, which serves its own artifact store."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return (Path(tracking_uri[len(prefix) :]).parent / "artifacts").as_uri()
    return None


def resolve_profile(
    name: str | None = None, *, repo: Path | str | None = None
) -> Profile:
    """Map a profile name (default $FEATURE_PLATFORM_PROFILE or ``local``) to a yaml."""
    name = name or settings().profile or "local"
    if name not in PROFILES:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        )
    root = Path(repo).resolve() if repo else repo_dir()
    path = root / PROFILES[name]
    if not path.is_file():
        raise ConfigError(f"profile {name!r}: {path} does not exist")
    return Profile(name=name, yaml_path=path, repo_dir=root)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file (``#`` comments, blank lines skipped);
    empty when the file does not exist. The format docker compose reads too."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def child_environment(
    defaults: dict[str, str], overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a child process: this process's variables, then
    ``defaults`` for the unset ones, then ``overrides``. Nothing is written to
    this process's environment."""
    env = dict(os.environ)
    for key, value in defaults.items():
        env.setdefault(key, value)
    env.update(overrides or {})
    return env


def _env_defaults(profile: Profile) -> dict[str, str]:
    """Defaults from ``profiles/<name>.env`` (KEY=VALUE lines), if the file exists."""
    return read_env_file(profile.repo_dir / "profiles" / f"{profile.name}.env")


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


# Overrides that turn a profile into plain Feast (no platform plugins): the
# baseline the tests and benchmarks compare the platform with.
PLAIN_FEAST: dict[str, Any] = {
    "online_store": {"type": "redis"},
    "batch_engine": "local",
}
PLAIN_FEAST_LOCAL: dict[str, Any] = {
    "online_store": {"type": "sqlite"},
    "batch_engine": "local",
}


def load_repo_config(
    profile: str | None = None,
    *,
    repo: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
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
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    raw["project"] = settings().project or raw.get("project", _DEFAULT_PROJECT)
    # Feast's `mlflow:` block (store.config.mlflow) on every profile, with the
    # profile's tracking URI (mlflow_tracking_uri); left without one only where
    # there is no default (production without $FP_MLFLOW_TRACKING_URI).
    mlflow = {"enabled": False, **(raw.get("mlflow") or {})}
    if not mlflow.get("tracking_uri"):
        with suppress(ConfigError):
            mlflow["tracking_uri"] = mlflow_tracking_uri(prof.name, repo=prof.repo_dir)
    raw["mlflow"] = mlflow
    _auth_override(raw, prof)
    registry = raw.get("registry")
    if isinstance(registry, dict) and registry.get("registry_type") == "sql":
        registry["path"] = _absolute_sqlite(registry["path"], prof.repo_dir)
    online = raw.get("online_store")
    if isinstance(online, dict) and str(online.get("type", "")).endswith(
        ("sqlite", "SqliteOnlineStore")
    ):
        online["path"] = str(prof.repo_dir / online.get("path", "data/online.db"))
    raw["repo_path"] = prof.repo_dir
    if _OFFLINE_KIND[prof.name] == "spark":
        _spark_workers_run_this_interpreter()
    # The definitions pick their physical sources and project from this.
    _ACTIVE.update(profile=prof.name, project=str(raw["project"]))
    try:
        config = RepoConfig(**raw)
    except Exception as exc:  # pydantic ValidationError, feast config errors
        raise ConfigError(f"profile {prof.name!r} is invalid: {exc}") from exc
    config.repo_path = prof.repo_dir
    return config


def _auth_override(raw: dict[str, Any], prof: Profile) -> None:
    """``FP_AUTH=no_auth``: serve this profile without authentication (a test,
    a benchmark, a stack bound to loopback). Refused on ``production``, whose
    servers always authenticate."""
    if settings().auth != "no_auth":
        return
    if prof.name == "production":
        raise ConfigError(
            "FP_AUTH=no_auth is refused on the production profile: its servers "
            "always authenticate (docs/security.md)"
        )
    raw["auth"] = {"type": "no_auth"}


def repo_module(name: str, repo: Path | str | None = None) -> Any:
    """A plain-data module of the feature repo (e.g. ``operations``), loaded from
    its file (the repo is not a package and Feast imports its files by name);
    cached until the file changes."""
    import importlib.util

    path = (Path(repo).resolve() if repo else repo_dir()) / f"{name}.py"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (the feature repo's {name}.py)")
    key = (str(path), path.stat().st_mtime_ns)
    cached = _REPO_MODULES.get(key)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_file_location(f"_feature_repo_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _REPO_MODULES[key] = module
    return module


_REPO_MODULES: dict[tuple[str, int], Any] = {}


def feast_cli(
    profile: str | None, args: list[str]
) -> tuple[list[str], dict[str, str], Path]:
    """``(argv, environment, cwd)`` that run the plain ``feast`` CLI on a profile.

    The child gets ``-f <profile yaml>``, the repo directory as its working
    directory (the SQLite URLs of the local profile are relative to it), the
    defaults of ``profiles/<name>.env`` for unset variables (Feast expands
    ``${VAR}`` itself) and ``FEATURE_PLATFORM_PROFILE`` (the definitions build the
    profile's sources from it). This process's environment is not changed.
    """
    prof = resolve_profile(profile)
    env = dict(os.environ)
    for key, value in _env_defaults(prof).items():
        env.setdefault(key, value)
    env["FEATURE_PLATFORM_PROFILE"] = prof.name
    env.setdefault("FEAST_USAGE", "False")
    if _OFFLINE_KIND[prof.name] == "spark":
        env.setdefault("PYSPARK_PYTHON", sys.executable)
    feast = str(Path(sys.executable).with_name("feast"))
    return [feast, "-f", str(prof.yaml_path), *args], env, prof.repo_dir


def _spark_workers_run_this_interpreter() -> None:
    """Spark's Python workers must run this interpreter (it has feast and the
    platform installed), not whatever ``python3`` is first on PATH.

    The package's one environment write, and only on the Spark profile: PySpark
    reads its workers' interpreter from ``PYSPARK_PYTHON`` alone
    (``SparkContext.pythonExec``; ``spark.pyspark.python`` is not consulted for
    local workers). An explicit ``PYSPARK_PYTHON`` is kept.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def get_store(
    profile: str | None = None,
    *,
    repo: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
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
    config = load_repo_config(profile, repo=repo, overrides=overrides)
    _sqlite_registry_dir(config)
    store = FeatureStore(config=config, repo_path=str(config.repo_path))
    from feature_platform.feast_compat import version_registry_snapshots

    version_registry_snapshots(store.registry)
    return store


def _sqlite_registry_dir(config: RepoConfig) -> None:
    """Create the directory of a SQLite registry file (a never-generated repo has
    no ``data/``): SQLite cannot create a file in a missing directory, and Feast
    opens the registry as soon as the store is built, ``apply`` included."""
    path = str(getattr(config.registry, "path", "") or "")
    prefix = "sqlite:///"
    if getattr(config.registry, "registry_type", "") == "sql" and path.startswith(
        prefix
    ):
        Path(path[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def _registry_location(store: FeatureStore) -> str:
    """The registry's address without credentials (for error messages)."""
    path = str(getattr(store.config.registry, "path", "") or "")
    if "://" in path and "@" in path:  # scheme://user:password@host/... -> host/...
        scheme, rest = path.split("://", 1)
        path = f"{scheme}://{rest.rsplit('@', 1)[1]}"
    return path


def require_applied(store: FeatureStore) -> None:
    """Raise :class:`RegistryNotApplied` unless the store's registry holds the
    project's definitions (at least one feature view).

    The one check every command and DAG task that reads definitions runs first:
    against a registry that was never applied they would otherwise fail with a
    database error or an empty "unknown feature view" message.
    """
    views = store.registry.list_feature_views(store.project, allow_cache=False)
    if not views:
        raise RegistryNotApplied(
            f"the registry {_registry_location(store)} has no definitions for "
            f"project {store.project!r}: run `feature-platform apply` (or "
            "`feature-platform feast apply`) on this profile first"
        )


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


def stored_utc(value: datetime) -> datetime:
    """A timestamp a store returned (Feast's intervals, a source's max, a SQLite
    column), as aware UTC: the stores write UTC and some drop the offset, so
    naive here means UTC. Input from users goes through ``ensure_utc`` instead,
    which rejects naive values."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


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
