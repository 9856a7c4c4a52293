"""Apply and materialization on the production profile: PostgreSQL registry,
Redis online store (the platform's plugin), BigQuery sources (the emulator).

Every path runs the platform engine (registry lock, the validation gate
reading the BigQuery window, pii masking with the deployment's salt):
``materialize_incremental``, ``materialize_window`` and plain
``feast materialize``; ``FeatureStore.get_online_features`` then reads through
the online store plugin.
"""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import ROOT, TEST_END
from tests.production.conftest import (
    DATASET,
    JobCounter,
    bigquery_client,
    environment,
    production_store,
)
from tests.reference import latest_offline_values

pytestmark = pytest.mark.production

CUSTOMER_FEATURES = [
    "total_orders",
    "avg_order_amount",
    "lifetime_value",
    "preferred_category",
    "churn_risk_score",
    "email",
]
INTERVAL = timedelta(hours=4)  # customer_stats' materialization cadence


@pytest.fixture(scope="module")
def store(seeded_repo: Path, production_env: dict[str, str]):
    with environment(production_env) as mp:
        store = production_store(seeded_repo, mp, "mat")
        try:
            yield store
        finally:
            store.teardown()


def online_customers(store: Any, ids: list[int]) -> pd.DataFrame:
    """Feast's own read (``FeatureStore.get_online_features``: the plugin)."""
    refs = [f"customer_stats:{f}" for f in CUSTOMER_FEATURES]
    rows = store.get_online_features(
        features=refs, entity_rows=[{"customer_id": i} for i in ids]
    ).to_dict()
    return pd.DataFrame(rows).set_index("customer_id").sort_index()


def expected_customers(repo: Path, end: pd.Timestamp, salt: str) -> pd.DataFrame:
    """The reference: each customer's newest row within ttl of ``end``, masked
    with ``salt``; a value older than ttl at the moment of reading (now) is
    withheld by the online store's freshness rule, so it is expected null."""
    from feature_platform.pii import mask_values

    ttl = pd.Timedelta(days=3)
    source = pd.read_parquet(repo / "data" / "customer_stats.parquet")
    latest = latest_offline_values(source, "customer_id", end, ttl=ttl)
    stale = latest.loc[
        latest["event_timestamp"] < pd.Timestamp.now(tz="UTC") - ttl, "customer_id"
    ]
    latest = latest.set_index("customer_id")
    latest = latest.sort_index()[CUSTOMER_FEATURES].astype(object).copy()
    latest["email"] = mask_values(latest["email"].tolist(), salt)
    latest.loc[stale.tolist(), :] = None
    return latest


def gate_window_rows(repo: Path, view: str, interval: timedelta) -> int:
    """Source rows the gate reads for an interval ending at TEST_END: back to
    the view's freshness horizon (``validation.rules_for``) when that is earlier."""
    from feature_platform.validation import rules_for

    source = pd.read_parquet(repo / "data" / f"{view}.parquet")
    start = min(TEST_END - interval, TEST_END - rules_for(view).max_staleness)
    stamps = source["event_timestamp"]
    return int(((stamps >= start) & (stamps <= TEST_END)).sum())


def assert_cells_equal(got: pd.DataFrame, expected: pd.DataFrame) -> int:
    got = got.loc[expected.index, CUSTOMER_FEATURES]
    for col in CUSTOMER_FEATURES:
        if col in ("preferred_category", "email"):
            assert got[col].tolist() == expected[col].tolist(), col
            assert expected[col].notna().any(), col
        else:
            pd.testing.assert_series_equal(
                pd.to_numeric(got[col]).astype("float64"),
                pd.to_numeric(expected[col]).astype("float64"),
                check_names=False,
                rtol=1e-6,
            )
    return got.size


def test_apply_is_guarded_and_audited(store) -> None:
    from feature_platform.audit import list_audit
    from feature_platform.definitions import check_apply

    assert store.config.registry.path.startswith("postgresql+psycopg://")
    assert store.config.offline_store.dataset == DATASET
    # The platform's plugins on this profile: every read and write below is theirs.
    assert store.config.online_store.type == (
        "feature_platform.online_store.PlatformRedisOnlineStore"
    )
    assert store.config.batch_engine.type == "feature_platform.engine.PlatformEngine"
    rows = list_audit(store)
    assert rows and rows[0]["project"] == store.project
    check_apply(store)  # the definitions match what the registry holds


def test_dev_salt_is_refused(store, monkeypatch: pytest.MonkeyPatch) -> None:
    from feature_platform.materialize import materialize_window
    from feature_platform.pii import DEV_PII_SALT, PiiSaltError

    for salt, says in ((None, "is not set"), (DEV_PII_SALT, "public dev default")):
        if salt is None:
            monkeypatch.delenv("FEATURE_PLATFORM_PII_SALT")
        else:
            monkeypatch.setenv("FEATURE_PLATFORM_PII_SALT", salt)
        with pytest.raises(PiiSaltError, match=says):
            materialize_window(
                store, TEST_END - INTERVAL, TEST_END, views=["customer_stats"]
            )
    assert online_customers(store, [1000000])["total_orders"].isna().all()


def test_materialize_incremental_writes_the_reference_values(
    store, seeded_repo: Path, production_env: dict[str, str], results: dict
) -> None:
    """The first run loads everything within ttl up to one interval before the
    end; the next, one interval, costs what a scheduled run costs."""
    from feature_platform.materialize import materialize_incremental
    from feature_platform.pii import DEV_PII_SALT, mask_value

    first = materialize_incremental(store, TEST_END - INTERVAL)
    assert first["views"]["customer_stats"]["rows"] > 0, first
    counter = JobCounter().start()
    run = materialize_incremental(store, TEST_END)
    jobs = counter.stop()
    assert run["views"]["customer_stats"]["start"] == (TEST_END - INTERVAL).isoformat()
    assert run["views"]["customer_stats"]["rows"] > 0, run

    expected = expected_customers(
        seeded_repo, TEST_END, production_env["FEATURE_PLATFORM_PII_SALT"]
    )
    got = online_customers(store, [int(i) for i in expected.index])
    cells = assert_cells_equal(got, expected)
    # The deployment's salt masked the raw e-mail; no raw or dev-salted value.
    first_id = int(expected.index[0])
    raw = f"customer.{first_id}@example.com"
    assert got.loc[first_id, "email"] == mask_value(
        raw, salt=production_env["FEATURE_PLATFORM_PII_SALT"]
    )
    assert got.loc[first_id, "email"] != mask_value(raw, salt=DEV_PII_SALT)
    # Two views, each: the gate's window read and the latest-rows read.
    assert jobs["by_type"] == {"query": 4}, jobs
    results["materialize_incremental_one_interval"] = {
        **jobs,
        "views": {
            v: {
                "rows_written": r["rows"],
                "gate_window_rows": gate_window_rows(seeded_repo, v, INTERVAL),
            }
            for v, r in run["views"].items()
        },
        "online_cells_compared": cells,
    }
    # Idempotent: the same window again leaves the same hashes.
    again = materialize_incremental(store, TEST_END)
    assert again["rows_total"] == 0


def test_failed_gate_on_the_bigquery_window_writes_nothing(
    store, seeded_repo: Path
) -> None:
    """A driver row out of range inside the window (inserted into the BigQuery
    table): the gate reads the BigQuery window, fails, and nothing is written."""
    from feature_platform.errors import ValidationFailed
    from feature_platform.materialize import materialize_window

    client = bigquery_client()
    table = f"{DATASET}.driver_stats"
    bad_ts = (TEST_END - timedelta(minutes=30)).isoformat()
    client.query(
        f"INSERT INTO `{table}` (driver_id, event_timestamp, avg_rating, "
        f"total_trips, acceptance_rate, avg_delivery_time_min) VALUES "
        f"(-7, TIMESTAMP '{bad_ts}', 9.5, 1, 7.0, 20.0)"
    ).result()
    try:
        with environment({"FEATURE_PLATFORM_PROJECT": f"{store.project}_gate"}) as mp:
            gated = production_store(seeded_repo, mp, "gate")
            try:
                with pytest.raises(ValidationFailed) as failed:
                    materialize_window(gated, TEST_END - timedelta(hours=2), TEST_END)
                assert "acceptance_rate" in str(failed.value)
                assert "driver_stats" in str(failed.value)
                drivers = gated.get_online_features(
                    features=["driver_stats:avg_rating"],
                    entity_rows=[{"driver_id": -7}],
                ).to_dict()
                assert drivers["avg_rating"] == [None]
            finally:
                gated.teardown()
    finally:
        client.query(f"DELETE FROM `{table}` WHERE driver_id = -7").result()


def test_plain_feast_materialize_and_get_online_features(
    seeded_repo: Path, production_env: dict[str, str]
) -> None:
    """`feast materialize` (scripts/feast production) runs the platform engine
    on this profile; Feast's get_online_features reads the reference values."""
    with environment(production_env) as mp:
        cli_store = production_store(seeded_repo, mp, "cli")
        try:
            done = subprocess.run(
                [
                    str(ROOT / "scripts" / "feast"),
                    "production",
                    "materialize",
                    (TEST_END - timedelta(days=3)).isoformat(),
                    TEST_END.isoformat(),
                ],
                env={
                    **os.environ,
                    "FEATURE_PLATFORM_REPO": str(seeded_repo),
                    "FEATURE_PLATFORM_PROJECT": cli_store.project,
                },
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            cli_store.refresh_registry()
            for view in cli_store.list_feature_views():
                assert view.most_recent_end_time is not None, view.name
            expected = expected_customers(
                seeded_repo, TEST_END, production_env["FEATURE_PLATFORM_PII_SALT"]
            )
            got = online_customers(cli_store, [int(i) for i in expected.index])
            assert_cells_equal(got, expected)
        finally:
            cli_store.teardown()
