"""The services profile against the real PostgreSQL registry and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, TEST_END
from tests.reference import latest_offline_values

pytestmark = pytest.mark.integration


def test_apply_materialize_and_read_online(services_store, local_repo: Path) -> None:
    from feature_platform.materialize import materialize_incremental
    from feature_platform.online import read_online

    # The registry really is PostgreSQL and the online store Redis.
    assert services_store.config.registry.path.startswith("postgresql+psycopg://")
    # Feast's Redis store through the platform's plugin.
    assert services_store.config.online_store.type == (
        "feature_platform.online_store.PlatformRedisOnlineStore"
    )
    assert {v.name for v in services_store.list_feature_views()} == {
        "customer_stats",
        "driver_stats",
    }

    result = materialize_incremental(services_store, TEST_END)
    assert result["views"]["customer_stats"]["rows"] > 0
    assert result["views"]["driver_stats"]["rows"] > 0

    customers = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")
    expected = latest_offline_values(
        customers, "customer_id", TEST_END, ttl=pd.Timedelta(days=3)
    )
    sample = expected.sample(50, random_state=1)
    online = read_online(
        services_store,
        [{"customer_id": int(c)} for c in sample["customer_id"]],
        feature_service="churn_prediction_service",
        now=TEST_END,
    )
    got = pd.DataFrame(online).set_index("customer_id")
    for cid, row in sample.set_index("customer_id").iterrows():
        assert got.loc[cid, "total_orders"] == row["total_orders"]
        assert got.loc[cid, "lifetime_value"] == pytest.approx(row["lifetime_value"])

    # The watermark lives in PostgreSQL: a second run is incremental and empty.
    again = materialize_incremental(services_store, TEST_END)
    assert again["rows_total"] == 0


def test_feast_cli_reads_the_same_profile(services_store, local_repo: Path) -> None:
    """`scripts/feast services ...` (plain feast) sees what the platform applied."""
    out = run_feast_cli("services", local_repo, services_store.project)
    assert "customer_stats" in out and "driver_stats" in out


def test_feast_cli_on_the_local_profile(
    local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local yaml names the project literally (plain `feast` needs no env), so
    this repo (its own SQLite files) is applied under that default name."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", "feature_platform")
    apply_definitions(get_store("local", repo=local_repo))
    out = run_feast_cli("local", local_repo, "feature_platform")
    assert "customer_stats" in out and "driver_stats" in out


def run_feast_cli(profile: str, repo: Path, project: str) -> str:
    env = {
        **os.environ,
        "FEATURE_PLATFORM_REPO": str(repo),
        "FEATURE_PLATFORM_PROJECT": project,
        "FEAST_BIN": str(Path(sys.executable).parent / "feast"),
    }
    out = subprocess.run(
        [str(ROOT / "scripts" / "feast"), profile, "feature-views", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout
