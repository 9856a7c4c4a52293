"""Every environment variable the package reads, declared once and typed.

``Settings`` is a pydantic-settings model: each field names its variable
(``validation_alias``), its type (which is its check), its default and its
meaning (``description``, the column docs/profiles.md lists). ``settings()``
reads them from the environment; a bad value is a ``ConfigError`` naming the
variable, its value and what it must be. An empty variable counts as unset.

No other module reads these variables from ``os.environ``, and nothing here
writes the environment. (``profiles.py`` expands the ``${VAR}`` references of a
profile's yaml, which name the services' variables, not the package's.)

Import cost: pydantic-settings takes about 0.15 s on a cold interpreter and
about 0.01 s where pydantic's core is already loaded (Airflow's SDK, Feast), so
DAG files may reach it at parse time; ``feature-platform --help`` does not
import it (cli.py imports inside the commands).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_platform.errors import ConfigError

__all__ = ["Settings", "settings"]

_Offline = Literal["file", "bigquery", "spark"]


def _env(variable: str, default: Any, meaning: str, **checks: Any) -> Any:
    """A field read from ``variable`` (``checks``: pydantic bounds, e.g. ``gt=0``)."""
    return Field(default, validation_alias=variable, description=meaning, **checks)


class Settings(BaseSettings):
    """The package's environment variables (one field each, see the module doc)."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        str_strip_whitespace=True,
        extra="ignore",
        frozen=True,
    )

    profile: str | None = _env(
        "FEATURE_PLATFORM_PROFILE", None, "profile when none is passed"
    )
    repo: str | None = _env(
        "FEATURE_PLATFORM_REPO", None, "another feature repo directory"
    )
    project: str | None = _env(
        "FEATURE_PLATFORM_PROJECT", None, "Feast project override"
    )
    data_dir: str | None = _env(
        "FEATURE_PLATFORM_DATA_DIR", None, "source data directory or URI"
    )
    artifacts: str | None = _env(
        "FEATURE_PLATFORM_ARTIFACTS", None, "models and reports"
    )
    offline: _Offline | None = _env(
        "FEATURE_PLATFORM_OFFLINE", None, "source kind override"
    )
    bq_dataset: str = _env(
        "FEATURE_PLATFORM_BQ_DATASET",
        "feature_platform",
        "BigQuery dataset of the production sources",
    )
    pii_salt: str | None = _env("FEATURE_PLATFORM_PII_SALT", None, "pii masking salt")
    actor: str | None = _env("FEATURE_PLATFORM_ACTOR", None, "who applies (audit log)")
    registry_lock: bool = _env(
        "FEATURE_PLATFORM_REGISTRY_LOCK",
        True,
        "registry lock on apply (off in tests only)",
    )
    lock_timeout_s: float = _env(
        "FEATURE_PLATFORM_LOCK_TIMEOUT", 600.0, "lock wait, seconds", ge=0
    )
    retry_delay_s: float = _env(
        "FEATURE_PLATFORM_RETRY_DELAY_SECONDS",
        300.0,
        "DAG task retry delay, seconds",
        ge=0,
    )
    late_arrival_s: float = _env(
        "FEATURE_PLATFORM_LATE_ARRIVAL_SECONDS",
        3600.0,
        "how late source rows may arrive, seconds",
        ge=0,
    )
    webhook_url: str | None = _env(
        "FEATURE_PLATFORM_WEBHOOK_URL", None, "alert webhook"
    )
    image: str | None = _env(
        "FEATURE_PLATFORM_IMAGE", None, "KFP component image (at compile time)"
    )
    server_host: str = _env("FP_SERVER_HOST", "127.0.0.1", "feature server host")
    server_port: int = _env("FP_SERVER_PORT", 6566, "feature server port", gt=0)
    server_workers: int = _env("FP_SERVER_WORKERS", 1, "uvicorn workers", gt=0)
    server_max_entity_rows: int = _env(
        "FP_SERVER_MAX_ENTITY_ROWS", 1000, "entity rows per request", gt=0
    )
    server_max_body_bytes: int = _env(
        "FP_SERVER_MAX_BODY_BYTES", 1 << 20, "request body size", gt=0
    )
    server_body_timeout_s: int = _env(
        "FP_SERVER_BODY_TIMEOUT_S", 10, "seconds to receive a request body", gt=0
    )
    server_registry_ttl_s: int = _env(
        "FP_SERVER_REGISTRY_TTL_SEC", 5, "registry refresh interval, seconds", gt=0
    )
    server_fast_reads: bool = _env("FP_SERVER_FAST_READS", True, "fast JSON reads")
    server_gc_freeze: bool = _env("FP_SERVER_GC_FREEZE", True, "gc.freeze at start")
    server_admin_endpoints: bool = _env(
        "FP_SERVER_ADMIN_ENDPOINTS", False, "admin endpoints (materialize, push)"
    )
    server_tls_key_file: str | None = _env("FP_SERVER_TLS_KEY_FILE", None, "HTTPS key")
    server_tls_cert_file: str | None = _env(
        "FP_SERVER_TLS_CERT_FILE", None, "HTTPS certificate"
    )
    server_log_level: str = _env("FP_SERVER_LOG_LEVEL", "info", "uvicorn log level")
    auth: Literal["profile", "no_auth"] = _env(
        "FP_AUTH", "profile", "no_auth: serve without authentication (not production)"
    )
    monitor_server_url: str | None = _env(
        "FP_MONITOR_SERVER_URL", None, "feature server the monitor scrapes"
    )
    mlflow_tracking_uri: str | None = _env(
        "FP_MLFLOW_TRACKING_URI", None, "MLflow tracking server and model registry"
    )
    materialize_max_rows_per_s: float = _env(
        "FP_MATERIALIZE_MAX_ROWS_PER_S",
        0.0,
        "materialization write throttle (0: none)",
        ge=0,
    )


def variables() -> dict[str, str]:
    """``{variable: field}`` of every setting (the docs list each variable)."""
    return {str(f.validation_alias): name for name, f in Settings.model_fields.items()}


_VARIABLES = tuple(variables())
_LOCK = threading.Lock()
_CACHE: dict[tuple[str | None, ...], Settings] = {}


def settings() -> Settings:
    """The package's settings from the environment, parsed once per distinct
    environment (a test that changes a variable gets new settings); a bad value
    raises ``ConfigError`` naming the variable and what it must be."""
    raw = tuple(os.environ.get(var) for var in _VARIABLES)
    with _LOCK:
        cached = _CACHE.get(raw)
    if cached is not None:
        return cached
    try:
        result = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"${err['loc'][0]}={err['input']!r} is invalid: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(problems) from exc
    with _LOCK:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[raw] = result
    return result
