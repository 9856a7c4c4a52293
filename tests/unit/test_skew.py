"""Offline-vs-online skew check, against the brute-force reference."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform.materialize import materialize_window
from feature_platform.quality.sampling import offline_latest
from feature_platform.skew import SkewCheckFailed, check_online_skew, values_match
from tests.conftest import TEST_END, hours_ago
from tests.reference import latest_offline_values

KEYS = {"customer_stats": "customer_id", "driver_stats": "driver_id"}


@pytest.mark.parametrize(
    ("offline", "online", "kind", "match"),
    [
        (1.0, 1.0 + 1e-9, "DOUBLE", True),
        (1.0, 1.001, "DOUBLE", False),
        (np.float32(0.1), float(np.float32(0.1)), "FLOAT", True),
        (0.1, float(np.float32(0.1)), "FLOAT", True),  # float32 round trip
        (np.int64(7), 7, "INT64", True),
        (7, 8, "INT64", False),
        ("home", "home", "STRING", True),
        ("home", "beauty", "STRING", False),
        (None, None, "STRING", True),
        (math.nan, None, "DOUBLE", True),
        (math.nan, 1.0, "DOUBLE", False),
        (3, None, "INT64", False),
    ],
)
def test_values_match(offline, online, kind, match) -> None:
    assert values_match(offline, online, kind) is match


@pytest.mark.parametrize("name", ["customer_stats", "driver_stats"])
def test_offline_latest_matches_reference(
    applied_local_store, sample_repo: Path, name: str
) -> None:
    """What the skew check expects online: the offline store's latest row per
    entity within ttl, every column and dtype as the brute-force reference."""
    view = applied_local_store.get_feature_view(name)
    source = pd.read_parquet(sample_repo / "data" / f"{name}.parquet")
    got = offline_latest(applied_local_store, view, TEST_END)
    want = latest_offline_values(
        source, KEYS[name], pd.Timestamp(TEST_END), ttl=pd.Timedelta(view.ttl)
    )
    key = KEYS[name]
    assert sorted(got.columns) == sorted(want.columns)
    pd.testing.assert_frame_equal(
        got[list(want.columns)].sort_values(key).reset_index(drop=True),
        want.sort_values(key).reset_index(drop=True),
    )


def test_clean_materialization_has_no_skew(local_store, local_repo: Path) -> None:
    materialize_window(local_store, TEST_END - timedelta(days=3), TEST_END)
    summary = check_online_skew(local_store, end=TEST_END, sample_size=10_000)
    assert summary["success"] is True
    assert summary["mismatches"] == 0
    for name, report in summary["views"].items():
        view = local_store.get_feature_view(name)
        source = pd.read_parquet(local_repo / "data" / f"{name}.parquet")
        want = latest_offline_values(
            source, KEYS[name], pd.Timestamp(TEST_END), ttl=pd.Timedelta(view.ttl)
        )
        # every entity within ttl was sampled and compared, feature by feature
        assert report["sampled"] == len(want)
        assert report["compared"] == len(want) * len(view.features)
        for feature in view.features:
            null_rate = want[feature.name].isna().mean()
            assert report["by_feature"][feature.name]["null_rate"] == pytest.approx(
                null_rate
            )


def test_detects_values_that_differ(local_store, local_repo: Path) -> None:
    materialize_window(local_store, TEST_END - timedelta(days=3), TEST_END)
    path = local_repo / "data" / "customer_stats.parquet"
    source = pd.read_parquet(path)
    latest = latest_offline_values(
        source, "customer_id", pd.Timestamp(TEST_END), ttl=pd.Timedelta(days=3)
    )
    changed = latest["customer_id"].iloc[:7].tolist()
    # The offline truth changes for 7 customers after the online store was written.
    rows = source.index[source["customer_id"].isin(changed)]
    source.loc[rows, "lifetime_value"] += 1.0
    source.to_parquet(path, index=False)

    with pytest.raises(SkewCheckFailed) as info:
        check_online_skew(local_store, end=TEST_END, sample_size=10_000)
    report = info.value.summary["views"]["customer_stats"]
    assert report["mismatches"] == 7
    assert report["by_feature"]["lifetime_value"]["mismatches"] == 7
    assert report["by_feature"]["total_orders"]["mismatches"] == 0
    assert {ex["entity"]["customer_id"] for ex in report["examples"]} <= set(changed)
    assert info.value.summary["views"]["driver_stats"]["mismatches"] == 0
    assert "customer_stats: 7 of" in str(info.value)

    # Below the configured rate it passes and still reports the mismatches.
    rate = report["mismatch_rate"]
    ok = check_online_skew(
        local_store,
        end=TEST_END,
        sample_size=10_000,
        views=["customer_stats"],
        max_mismatch_rate=rate,
    )
    assert ok["success"] is True and ok["mismatches"] == 7


def test_window_sampling_and_missing_values(local_store) -> None:
    start = hours_ago(4)
    materialize_window(local_store, start, TEST_END)
    # The entities this window wrote agree with the offline data...
    run = check_online_skew(local_store, start=start, end=TEST_END, sample_size=50)
    assert run["success"] is True
    assert 0 < run["views"]["customer_stats"]["sampled"] <= 50
    # ...but entities within ttl that were never materialized read back null.
    whole = check_online_skew(
        local_store, end=TEST_END, sample_size=10_000, raise_on_failure=False
    )
    customers = whole["views"]["customer_stats"]
    assert whole["success"] is False
    assert customers["null_rate"] > 0.5
    assert customers["mismatches"] > 0


def test_rejects_bad_arguments(applied_local_store) -> None:
    with pytest.raises(ValueError, match="sample_size"):
        check_online_skew(applied_local_store, end=TEST_END, sample_size=0)
    with pytest.raises(ValueError, match="max_mismatch_rate"):
        check_online_skew(applied_local_store, end=TEST_END, max_mismatch_rate=2)


def test_backfill_check_skips_views_that_hold_newer_values(local_store) -> None:
    materialize_window(local_store, TEST_END - timedelta(days=1), TEST_END)
    past = hours_ago(12)
    # As of 12 hours ago the online store is "wrong": it holds newer values...
    stale = check_online_skew(
        local_store, start=hours_ago(20), end=past, raise_on_failure=False
    )
    assert stale["success"] is False and stale["mismatches"] > 0
    # ...which is right after a later window was materialized: a backfill of
    # the past skips those views instead of failing.
    skipped = check_online_skew(
        local_store, start=hours_ago(20), end=past, skip_if_newer=True
    )
    assert skipped["success"] is True
    for report in skipped["views"].values():
        assert report["compared"] == 0
        assert TEST_END.isoformat() in report["skipped"]


def test_sampling_nothing_fails(applied_local_store) -> None:
    """No entity compared proves nothing: a check that sampled nothing fails."""
    long_ago = TEST_END - timedelta(days=365)  # before the sample data
    summary = check_online_skew(
        applied_local_store, end=long_ago, sample_size=10, raise_on_failure=False
    )
    assert summary["success"] is False and summary["compared"] == 0
    for report in summary["views"].values():
        assert report["sampled"] == 0 and "sampled no entity" in report["failed"]
    with pytest.raises(SkewCheckFailed, match="customer_stats: sampled no entity"):
        check_online_skew(applied_local_store, end=long_ago, sample_size=10)


def test_a_quiet_window_checks_the_latest_within_ttl(local_store) -> None:
    """A run's window with no source row (a daily snapshot under a 4-hourly
    schedule) still compares the values online: the latest within ttl as of the
    window's end. Only when nothing lies within ttl does the check fail."""
    materialize_window(local_store, TEST_END - timedelta(days=3), TEST_END)
    quiet = check_online_skew(
        local_store,
        start=TEST_END + timedelta(minutes=1),
        end=TEST_END + timedelta(minutes=30),
        sample_size=50,
    )
    assert quiet["success"] is True
    for report in quiet["views"].values():
        assert "widened" in report and report["compared"] > 0
    far = TEST_END + timedelta(days=30)  # past every ttl: nothing to compare
    summary = check_online_skew(
        local_store, start=far - timedelta(hours=4), end=far, raise_on_failure=False
    )
    assert summary["success"] is False and summary["compared"] == 0
    assert all("sampled no entity" in v["failed"] for v in summary["views"].values())


def test_checking_no_view_fails(applied_local_store) -> None:
    summary = check_online_skew(
        applied_local_store, end=TEST_END, views=[], raise_on_failure=False
    )
    assert summary["views"] == {} and summary["success"] is False
    with pytest.raises(SkewCheckFailed, match="no online feature view was checked"):
        check_online_skew(applied_local_store, end=TEST_END, views=[])
