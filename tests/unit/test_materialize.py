"""Windowed and incremental materialization: what is written, idempotence, guards."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.errors import NaiveTimestampError
from feature_platform.materialize import (
    FutureWindowError,
    materialize_incremental,
    materialize_window,
)
from feature_platform.online import read_online
from tests.conftest import TEST_END
from tests.reference import latest_offline_values

CUSTOMER_FEATURES = [
    "total_orders",
    "avg_order_amount",
    "lifetime_value",
    "churn_risk_score",
]


def _source(repo: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(repo / "data" / f"{name}.parquet")


def _entities_in(df: pd.DataFrame, key: str, start: datetime, end: datetime) -> int:
    ts = df["event_timestamp"]
    return df.loc[(ts >= start) & (ts <= end), key].nunique()


def _online_customers(store, ids) -> pd.DataFrame:
    rows = [{"customer_id": int(i)} for i in ids]
    # Read "as of" the materialized end, so the ttl check is deterministic.
    out = read_online(
        store, rows, feature_service="churn_prediction_service", now=TEST_END
    )
    return pd.DataFrame(out).set_index("customer_id")


def test_incremental_writes_only_the_new_window(local_store, local_repo: Path) -> None:
    customers = _source(local_repo, "customer_stats")
    drivers = _source(local_repo, "driver_stats")
    mid = TEST_END - timedelta(days=2)
    first = materialize_window(local_store, mid - timedelta(days=3), mid)
    assert first["views"]["customer_stats"]["rows"] == _entities_in(
        customers, "customer_id", mid - timedelta(days=3), mid
    )
    assert first["views"]["driver_stats"]["rows"] == _entities_in(
        drivers, "driver_id", mid - timedelta(days=3), mid
    )

    second = materialize_incremental(local_store, TEST_END)
    for view, df, key in (
        ("customer_stats", customers, "customer_id"),
        ("driver_stats", drivers, "driver_id"),
    ):
        info = second["views"][view]
        assert info["start"] == mid.isoformat()  # continues from the watermark
        assert info["rows"] == _entities_in(df, key, mid, TEST_END)

    third = materialize_incremental(local_store, TEST_END)
    assert third["rows_total"] == 0  # nothing new: cheap


def test_online_equals_offline_latest_within_ttl(local_store, local_repo: Path) -> None:
    materialize_incremental(local_store, TEST_END)
    customers = _source(local_repo, "customer_stats")
    expected = latest_offline_values(
        customers, "customer_id", TEST_END, ttl=pd.Timedelta(days=3)
    ).set_index("customer_id")
    online = _online_customers(local_store, expected.index)
    assert len(expected) > 100
    for col in CUSTOMER_FEATURES:
        exp = expected[col].astype("float64")
        got = online.loc[expected.index, col].astype("float64")
        pd.testing.assert_series_equal(got, exp, check_names=False, rtol=1e-6)


def test_same_window_twice_is_idempotent(local_store, local_repo: Path) -> None:
    start, end = TEST_END - timedelta(days=3), TEST_END
    ids = _source(local_repo, "customer_stats")["customer_id"].unique()
    first = materialize_window(local_store, start, end)
    before = _online_customers(local_store, ids)
    again = materialize_window(local_store, start, end)
    after = _online_customers(local_store, ids)
    assert first["views"] == again["views"]
    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize(
    ("start", "end", "error", "message"),
    [
        (
            TEST_END - timedelta(hours=1),
            TEST_END + timedelta(days=1),
            FutureWindowError,
            "future",
        ),
        (TEST_END, TEST_END - timedelta(hours=1), ValueError, "empty window"),
        (
            TEST_END.replace(tzinfo=None) - timedelta(hours=1),
            TEST_END,
            NaiveTimestampError,
            "start=.* has no timezone",
        ),
    ],
)
def test_bad_windows_are_rejected_before_writing(
    local_store, start, end, error, message
) -> None:
    with pytest.raises(error, match=message):
        materialize_window(local_store, start, end)
    views = local_store.list_feature_views()
    assert all(not v.materialization_intervals for v in views)


def test_unknown_view_is_a_clear_error(local_store) -> None:
    with pytest.raises(ValueError, match="unknown feature view"):
        materialize_window(
            local_store, TEST_END - timedelta(hours=1), TEST_END, views=["nope"]
        )
