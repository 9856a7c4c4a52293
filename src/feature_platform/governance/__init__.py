"""Governance: the rules a change of the definitions, and the data, must pass.

* **TTL rule** (``ttl``): every online feature view's ttl is at least
  ``TTL_MULTIPLE`` (3) times its materialization interval
  (``feature_platform.schedules``), so a missed run or two never lets values
  expire between refreshes.
* **Breaking-change rule** (``breaking``; never change an existing feature,
  add a new one): the definitions are reduced to a *schema snapshot*
  (``schema``: entities, views with feature dtypes, ttl, source timestamps and
  location, services) and compared with the committed
  ``feature_repo/schema.lock.json`` (``check``) and with what the registry holds
  (``check --registry`` and every ``apply``). Removing a feature or view,
  changing a dtype, an entity's join key or value type, a view's entities, a
  source's type, path, table, query or timestamp fields, shortening a ttl, a
  feature service losing features are errors, each with its additive
  alternative; additions pass.
* **Apply guard** (``guard``): ``apply`` refuses those errors against the
  registry (``BreakingChangeError``) unless ``--allow-breaking --reason``.
* **UTC** (``utc``): timestamp columns of sources and entity dataframes must be
  timezone-aware UTC; anything else is rejected naming the column.
* **PII** (``pii_rules``): personal-looking fields must be tagged ``pii`` (and
  be strings); ``check --data`` fails when the online store serves a raw value.
  The masking itself is ``feature_platform.pii``.
* ``run_check`` (``check``) runs them all.

The audit log of applies is ``feature_platform.audit``.
"""

from __future__ import annotations

from feature_platform.governance.breaking import compare_snapshots
from feature_platform.governance.check import run_check
from feature_platform.governance.findings import CheckReport, Finding
from feature_platform.governance.guard import BreakingChangeError, guard_apply
from feature_platform.governance.pii_rules import (
    check_pii_definitions,
    check_pii_exposure,
)
from feature_platform.governance.schema import (
    LOCK_FILE,
    SNAPSHOT_VERSION,
    definitions_snapshot,
    lock_path,
    read_lock,
    registry_snapshot,
    snapshot,
    write_lock,
)
from feature_platform.governance.ttl import check_ttl_rule
from feature_platform.governance.utc import check_source_utc, require_utc_columns

__all__ = [
    "LOCK_FILE",
    "SNAPSHOT_VERSION",
    "BreakingChangeError",
    "CheckReport",
    "Finding",
    "check_pii_definitions",
    "check_pii_exposure",
    "check_source_utc",
    "check_ttl_rule",
    "compare_snapshots",
    "definitions_snapshot",
    "guard_apply",
    "lock_path",
    "read_lock",
    "registry_snapshot",
    "require_utc_columns",
    "run_check",
    "snapshot",
    "write_lock",
]
