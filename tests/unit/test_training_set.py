"""Point-in-time correctness of the training set against a brute-force reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feature_platform.definitions import apply_definitions
from feature_platform.errors import NaiveTimestampError
from feature_platform.profiles import get_store
from feature_platform.training import build_training_set
from tests.conftest import copy_repo
from tests.reference import pit_join

T0 = pd.Timestamp("2026-03-10T12:00:00Z")
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)
FEATURES = ["total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score"]


def _row(cid, event, created, orders, amount=10.0, ltv=100.0, risk=0.5):
    return {
        "customer_id": cid,
        "event_timestamp": event,
        "created_timestamp": created,
        "total_orders": orders,
        "avg_order_amount": amount,
        "lifetime_value": ltv,
        "preferred_category": "home",
        "churn_risk_score": risk,
    }


# Adversarial feature rows, one customer per trap.
ROWS = [
    # 1: two versions of one event: the later created_timestamp wins.
    _row(1, T0 - 2 * H, T0 - 2 * H, 10),
    _row(1, T0 - 2 * H, T0 - 1 * H, 11),
    # 2: exactly at the ttl edge (3 days before) is still valid; a second older.
    _row(2, T0 - 3 * D, T0 - 3 * D, 20),
    _row(2, T0 - 3 * D - pd.Timedelta(seconds=1), T0 - 3 * D, 19),
    # 3: only older than ttl -> null.
    _row(3, T0 - 3 * D - H, T0 - 3 * D - H, 30),
    # 4: a late row (event before ts, arrived after ts) must not leak.
    _row(4, T0 - 5 * H, T0 - 5 * H, 40),
    _row(4, T0 - 1 * H, T0 + 2 * H, 41),
    # 5: a future event must not leak; event exactly at ts is valid.
    _row(5, T0, T0, 50),
    _row(5, T0 + H, T0 + H, 51),
    # 6: null feature values stay null (not filled from older rows).
    _row(6, T0 - 2 * D, T0 - 2 * D, 60, amount=12.0),
    _row(6, T0 - 1 * D, T0 - 1 * D, 61, amount=None, risk=None),
]
ENTITIES = pd.DataFrame(
    {
        "customer_id": [1, 2, 3, 4, 5, 6, 6, 999, 1, 2],
        "event_timestamp": [T0] * 8 + [T0 - 3 * H, T0 + D],
        "churned": [0, 1, 0, 1, 0, 1, 1, 0, 1, 0],
    }
)


@pytest.fixture(scope="module")
def trap_store(tmp_path_factory: pytest.TempPathFactory):
    repo = copy_repo(tmp_path_factory.mktemp("pit") / "repo")
    data = repo / "data"
    data.mkdir()
    source = pd.DataFrame(ROWS)
    source["churn_risk_score"] = source["churn_risk_score"].astype("float32")
    source.to_parquet(data / "customer_stats.parquet", index=False)
    pd.DataFrame(
        {
            "driver_id": pd.Series([1], dtype="int64"),
            "event_timestamp": [T0],
            "avg_rating": [4.5],
            "total_trips": [3],
            "acceptance_rate": [0.9],
            "avg_delivery_time_min": pd.Series([20.0], dtype="float32"),
        }
    ).to_parquet(data / "driver_stats.parquet", index=False)
    store = get_store("local", repo=repo)
    apply_definitions(store)
    return store, source


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["event_timestamp", "customer_id", "churned"]).reset_index(
        drop=True
    )
    out = df[["customer_id", "event_timestamp", "churned", *FEATURES]].copy()
    for col in FEATURES:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    return out


def test_matches_brute_force_on_adversarial_rows(trap_store) -> None:
    store, source = trap_store
    got = build_training_set(store, ENTITIES)
    expected = pit_join(ENTITIES, source, "customer_id", FEATURES, ttl=3 * D)
    assert len(got) == len(ENTITIES)  # every entity row preserved, incl. unknown 999
    pd.testing.assert_frame_equal(_norm(got), _norm(expected), check_dtype=False)

    at_t0 = got[got["event_timestamp"] == T0].set_index("customer_id")
    assert at_t0.loc[1, "total_orders"] == 11  # created_timestamp breaks the tie
    assert at_t0.loc[2, "total_orders"] == 20  # ttl edge inclusive
    assert pd.isna(at_t0.loc[3, "total_orders"])  # outside ttl
    assert at_t0.loc[4, "total_orders"] == 40  # late row not known yet
    assert at_t0.loc[5, "total_orders"] == 50  # no future leakage
    assert pd.isna(at_t0.loc[999, "total_orders"])  # unknown entity kept


def test_window_excludes_rows_after_end(trap_store) -> None:
    store, _ = trap_store
    got = build_training_set(store, ENTITIES, start=T0 - D, end=T0 + H)
    assert got["event_timestamp"].max() < T0 + H
    assert len(got) == (ENTITIES["event_timestamp"] < T0 + H).sum()


def test_naive_entity_timestamps_rejected(trap_store) -> None:
    store, _ = trap_store
    naive = ENTITIES.assign(
        event_timestamp=ENTITIES["event_timestamp"].dt.tz_localize(None)
    )
    with pytest.raises(NaiveTimestampError, match="event_timestamp"):
        build_training_set(store, naive)


def test_missing_entity_key_is_a_clear_error(trap_store) -> None:
    store, _ = trap_store
    with pytest.raises(ValueError, match="customer_id"):
        build_training_set(store, ENTITIES.drop(columns=["customer_id"]))


def test_sample_data_training_set_matches_reference(
    applied_local_store, sample_repo: Path
):
    labels = pd.read_parquet(sample_repo / "data" / "churn_labels.parquet").sample(
        300, random_state=0
    )
    source = pd.read_parquet(sample_repo / "data" / "customer_stats.parquet")
    got = build_training_set(applied_local_store, labels)
    expected = pit_join(labels, source, "customer_id", FEATURES, ttl=3 * D)
    pd.testing.assert_frame_equal(_norm(got), _norm(expected), check_dtype=False)
    assert got[FEATURES].notna().any(axis=1).mean() > 0.5
