"""Profiles: a name -> its feature_store.yaml -> Feast's ``RepoConfig`` -> the
``FeatureStore``; the same files the plain ``feast`` CLI reads (``feast_cli``).

A profile is a feature_store.yaml under ``feature_repo/``:

* ``local`` (default): ``feature_store.yaml`` - SQL registry on SQLite, SQLite
  online store, DuckDB offline store over parquet. No services needed.
* ``services``: ``profiles/services.yaml`` - SQL registry on PostgreSQL, Redis.
* ``production``: ``profiles/production.yaml`` - PostgreSQL, Redis, BigQuery.
* ``scale``: ``profiles/scale.yaml`` - PostgreSQL, Redis Cluster, Spark offline
  store and Spark materialization engine over the same parquet (SparkSource).

``${VAR}`` references in a profile are expanded from the environment;
``profiles/<name>.env`` supplies defaults for unset variables (never secrets).
The package's own variables are read in ``settings.py``; nothing here writes
the environment (one exception on the Spark profile, see
``_spark_workers_run_this_interpreter``).

Which profile a process loaded last is process state (``active_profile``): the
definitions in ``feature_repo/`` ask ``offline_kind()`` and ``project_name()``
which physical sources and project to build.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.errors import ConfigError, RegistryNotApplied
from feature_platform.settings import Settings, settings

if TYPE_CHECKING:  # heavy imports stay out of module import time
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

__all__ = [
    "PLAIN_FEAST",
    "PLAIN_FEAST_LOCAL",
    "PROFILES",
    "Profile",
    "active_profile",
    "artifacts_dir",
    "child_environment",
    "data_dir",
    "feast_cli",
    "get_store",
    "load_repo_config",
    "offline_kind",
    "project_name",
    "read_env_file",
    "repo_dir",
    "repo_module",
    "require_applied",
    "resolve_profile",
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
_SQLITE = "sqlite:///"

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
    """The ``KEY=VALUE`` lines of an env file (the format docker compose reads),
    parsed by python-dotenv without interpolation; empty when the file does not
    exist. A key without ``=`` sets nothing."""
    from dotenv import dotenv_values

    values = dotenv_values(path, interpolate=False) if path.is_file() else {}
    return {key: value for key, value in values.items() if value is not None}


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
    if url.startswith(_SQLITE) and not url[len(_SQLITE) :].startswith("/"):
        return _SQLITE + str((base / url[len(_SQLITE) :]).resolve())
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

    from feature_platform.mlflow_locations import tracking_uri

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
    # profile's tracking URI (mlflow_locations); left without one only where
    # there is no default (production without $FP_MLFLOW_TRACKING_URI).
    mlflow = {"enabled": False, **(raw.get("mlflow") or {})}
    if not mlflow.get("tracking_uri"):
        with suppress(ConfigError):
            mlflow["tracking_uri"] = tracking_uri(prof.name, prof.repo_dir)
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
    except Exception as exc:  # noqa: BLE001 - re-raised: pydantic's ValidationError
        # and Feast's own config errors (FeastOnlineStoreInvalidName, ...), which
        # derive from Exception only
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


_REPO_MODULES: dict[tuple[str, int], Any] = {}


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
    env = child_environment(
        {"FEAST_USAGE": "False", **_env_defaults(prof)},
        {"FEATURE_PLATFORM_PROFILE": prof.name},
    )
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
    if getattr(config.registry, "registry_type", "") == "sql" and path.startswith(
        _SQLITE
    ):
        Path(path[len(_SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)


def require_applied(store: FeatureStore) -> None:
    """Raise :class:`RegistryNotApplied` unless the store's registry holds the
    project's definitions (at least one feature view).

    The one check every command and DAG task that reads definitions runs first:
    against a registry that was never applied they would otherwise fail with a
    database error or an empty "unknown feature view" message.
    """
    from feature_platform.redact import redact_url

    views = store.registry.list_feature_views(store.project, allow_cache=False)
    if not views:
        location = redact_url(str(getattr(store.config.registry, "path", "") or ""))
        raise RegistryNotApplied(
            f"the registry {location} has no definitions for "
            f"project {store.project!r}: run `feature-platform apply` (or "
            "`feature-platform feast apply`) on this profile first"
        )
