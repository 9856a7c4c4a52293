"""The time rule: aware UTC in, naive rejected naming the argument or column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from feature_platform.errors import NaiveTimestampError
from feature_platform.utc import ensure_utc, ensure_utc_column, parse_utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_parse_utc(value: str, expected: datetime) -> None:
    assert parse_utc(value) == expected


@pytest.mark.parametrize("bad", ["2026-01-02T03:04:05", datetime(2026, 1, 2)])
def test_naive_timestamps_are_rejected(bad) -> None:
    with pytest.raises(NaiveTimestampError, match="has no timezone"):
        parse_utc(bad, "end")


def test_ensure_utc_converts_offsets() -> None:
    cet = timezone(timedelta(hours=1))
    assert ensure_utc(datetime(2026, 1, 1, 1, tzinfo=cet)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def test_ensure_utc_column_names_the_column() -> None:
    naive = pd.DataFrame({"event_timestamp": pd.to_datetime(["2026-01-01"])})
    with pytest.raises(NaiveTimestampError, match="'event_timestamp' holds naive"):
        ensure_utc_column(naive, "event_timestamp")
    berlin = naive.assign(
        event_timestamp=naive["event_timestamp"].dt.tz_localize("Europe/Berlin")
    )
    out = ensure_utc_column(berlin, "event_timestamp")
    assert str(out["event_timestamp"].dt.tz) == "UTC"
    assert out["event_timestamp"].iloc[0] == pd.Timestamp("2025-12-31T23:00Z")
