"""The production profile's BigQuery pieces that need no BigQuery: the loader's
schema rules and the Storage Read endpoint setting (tests/production runs the
rest against the emulator)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feature_platform.bigquery import (
    PlatformBigQueryOfflineStoreConfig,
    _schema_fields,
)


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "customer_stats.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_schema_maps_parquet_types_to_bigquery(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        pd.DataFrame(
            {
                "customer_id": [1],
                "event_timestamp": pd.to_datetime(["2026-01-01T00:00:00Z"]),
                "total_orders": [3],
                "lifetime_value": [1.5],
                "churn_risk_score": pd.Series([0.5], dtype="float32"),
                "preferred_category": ["home"],
                "active": [True],
            }
        ),
    )
    assert [(f.name, f.field_type) for f in _schema_fields(path)] == [
        ("customer_id", "INT64"),
        ("event_timestamp", "TIMESTAMP"),
        ("total_orders", "INT64"),
        ("lifetime_value", "FLOAT64"),
        ("churn_risk_score", "FLOAT64"),
        ("preferred_category", "STRING"),
        ("active", "BOOL"),
    ]


@pytest.mark.parametrize(
    "stamps",
    [
        pd.to_datetime(["2026-01-01T00:00:00"]),  # naive
        pd.to_datetime(["2026-01-01T00:00:00Z"]).tz_convert("Europe/Berlin"),
    ],
    ids=["naive", "not-utc"],
)
def test_non_utc_timestamps_are_refused_naming_the_column(
    tmp_path: Path, stamps: pd.DatetimeIndex
) -> None:
    path = _write(
        tmp_path, pd.DataFrame({"customer_id": [1], "event_timestamp": stamps})
    )
    with pytest.raises(ValueError, match="'event_timestamp'.*UTC"):
        _schema_fields(path)


def test_storage_read_endpoint_is_off_unless_set() -> None:
    assert PlatformBigQueryOfflineStoreConfig().storage_read_endpoint is None
    empty = PlatformBigQueryOfflineStoreConfig(storage_read_endpoint=" ")
    assert empty.storage_read_endpoint is None
    set_ = PlatformBigQueryOfflineStoreConfig(storage_read_endpoint="127.0.0.1:9060")
    assert set_.storage_read_endpoint == "127.0.0.1:9060"


@pytest.mark.parametrize(
    ("endpoint", "platform"), [(None, False), ("127.0.0.1:9060", True)]
)
def test_jobs_read_through_the_platform_only_with_an_endpoint(
    endpoint: str | None, platform: bool
) -> None:
    from types import SimpleNamespace

    from feast.infra.offline_stores.bigquery import BigQueryRetrievalJob

    from feature_platform.bigquery import (
        PlatformBigQueryRetrievalJob,
        _platform_job,
    )

    job = object.__new__(BigQueryRetrievalJob)  # state is not read here
    job.config = SimpleNamespace(
        offline_store=PlatformBigQueryOfflineStoreConfig(storage_read_endpoint=endpoint)
    )
    assert _platform_job(job) is job
    assert (type(job) is PlatformBigQueryRetrievalJob) is platform
