"""``run_check``: every governance rule over the definitions in a repo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feature_platform.governance.breaking import compare_snapshots
from feature_platform.governance.findings import CheckReport, Finding
from feature_platform.governance.pii_rules import (
    check_pii_definitions,
    check_pii_exposure,
)
from feature_platform.governance.schema import (
    LOCK_FILE,
    definitions_snapshot,
    lock_path,
    read_lock,
    registry_snapshot,
)
from feature_platform.governance.ttl import check_ttl_rule
from feature_platform.governance.utc import check_source_utc

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["run_check"]


def run_check(
    repo: Path | str,
    *,
    store: FeatureStore | None = None,
    data: bool = False,
) -> CheckReport:
    """All governance rules over the definitions in ``repo``.

    Compares with ``schema.lock.json`` (always) and with ``store``'s registry
    (when given and it holds the project). ``data=True`` adds the checks that
    read data: UTC sources and PII exposure in the online store.
    """
    report = CheckReport()
    snap = definitions_snapshot(repo)
    report.findings += check_ttl_rule(snap)
    report.findings += check_pii_definitions(snap)
    lock = read_lock(repo)
    if lock is None:
        report.findings.append(
            Finding(
                "breaking",
                "error",
                LOCK_FILE,
                f"{lock_path(repo)} is missing; create it with "
                "`feature-platform check --update-lock` and commit it",
            )
        )
    else:
        report.compared.append(LOCK_FILE)
        report.findings += compare_snapshots(lock, snap, against=LOCK_FILE)
        if lock != snap and not report.errors:
            report.findings.append(
                Finding(
                    "breaking",
                    "warning",
                    LOCK_FILE,
                    f"{LOCK_FILE} is behind the definitions (additions only); "
                    "run `make schema-lock` and commit it so the next change is "
                    "compared with this schema",
                )
            )
    if store is not None:
        held = registry_snapshot(store)
        label = f"registry project {store.project}"
        if held is not None:
            report.compared.append(label)
        report.findings += compare_snapshots(held, snap, against=label)
        if data:
            report.findings += check_source_utc(store)
            report.findings += check_pii_exposure(store)
    return report
