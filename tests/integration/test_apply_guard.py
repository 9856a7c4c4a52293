"""Breaking changes blocked at apply, on the services profile (PostgreSQL SQL
registry of this session's private database).

The repo is applied, then a modified copy of it (in tmp) is applied to the same
project through the CLI: a breaking change is refused and leaves the registry
as it was; ``--allow-breaking --reason`` applies it and the audit log keeps the
reason, the changes and the Feast version of each changed view.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_services_store

pytestmark = pytest.mark.integration

DTYPE_CHANGE = (
    'next(f for f in customer_stats.features if f.name == "total_orders")'
    ".dtype = Float64"
)
REMOVE_FEATURE = (
    "driver_stats.features = "
    '[f for f in driver_stats.features if f.name != "total_trips"]'
)
SOURCE_PATH_CHANGE = (
    "customer_stats_source.file_options.uri = customer_stats_source.path.replace("
    '"customer_stats.parquet", "customer_stats_90d.parquet")'
)


@pytest.fixture
def store(
    services_env: dict[str, str], local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The repo applied on its own project of the PostgreSQL registry. Its data
    directory is named (as a shared registry's must be), so a modified copy of the
    repo reads the same source files."""
    monkeypatch.setenv("FEATURE_PLATFORM_ACTOR", "ci@example.com")
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(local_repo / "data"))
    with fresh_services_store(local_repo, monkeypatch, "guard") as applied:
        assert applied.config.registry.path.startswith("postgresql+psycopg://")
        yield applied


def _modified_copy(src: Path, dst: Path, edits: dict[str, str]) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for file, code in edits.items():
        with (dst / file).open("a") as fh:
            fh.write("\n" + code + "\n")
    return dst


def _registry_state(store: Any) -> dict[str, Any]:
    """What the registry holds: the schema contract, every view's stored
    definition and Feast's version history of it."""
    from feature_platform.governance import registry_snapshot

    snap = registry_snapshot(store)
    views = store.registry.list_feature_views(store.project, allow_cache=False)
    return {
        "snapshot": snap,
        "views": {v.name: v.to_proto().SerializeToString() for v in views},
        "versions": {
            v.name: [
                r["version"]
                for r in store.registry.list_feature_view_versions(
                    v.name, store.project
                )
            ]
            for v in views
        },
    }


def _cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    repo: Path,
    *args: str,
) -> tuple[int, str, str]:
    from feature_platform.cli import main

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(repo))
    capsys.readouterr()
    rc = main(["--profile", "services", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_breaking_change_is_refused_and_the_registry_is_unchanged(
    store, local_repo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from feature_platform.audit import list_audit

    before = _registry_state(store)
    audited = len(list_audit(store))
    repo = _modified_copy(
        local_repo,
        tmp_path / "changed",
        {"features.py": DTYPE_CHANGE + "\n" + REMOVE_FEATURE},
    )

    rc, _out, err = _cli(capsys, monkeypatch, repo, "apply")
    assert rc == 2
    assert (
        f"apply refused: 2 breaking change(s) vs registry project {store.project}"
        in err
    )
    assert (
        "[dtype] feature customer_stats:total_orders changed dtype Int64 -> Float64; "
        "restore Int64 and add a new feature `total_orders_v2` (Float64) instead"
    ) in err
    assert (
        "[feature_removed] feature driver_stats:total_trips (Int64) was removed; "
    ) in err and "add `total_trips_v2` instead" in err
    assert '--allow-breaking --reason "' in err

    # Feast's own apply through the platform CLI is refused the same way.
    rc, _out, err = _cli(capsys, monkeypatch, repo, "feast", "apply")
    assert rc == 2 and "[dtype]" in err and "[feature_removed]" in err

    # --allow-breaking alone is not enough.
    rc, _out, err = _cli(capsys, monkeypatch, repo, "apply", "--allow-breaking")
    assert rc == 2 and "--allow-breaking needs --reason" in err

    assert _registry_state(store) == before
    assert len(list_audit(store)) == audited  # nothing applied, nothing logged


def test_allow_breaking_with_reason_applies_and_audits(
    store, local_repo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import json

    from feature_platform.audit import list_audit
    from feature_platform.governance import definitions_snapshot, registry_snapshot

    before = _registry_state(store)
    assert before["versions"] == {"customer_stats": ["v0"], "driver_stats": ["v0"]}
    repo = _modified_copy(
        local_repo,
        tmp_path / "changed",
        {"features.py": DTYPE_CHANGE + "\n" + REMOVE_FEATURE},
    )
    monkeypatch.setenv("FEATURE_PLATFORM_ACTOR", "gina@growth")
    reason = "CHURN-42: total_orders is fractional after the merge; models retrained"
    rc, out, _err = _cli(
        capsys, monkeypatch, repo, "apply", "--allow-breaking", "--reason", reason
    )
    assert rc == 0
    summary = json.loads(out)
    assert summary["versions"] == {"customer_stats": "v1", "driver_stats": "v1"}
    assert len(summary["breaking_changes"]) == 2

    # Applied: the registry holds the new definitions ...
    assert registry_snapshot(store) == definitions_snapshot(repo)
    # ... and Feast kept the previous schema as version v0 of each view.
    after = _registry_state(store)
    assert after["versions"] == {
        "customer_stats": ["v0", "v1"],
        "driver_stats": ["v0", "v1"],
    }
    v0 = store.registry.get_feature_view_by_version("customer_stats", store.project, 0)
    assert {f.name: str(f.dtype) for f in v0.features}["total_orders"] == "Int64"

    [row, *_] = list_audit(store)
    assert row["actor"] == "gina@growth"
    assert row["reason"] == reason
    assert row["versions"] == {"customer_stats": "v1", "driver_stats": "v1"}
    assert sorted(c["change"] for c in row["breaking_changes"]) == [
        "dtype",
        "feature_removed",
    ]
    assert {c["subject"] for c in row["breaking_changes"]} == {
        "customer_stats:total_orders",
        "driver_stats:total_trips",
    }
    assert row["applied_at"].endswith("+00:00")

    # The registry is the new baseline: the same definitions apply again.
    rc, out, _err = _cli(capsys, monkeypatch, repo, "apply")
    assert rc == 0 and "breaking_changes" not in json.loads(out)
    assert list_audit(store)[0]["reason"] is None


def test_source_path_change_is_detected(
    store, local_repo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """The spec's example: the same feature names silently computed from another
    source (a 30-day window becoming 90 days)."""
    from feature_platform.governance import run_check

    before = _registry_state(store)
    repo = _modified_copy(
        local_repo, tmp_path / "changed", {"data_sources.py": SOURCE_PATH_CHANGE}
    )
    data = local_repo / "data"
    shutil.copy(data / "customer_stats.parquet", data / "customer_stats_90d.parquet")
    rc, _out, err = _cli(capsys, monkeypatch, repo, "apply")
    assert rc == 2
    assert (
        "[source_path] source path of customer_stats changed "
        "'{data_dir}/customer_stats.parquet' -> "
        "'{data_dir}/customer_stats_90d.parquet'"
    ) in err
    assert "create a new view version `customer_stats_v2` on the new source" in err
    assert _registry_state(store) == before

    # The CI check against schema.lock.json applies the same rule.
    [lock_error] = [f for f in run_check(repo).errors if f.change == "source_path"]
    assert lock_error.subject == "customer_stats"
    assert lock_error.message.endswith("(vs schema.lock.json)")


def test_additive_change_applies(
    store, local_repo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """A new feature, a longer ttl and a new tag pass without any flag."""
    import json

    from feature_platform.audit import list_audit

    repo = _modified_copy(
        local_repo,
        tmp_path / "changed",
        {
            "features.py": 'customer_stats.features.append(Field(name="orders_90d", '
            "dtype=Int64))\n"
            "customer_stats.ttl = timedelta(days=4)\n"
            'customer_stats.tags["tier"] = "gold"'
        },
    )
    rc, out, _err = _cli(capsys, monkeypatch, repo, "apply")
    assert rc == 0 and "breaking_changes" not in json.loads(out)
    view = store.registry.get_feature_view("customer_stats", store.project)
    assert "orders_90d" in {f.name for f in view.features}
    assert view.ttl.days == 4 and view.tags["tier"] == "gold"
    row = list_audit(store)[0]
    assert row["reason"] is None and row["breaking_changes"] == []
    changes = {c["change"] for c in row["schema_changes"]}
    assert {"feature_added", "ttl_longer"} <= changes
