"""Source validation suites (Great Expectations 1.x) on real sample data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform.errors import NaiveTimestampError, ValidationFailed
from feature_platform.validation import (
    format_failures,
    validate_frame,
    validate_sources,
)
from tests.conftest import TEST_END, hours_ago

WINDOW_START = hours_ago(4)


def _view(store, name: str):
    return store.get_feature_view(name)


def _slice(repo: Path, name: str, start=WINDOW_START) -> pd.DataFrame:
    frame = pd.read_parquet(repo / "data" / f"{name}.parquet")
    return frame[frame["event_timestamp"] >= pd.Timestamp(start)].reset_index(drop=True)


def test_sample_sources_pass(applied_local_store) -> None:
    summary = validate_sources(applied_local_store, start=WINDOW_START, end=TEST_END)
    assert summary["success"] is True
    assert summary["failures"] == []
    assert set(summary["sources"]) == {"customer_stats", "driver_stats"}
    for report in summary["sources"].values():
        assert report["rows_checked"] > 0
        assert report["evaluated"] >= 20
    # The customer slice reaches back to the freshness horizon (daily snapshots).
    assert (
        summary["sources"]["customer_stats"]["checked_from"]
        == (TEST_END - timedelta(hours=26)).isoformat()
    )


def _set(
    col: str, value, rows: slice = slice(0, 5)
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if value is None and pd.api.types.is_integer_dtype(df[col].dtype):
            df[col] = df[col].astype("float64")
            value_ = np.nan
        else:
            value_ = value
        df.loc[df.index[rows], col] = value_
        return df

    return mutate


def _naive(col: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(**{col: df[col].dt.tz_localize(None)})

    return mutate


def _shift(col: str, delta: timedelta, rows: slice = slice(0, 3)):
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[df.index[rows], col] = df.loc[df.index[rows], col] + delta
        return df

    return mutate


def _drop(col: str):
    return lambda df: df.drop(columns=[col])


CASES = [
    # (view, mutation, expectation type, column)
    (
        "driver_stats",
        _set("driver_id", None),
        "expect_column_values_to_not_be_null",
        "driver_id",
    ),
    (
        "driver_stats",
        _set("acceptance_rate", 1.7),
        "expect_column_values_to_be_between",
        "acceptance_rate",
    ),
    (
        "driver_stats",
        _set("avg_rating", 0.2),
        "expect_column_values_to_be_between",
        "avg_rating",
    ),
    (
        "driver_stats",
        _set("total_trips", -3),
        "expect_column_values_to_be_between",
        "total_trips",
    ),
    (
        "customer_stats",
        _set("churn_risk_score", 1.5),
        "expect_column_values_to_be_between",
        "churn_risk_score",
    ),
    (
        "customer_stats",
        _set("lifetime_value", -10.0),
        "expect_column_values_to_be_between",
        "lifetime_value",
    ),
    (
        "customer_stats",
        _set("total_orders", None),
        "expect_column_values_to_not_be_null",
        "total_orders",
    ),
    # more than the 5 % null-rate ceiling of avg_rating
    (
        "driver_stats",
        _set("avg_rating", np.nan, slice(0, None, 4)),
        "expect_column_values_to_not_be_null",
        "avg_rating",
    ),
    (
        "driver_stats",
        _naive("event_timestamp"),
        "expect_column_timestamps_to_be_utc",
        "event_timestamp",
    ),
    (
        "customer_stats",
        _naive("created_timestamp"),
        "expect_column_timestamps_to_be_utc",
        "created_timestamp",
    ),
    (
        "driver_stats",
        _shift("event_timestamp", timedelta(days=2)),
        "expect_column_values_to_be_between",
        "event_timestamp",
    ),
    (
        "customer_stats",
        _shift("created_timestamp", -timedelta(days=3)),
        "expect_column_pair_values_a_to_be_greater_than_b",
        "created_timestamp,event_timestamp",
    ),
    (
        "driver_stats",
        _drop("acceptance_rate"),
        "expect_column_to_exist",
        "acceptance_rate",
    ),
    (
        "driver_stats",
        lambda df: df.assign(total_trips=df["total_trips"].astype(str)),
        "expect_column_values_to_be_in_type_list",
        "total_trips",
    ),
]


@pytest.mark.parametrize(
    ("view_name", "mutate", "expectation", "column"),
    CASES,
    ids=[f"{c[0]}-{c[2].removeprefix('expect_')}-{c[3]}" for c in CASES],
)
def test_bad_data_is_reported(
    applied_local_store, sample_repo: Path, view_name, mutate, expectation, column
) -> None:
    view = _view(applied_local_store, view_name)
    good = _slice(sample_repo, view_name)  # passes: test_sample_sources_pass
    report = validate_frame(mutate(good), view, end=TEST_END, now=TEST_END)
    assert report["success"] is False
    assert (expectation, column) in {
        (f["expectation"], f["column"]) for f in report["failures"]
    }


def test_naive_timestamps_name_the_column(
    applied_local_store, sample_repo: Path
) -> None:
    view = _view(applied_local_store, "driver_stats")
    bad = _naive("event_timestamp")(_slice(sample_repo, "driver_stats"))
    report = validate_frame(bad, view, end=TEST_END, now=TEST_END)
    [tz] = [f for f in report["failures"] if f["expectation"].endswith("_utc")]
    assert "event_timestamp" in tz["observed"] and "naive" in tz["observed"]
    # The other checks still ran on the (localized) values and passed.
    assert len(report["failures"]) == 1


def test_stale_source_fails_freshness(applied_local_store, sample_repo: Path) -> None:
    view = _view(applied_local_store, "driver_stats")
    old = _slice(sample_repo, "driver_stats", start=hours_ago(30))
    old = old[old["event_timestamp"] < pd.Timestamp(hours_ago(10))]
    report = validate_frame(old, view, end=TEST_END, now=TEST_END)
    assert ("expect_column_max_to_be_between", "event_timestamp") in {
        (f["expectation"], f["column"]) for f in report["failures"]
    }


def test_empty_window_fails(applied_local_store, sample_repo: Path) -> None:
    view = _view(applied_local_store, "driver_stats")
    empty = _slice(sample_repo, "driver_stats").iloc[0:0]
    report = validate_frame(empty, view, end=TEST_END, now=TEST_END)
    assert "expect_table_row_count_to_be_between" in {
        f["expectation"] for f in report["failures"]
    }


def test_validate_sources_raises_a_readable_table(
    local_store, local_repo: Path
) -> None:
    path = local_repo / "data" / "driver_stats.parquet"
    frame = pd.read_parquet(path)
    recent = frame.index[frame["event_timestamp"] >= pd.Timestamp(WINDOW_START)][:4]
    frame.loc[recent, "acceptance_rate"] = 2.0
    frame.to_parquet(path, index=False)

    with pytest.raises(ValidationFailed) as info:
        validate_sources(local_store, start=WINDOW_START, end=TEST_END)
    message = str(info.value)
    header = message.splitlines()[1]
    assert header.split() == ["source", "expectation", "column", "observed"]
    assert "driver_stats" in message and "acceptance_rate" in message
    assert "4 unexpected" in message
    # Examples name the value and the entity of the rows that broke it.
    assert "e.g. 2.0 at driver_id=" in message
    summary = info.value.summary
    assert summary["success"] is False
    assert summary["sources"]["customer_stats"]["success"] is True
    # An earlier window does not contain the bad rows and passes.
    assert validate_sources(local_store, start=hours_ago(12), end=hours_ago(6))[
        "success"
    ]


def test_cli_validate_prints_a_table_and_exits_non_zero(
    local_store, local_repo: Path, monkeypatch, capsys
) -> None:
    from feature_platform.cli import main

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    args = ["--profile", "local", "validate", "--end", TEST_END.isoformat()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "customer_stats" in out and "driver_stats" in out and "FAILED" not in out

    path = local_repo / "data" / "customer_stats.parquet"
    frame = pd.read_parquet(path)
    recent = frame.index[frame["event_timestamp"] >= pd.Timestamp(WINDOW_START)][:2]
    frame.loc[recent, "churn_risk_score"] = 3.0
    frame.to_parquet(path, index=False)
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "customer_stats" in out and "FAILED (1)" in out
    [row] = [line for line in out.splitlines() if "churn_risk_score" in line]
    assert row.split()[:3] == [
        "customer_stats",
        "expect_column_values_to_be_between",
        "churn_risk_score",
    ]
    assert "2 unexpected" in row


def test_naive_window_is_rejected(applied_local_store) -> None:
    with pytest.raises(NaiveTimestampError, match="start"):
        validate_sources(
            applied_local_store, start=WINDOW_START.replace(tzinfo=None), end=TEST_END
        )


def test_format_failures_aligns_columns() -> None:
    table = format_failures(
        [
            {"source": "a", "expectation": "e1", "column": "c", "observed": "x"},
            {"source": "bbbb", "expectation": "e2", "column": "cc", "observed": "y"},
        ]
    ).splitlines()
    assert len(table) == 4
    assert table[2].index("e1") == table[3].index("e2") == table[0].index("expectation")
    assert format_failures([]) == "(no failed expectations)"


def test_validating_a_never_applied_repo_says_to_apply(tmp_path) -> None:
    """The DAG's first task on a repo that was never applied: a clear message."""
    from feature_platform.errors import RegistryNotApplied
    from tests.conftest import make_repo

    repo = make_repo(tmp_path / "repo")
    with pytest.raises(RegistryNotApplied, match="run `feature-platform apply`"):
        validate_sources(repo, start=TEST_END - timedelta(hours=4), end=TEST_END)
