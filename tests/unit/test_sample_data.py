"""The sample data is deterministic, messy in realistic ways, and learnable."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from feature_platform.sample_data import (
    SampleSpec,
    generate_customers,
    generate_drivers,
)

END = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = SampleSpec(customers=2_000, drivers=100, days=30, seed=3, end=END)


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_customers(SPEC)


def test_deterministic(customers) -> None:
    again = generate_customers(SPEC)
    pd.testing.assert_frame_equal(customers[0], again[0])
    pd.testing.assert_frame_equal(customers[1], again[1])
    other = generate_customers(SampleSpec(**{**SPEC.__dict__, "seed": 4}))
    assert not customers[0]["total_orders"].equals(other[0]["total_orders"])


def test_schema_and_utc(customers) -> None:
    stats, labels = customers
    assert list(stats.columns) == [
        "customer_id",
        "event_timestamp",
        "created_timestamp",
        "total_orders",
        "avg_order_amount",
        "lifetime_value",
        "preferred_category",
        "churn_risk_score",
        "email",  # personal data, tagged `pii`: masked before any store
    ]
    assert stats.groupby("customer_id")["email"].nunique().eq(1).all()
    for col in ("event_timestamp", "created_timestamp"):
        assert str(stats[col].dt.tz) == "UTC"
    assert stats["churn_risk_score"].dtype == np.float32
    assert stats["event_timestamp"].max() <= pd.Timestamp(END)
    assert stats["created_timestamp"].max() <= pd.Timestamp(END)
    assert (stats["created_timestamp"] >= stats["event_timestamp"]).all()
    assert set(labels.columns) == {
        "customer_id",
        "event_timestamp",
        "churned",
        "cart_value",  # request data of churn_prediction_service_v2
    }
    assert (labels["cart_value"] > 0).all() and labels["cart_value"].notna().all()


def test_realistic_mess(customers) -> None:
    stats, _ = customers
    delay = stats["created_timestamp"] - stats["event_timestamp"]
    late_share = (delay > pd.Timedelta(hours=6)).mean()
    assert 0.01 < late_share < 0.06  # ~3 % late-arriving rows
    assert 0.01 < stats["preferred_category"].isna().mean() < 0.06
    assert 0 < stats["churn_risk_score"].isna().mean() < 0.03
    dup = stats.duplicated(["customer_id", "event_timestamp"], keep=False)
    assert 0.005 < dup.mean() < 0.04  # restatements share an event time


def test_label_depends_on_features(customers) -> None:
    stats, labels = customers
    assert 0.1 < labels["churned"].mean() < 0.9
    merged = pd.merge_asof(
        labels.sort_values("event_timestamp"),
        stats.sort_values("event_timestamp")[
            ["customer_id", "event_timestamp", "churn_risk_score"]
        ],
        on="event_timestamp",
        by="customer_id",
        allow_exact_matches=False,
    ).dropna()
    by_label = merged.groupby("churned")["churn_risk_score"].mean()
    assert by_label[1] > by_label[0] + 0.15


def test_drivers_in_range() -> None:
    drivers = generate_drivers(SPEC)
    assert drivers["acceptance_rate"].between(0, 1).all()
    assert drivers["avg_rating"].dropna().between(1, 5).all()
    assert (drivers["total_trips"] >= 0).all()
    # Every 2 hours per driver, ~90 % present.
    per_driver = drivers.groupby("driver_id").size()
    assert per_driver.mean() == pytest.approx(30 * 12 * 0.9, rel=0.05)


def test_naive_end_rejected() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        SampleSpec(end=datetime(2026, 1, 1)).resolved_end()


@pytest.mark.parametrize("days", [2, 3, 10, 14, 15])
def test_short_histories_generate(days: int) -> None:
    """Any ``days >= MIN_DAYS`` works (it used to need more than 14); labels lie
    in the second half of a short history (after its first day) and within it."""
    from datetime import timedelta

    spec = SampleSpec(customers=200, drivers=5, days=days, seed=1, end=END)
    stats, labels = generate_customers(spec)
    assert len(stats) > 0 and len(labels) == 2 * spec.customers
    first_label_day = 14 if days > 14 else max(1, days // 2)
    first = pd.Timestamp(END - timedelta(days=days - first_label_day))
    assert labels["event_timestamp"].min() >= first
    assert labels["event_timestamp"].max() <= pd.Timestamp(END)
    assert len(generate_drivers(spec)) > 0


def test_long_histories_are_unchanged_by_the_short_history_rule() -> None:
    """Labels start after the 14-day warm-up whenever the history allows it."""
    from datetime import timedelta

    _, labels = generate_customers(SPEC)
    assert labels["event_timestamp"].min() >= pd.Timestamp(END - timedelta(days=16))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("days", 1, "days must be an integer >= 2, got 1"),
        ("customers", 0, "customers must be an integer >= 1, got 0"),
        ("drivers", -3, "drivers must be an integer >= 1, got -3"),
        ("seed", -1, "seed must be an integer >= 0, got -1"),
        ("labels_per_customer", 0, "labels_per_customer must be an integer >= 1"),
    ],
)
def test_spec_rejects_out_of_range_values(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SampleSpec(**{**SPEC.__dict__, field: value})
