"""Governance rules on real definitions: ttl rule, breaking changes, UTC, audit log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.audit import git_state, list_audit
from feature_platform.cli import main
from feature_platform.definitions import apply_definitions
from feature_platform.errors import NaiveTimestampError
from feature_platform.governance import (
    LOCK_FILE,
    check_source_utc,
    check_ttl_rule,
    definitions_snapshot,
    require_utc_columns,
    run_check,
)
from feature_platform.profiles import get_store
from feature_platform.training import build_training_set
from tests.conftest import REPO_SRC, ROOT, copy_repo


def _errors(report) -> list[tuple[str, str]]:
    return [(f.subject, f.message) for f in report.errors]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the definitions (with the committed schema.lock.json)."""
    return copy_repo(tmp_path / "repo")


def test_committed_definitions_pass_and_lock_is_current() -> None:
    report = run_check(REPO_SRC)
    assert report.ok, _errors(report)
    assert report.compared == [LOCK_FILE]
    lock = json.loads((REPO_SRC / LOCK_FILE).read_text())
    stale = [f for f in report.findings if f.severity == "warning"]
    assert bool(stale) == (lock != definitions_snapshot(REPO_SRC))


def _append(repo: Path, file: str, code: str) -> None:
    """Edit a definition after it is built (robust to how the file is written)."""
    with (repo / file).open("a") as fh:
        fh.write("\n" + code + "\n")


REMOVE_TOTAL_TRIPS = (
    "driver_stats.features = "
    '[f for f in driver_stats.features if f.name != "total_trips"]'
)
# Each case: a real edit of the definitions and the message it must produce.
BREAKING = [
    pytest.param(
        "features.py",
        REMOVE_TOTAL_TRIPS,
        "driver_stats:total_trips",
        r"feature driver_stats:total_trips \(Int64\) was removed; .*add "
        r"`total_trips_v2` instead",
        id="removed-feature",
    ),
    pytest.param(
        "features.py",
        'next(f for f in customer_stats.features if f.name == "avg_order_amount")'
        ".dtype = Float32",
        "customer_stats:avg_order_amount",
        r"changed dtype Float64 -> Float32; restore Float64 and add a new feature "
        r"`avg_order_amount_v2` \(Float32\) instead",
        id="dtype-change",
    ),
    pytest.param(
        "entities.py",
        'driver.join_key = "driver_uuid"',
        "driver",
        r"entity driver join key changed driver_id -> driver_uuid",
        id="join-key-change",
    ),
    pytest.param(
        "entities.py",
        "customer.value_type = ValueType.STRING",
        "customer",
        r"entity customer value type changed INT64 -> STRING",
        id="entity-value-type-change",
    ),
    pytest.param(
        "feature_services.py",
        "for _p in churn_prediction_service.feature_view_projections:\n"
        '    _p.features = [f for f in _p.features if f.name != "churn_risk_score"]',
        "churn_prediction_service",
        r"feature service churn_prediction_service lost "
        r"\['customer_stats:churn_risk_score'\]",
        id="service-loses-feature",
    ),
    pytest.param(
        "features.py",
        "driver_stats.ttl = timedelta(hours=4)",
        "driver_stats",
        r"ttl of driver_stats shrinks 6h -> 4h, below 3 x its schedule interval "
        r"\(= 6h\); .*keep 6h",
        id="ttl-shrinks-below-rule",
    ),
    pytest.param(
        "data_sources.py",
        "customer_stats_source.file_options.uri = "
        'customer_stats_source.path.replace("customer_stats", "customer_stats_90d")',
        "customer_stats",
        r"source path of customer_stats changed "
        r"'\{data_dir\}/customer_stats.parquet' -> "
        r"'\{data_dir\}/customer_stats_90d.parquet'; .*create a new view version "
        r"`customer_stats_v2`",
        id="source-path-change",
    ),
]


ADD_90D = """customer_stats.features.append(
    Field(
        name="avg_order_amount_90d",
        dtype=Float64,
        description="Mean order value over the last 90 days, EUR",
    )
)"""
SERVE_90D = """for _p in churn_prediction_service.feature_view_projections:
    if _p.name == "customer_stats":
        _p.features.append(customer_stats.features[-1])"""


@pytest.mark.parametrize(("file", "code", "subject", "message"), BREAKING)
def test_breaking_changes_fail_with_advice(
    repo: Path, file, code, subject, message
) -> None:
    _append(repo, file, code)
    report = run_check(repo)
    assert not report.ok
    matching = [m for s, m in _errors(report) if s == subject]
    assert matching, _errors(report)
    assert any(re.search(message, m) for m in matching), matching


def test_source_timestamp_field_change_fails(repo: Path) -> None:
    with (repo / "data_sources.py").open("a") as fh:
        fh.write('\ncustomer_stats_source.timestamp_field = "observed_at"\n')
    report = run_check(repo)
    msgs = [m for s, m in _errors(report) if s == "customer_stats"]
    assert any(
        "timestamp field of customer_stats's source changed 'event_timestamp' -> "
        "'observed_at'" in m
        for m in msgs
    ), _errors(report)


def test_additions_pass(repo: Path) -> None:
    _append(repo, "features.py", ADD_90D)
    _append(repo, "feature_services.py", SERVE_90D)
    report = run_check(repo)
    assert report.ok, _errors(report)
    [warning] = [f for f in report.findings if f.severity == "warning"]
    assert "make schema-lock" in warning.message
    infos = {
        f.message.split(" (vs")[0] for f in report.findings if f.severity == "info"
    }
    assert "feature customer_stats:avg_order_amount_90d added" in infos
    assert (
        "feature service churn_prediction_service gained "
        "customer_stats:avg_order_amount_90d" in infos
    )


def test_ttl_rule_uses_the_real_schedule(repo: Path) -> None:
    snap = definitions_snapshot(repo)
    assert check_ttl_rule(snap) == []  # 3d >= 3x4h, 6h >= 3x2h
    snap["feature_views"]["driver_stats"]["ttl_seconds"] = 5 * 3600
    snap["feature_views"]["unscheduled"] = {
        **snap["feature_views"]["driver_stats"],
        "ttl_seconds": 86400,
    }
    found = {(f.subject, f.severity): f.message for f in check_ttl_rule(snap)}
    assert set(found) == {("driver_stats", "error"), ("unscheduled", "error")}
    assert (
        "below 3 x its 2h materialization interval (= 6h)"
        in found[("driver_stats", "error")]
    )
    assert "SCHEDULES" in found[("unscheduled", "error")]


def test_missing_lock_fails(repo: Path) -> None:
    (repo / LOCK_FILE).unlink()
    report = run_check(repo)
    assert [f.subject for f in report.errors] == [LOCK_FILE]
    assert "--update-lock" in report.errors[0].message


def test_registry_comparison_and_cli(
    local_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Applied registry vs edited definitions; the CLI exits 1 and says what to do."""
    store = get_store("local", repo=local_repo)
    apply_definitions(store)
    report = run_check(local_repo, store=store)
    assert report.ok and report.compared == [
        LOCK_FILE,
        f"registry project {store.project}",
    ]

    # Accepting a breaking change into the lock does not fool the registry guard.
    _append(local_repo, "features.py", REMOVE_TOTAL_TRIPS)
    rc = main(["check", "--repo", str(local_repo), "--update-lock", "--registry"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["errors"] == 1
    [finding] = [f for f in out["findings"] if f["severity"] == "error"]
    assert finding["subject"] == "driver_stats:total_trips"
    assert f"vs registry project {store.project}" in finding["message"]


# ------------------------------------------------------------------------- UTC


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (pd.to_datetime(["2026-01-01T00:00:00Z"]), None),
        (
            pd.to_datetime(["2026-01-01T00:00:00"]),
            "column 'event_timestamp' holds naive",
        ),
        (
            pd.to_datetime(["2026-01-01T00:00:00Z"]).tz_convert("Europe/Berlin"),
            "column 'event_timestamp' is in timezone Europe/Berlin, not UTC",
        ),
        (
            pd.Series(["2026-01-01"]),
            "src: column 'event_timestamp' must hold timezone-aware",
        ),
    ],
)
def test_require_utc_columns(values, error) -> None:
    df = pd.DataFrame({"event_timestamp": values})
    if error is None:
        require_utc_columns(df, ["event_timestamp"], dataset="src")
    else:
        with pytest.raises(NaiveTimestampError, match=error):
            require_utc_columns(df, ["event_timestamp"], dataset="src")


def test_naive_source_is_rejected_naming_the_column(
    applied_local_store, tmp_path: Path
) -> None:
    assert all(f.severity == "info" for f in check_source_utc(applied_local_store))
    repo = copy_repo(tmp_path / "repo")
    data = repo / "data"
    data.mkdir()
    src = Path(applied_local_store.repo_path) / "data"
    for name in ("customer_stats", "driver_stats"):
        df = pd.read_parquet(src / f"{name}.parquet")
        if name == "customer_stats":  # a naive created_timestamp column
            df["created_timestamp"] = df["created_timestamp"].dt.tz_localize(None)
        df.to_parquet(data / f"{name}.parquet")
    store = get_store("local", repo=repo)
    apply_definitions(store)
    errors = [f for f in check_source_utc(store) if f.severity == "error"]
    assert [f.subject for f in errors] == ["customer_stats_source"]
    assert "column 'created_timestamp' holds naive timestamps" in errors[0].message


def test_naive_entity_dataframe_is_rejected_naming_the_column(
    applied_local_store,
) -> None:
    entity_df = pd.DataFrame(
        {
            "customer_id": [1_000_001],
            "event_timestamp": pd.to_datetime(["2026-01-01T00:00:00"]),
        }
    )
    with pytest.raises(NaiveTimestampError, match="column 'event_timestamp'"):
        build_training_set(applied_local_store, entity_df)


# ------------------------------------------------------------------- audit log


def test_every_apply_is_audited(local_repo: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEATURE_PLATFORM_ACTOR", "ci@example.com")
    store = get_store("local", repo=local_repo)
    apply_definitions(store)
    _append(local_repo, "features.py", ADD_90D)
    monkeypatch.setenv("FEATURE_PLATFORM_ACTOR", "gina@growth")
    apply_definitions(store)

    rows = list_audit(store)
    assert [r["actor"] for r in rows] == ["gina@growth", "ci@example.com"]
    newest, first = rows
    assert newest["id"] > first["id"]
    assert newest["applied_at"] >= first["applied_at"]
    assert newest["applied_at"].endswith("+00:00")
    assert newest["git_commit"] is None  # a temp copy is no git work tree
    changes = [c["message"] for c in newest["schema_changes"]]
    assert any(
        "feature customer_stats:avg_order_amount_90d added" in c for c in changes
    )
    assert "avg_order_amount_90d" in newest["registry_changes"]
    first_changes = {c["message"].split(" (vs")[0] for c in first["schema_changes"]}
    assert {"feature view customer_stats added", "entity driver added"} <= first_changes
    assert "\x1b[" not in first["registry_changes"]  # terminal colours stripped
    # Stored in the registry's own database.
    import sqlite3

    db = store.config.registry.path.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM feature_platform_audit_log WHERE project = ?",
            (store.project,),
        ).fetchone()
    assert count == 2


def test_audit_cli_lists_newest_first(
    local_store, local_repo: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_ACTOR", "lou@logistics")
    apply_definitions(local_store)  # no change, still audited
    assert main(["--profile", "local", "audit", "--limit", "1"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["actor"] == "lou@logistics" and row["project"] == local_store.project
    assert row["schema_changes"] == []


def test_git_state_of_the_repo() -> None:
    commit, dirty = git_state(ROOT / "feature_repo")
    assert commit is not None and len(commit) == 40
    assert isinstance(dirty, bool)
