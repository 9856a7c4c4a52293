"""UTC rule for stored data: timestamp columns of sources and entity dataframes
are timezone-aware UTC; anything else is rejected naming the column.

Naive and non-timestamp columns are rejected by ``utc.ensure_utc_column``
(the platform's one UTC check); stored data must moreover *be* UTC, so another
timezone is rejected here instead of converted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from feature_platform.errors import BadInput, NaiveTimestampError
from feature_platform.governance.findings import Finding
from feature_platform.utc import ensure_utc_column

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

__all__ = ["check_source_utc", "require_utc_columns"]


def require_utc_columns(
    df: pd.DataFrame, columns: Iterable[str], *, dataset: str
) -> pd.DataFrame:
    """Reject naive or non-UTC timestamp ``columns``; the message names the column."""
    import pandas as pd

    for col in columns:
        dtype = df[col].dtype if col in df.columns else None
        if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) != "UTC":
            raise NaiveTimestampError(
                f"{dataset}: column {col!r} is in timezone {dtype.tz}, not UTC; "
                f"store it as UTC (df[{col!r}].dt.tz_convert('UTC'))"
            )
        try:
            ensure_utc_column(df, col)
        except NaiveTimestampError as exc:
            raise NaiveTimestampError(f"{dataset}: {exc}") from exc
        except ValueError as exc:  # missing column
            raise BadInput(f"{dataset}: {exc}") from exc
    return df


def check_source_utc(store: FeatureStore) -> list[Finding]:
    """Every file source's timestamp columns are UTC (BigQuery TIMESTAMP always is)."""
    import pyarrow.parquet as pq
    from feast.infra.offline_stores.file_source import FileSource

    out = []
    seen: set[str] = set()
    for view in store.list_feature_views():
        source = view.batch_source
        if not isinstance(source, FileSource) or source.name in seen:
            continue
        seen.add(source.name)
        cols = [source.timestamp_field]
        if source.created_timestamp_column:
            cols.append(source.created_timestamp_column)
        try:
            sample = pq.ParquetFile(source.path).read_row_group(0, columns=cols)
            require_utc_columns(sample.to_pandas(), cols, dataset=source.name)
        except (NaiveTimestampError, ValueError, OSError) as exc:
            out.append(Finding("utc", "error", source.name, str(exc)))
        else:
            out.append(Finding("utc", "info", source.name, f"{cols} are UTC"))
    return out
