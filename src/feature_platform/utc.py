"""The time rule: every timestamp entering the platform's API is timezone-aware
UTC; naive values are rejected with an error naming the argument or column,
never guessed.

``ensure_utc`` (a datetime argument), ``parse_utc`` (text: CLI options, DAG
parameters, HTTP bodies) and ``ensure_utc_column`` (a dataframe column) check
input from users; ``stored_utc`` reads back what a store wrote (UTC, with the
offset sometimes dropped).

A low-layer module: pandas is imported inside ``ensure_utc_column`` only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from feature_platform.errors import BadInput, NaiveTimestampError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLOCK_SKEW",
    "NaiveTimestampError",
    "ensure_utc",
    "ensure_utc_column",
    "parse_utc",
    "stored_utc",
    "utc_now",
]


# Clock skew tolerated between machines: a window may end, and a source row may
# be stamped, this far after our "now".
CLOCK_SKEW = timedelta(minutes=5)


def utc_now() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime, name: str = "timestamp") -> datetime:
    """Return ``value`` in UTC; reject naive datetimes with a clear message."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise NaiveTimestampError(
            f"{name}={value.isoformat()} has no timezone; pass an aware UTC "
            f"datetime (e.g. datetime(..., tzinfo=UTC) or '...Z')"
        )
    value = value.astimezone(UTC)
    if type(value) is not datetime:
        # Subclasses (pendulum's DateTime from Airflow contexts) can turn naive
        # in arithmetic (`end - timedelta(...)` drops tzinfo=UTC): return a plain one.
        value = datetime(*value.timetuple()[:6], value.microsecond, tzinfo=UTC)
    return value


def stored_utc(value: datetime) -> datetime:
    """A timestamp a store returned (Feast's intervals, a source's max, a SQLite
    column), as aware UTC: the stores write UTC and some drop the offset, so
    naive here means UTC. Input from users goes through ``ensure_utc`` instead,
    which rejects naive values."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_utc(text: str | datetime, name: str = "timestamp") -> datetime:
    """Parse an ISO-8601 string that carries an offset (``Z`` or ``+00:00``).

    Raises ``NaiveTimestampError`` without an offset, ``ValueError`` (naming
    ``name``) for text that is not ISO-8601."""
    if isinstance(text, datetime):
        return ensure_utc(text, name)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"{name}={text!r} is not an ISO-8601 timestamp") from exc
    return ensure_utc(value, name)


def ensure_utc_column(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Check a dataframe column holds timezone-aware timestamps; convert to UTC.

    Naive columns are rejected (naming the column) instead of silently assumed UTC.
    """
    import pandas as pd

    if column not in df.columns:
        raise BadInput(f"column {column!r} is missing (columns: {list(df.columns)})")
    series = df[column]
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            raise NaiveTimestampError(
                f"column {column!r} holds naive timestamps; localize them to UTC "
                f"first (df[{column!r}].dt.tz_localize('UTC'))"
            )
        raise NaiveTimestampError(
            f"column {column!r} must hold timezone-aware timestamps, "
            f"got dtype {series.dtype}"
        )
    if str(series.dt.tz) != "UTC":
        df = df.copy()
        df[column] = series.dt.tz_convert("UTC")
    return df
