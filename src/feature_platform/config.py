"""TEMPORARY (removed by 22:20 UTC today): the names config.py held, re-exported
from their new homes so branches that still import them keep working while they
rebase. Import from the new modules instead:

* ``feature_platform.settings``   Settings, settings (every environment variable)
* ``feature_platform.profiles``   profile -> RepoConfig/FeatureStore, feast_cli, paths
* ``feature_platform.utc``        utc_now, ensure_utc(_column), parse_utc, stored_utc
* ``feature_platform.errors``     ConfigError, RegistryNotApplied, NaiveTimestampError
* ``feature_platform.mlflow_locations``  tracking_uri, artifact_location
"""

from __future__ import annotations

from feature_platform.errors import ConfigError, NaiveTimestampError, RegistryNotApplied
from feature_platform.mlflow_locations import (
    artifact_location as mlflow_artifact_location,
)
from feature_platform.profiles import (
    _ACTIVE,
    PLAIN_FEAST,
    PLAIN_FEAST_LOCAL,
    PROFILES,
    Profile,
    active_profile,
    artifacts_dir,
    child_environment,
    data_dir,
    feast_cli,
    get_store,
    load_repo_config,
    offline_kind,
    project_name,
    read_env_file,
    repo_dir,
    repo_module,
    require_applied,
    resolve_profile,
)
from feature_platform.settings import Settings, settings
from feature_platform.utc import (
    ensure_utc,
    ensure_utc_column,
    parse_utc,
    stored_utc,
    utc_now,
)

__all__ = [
    "_ACTIVE",
    "PLAIN_FEAST",
    "PLAIN_FEAST_LOCAL",
    "PROFILES",
    "ConfigError",
    "NaiveTimestampError",
    "Profile",
    "RegistryNotApplied",
    "Settings",
    "active_profile",
    "artifacts_dir",
    "child_environment",
    "data_dir",
    "ensure_utc",
    "ensure_utc_column",
    "feast_cli",
    "get_store",
    "load_repo_config",
    "mlflow_artifact_location",
    "offline_kind",
    "parse_utc",
    "project_name",
    "read_env_file",
    "repo_dir",
    "repo_module",
    "require_applied",
    "resolve_profile",
    "settings",
    "stored_utc",
    "utc_now",
]
