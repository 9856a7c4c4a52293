"""Where a profile's MLflow tracking server and model registry live.

``$FP_MLFLOW_TRACKING_URI`` if set; else on ``local`` an embedded SQLite store
``sqlite:///<repo>/data/mlflow/mlflow.db`` beside the Feast registry (no server
process), on ``services`` and ``scale`` the stack's PostgreSQL-backed ``mlflow
server`` at ``http://127.0.0.1:5000``; ``production`` has no default (a
``ConfigError`` names the variable). ``profiles.load_repo_config`` writes the
result into Feast's ``mlflow:`` block, so a loaded store carries it as
``store.config.mlflow.tracking_uri``.
"""

from __future__ import annotations

from pathlib import Path

from feature_platform.errors import ConfigError

__all__ = ["artifact_location", "tracking_uri"]

_SERVER = {"services": "http://127.0.0.1:5000", "scale": "http://127.0.0.1:5000"}
_SQLITE = "sqlite:///"


def tracking_uri(profile: str, repo_dir: Path) -> str:
    """The MLflow tracking (and model registry) URI of ``profile`` whose feature
    repo is ``repo_dir`` (see the module doc)."""
    from feature_platform.settings import settings

    uri = settings().mlflow_tracking_uri
    if uri:
        return uri
    if profile == "local":
        return f"{_SQLITE}{repo_dir / 'data' / 'mlflow' / 'mlflow.db'}"
    if profile in _SERVER:
        return _SERVER[profile]
    raise ConfigError(
        f"profile {profile!r} has no MLflow tracking server: set FP_MLFLOW_TRACKING_URI"
    )


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to an embedded SQLite
    store (MLflow's default would be ``./mlruns`` under the current directory);
    ``None`` for a server, which serves its own artifact store."""
    if uri.startswith(_SQLITE):
        return (Path(uri[len(_SQLITE) :]).parent / "artifacts").as_uri()
    return None
