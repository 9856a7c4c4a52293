"""Batch sources. One set of definitions, the physical source per profile.

The local and services profiles read the parquet files under ``data/`` next to
this file, as absolute paths (the DuckDB offline store resolves relative paths
against the current directory, not the repo), or under
``$FEATURE_PLATFORM_DATA_DIR`` (a directory or object-store URI); the production
profile reads BigQuery tables with the same schema. The switch is
``feature_platform.profiles.offline_kind()`` (``file``, ``bigquery`` or ``spark``):
the kind of the profile this process loaded (or ``$FEATURE_PLATFORM_PROFILE``
when the plain ``feast`` CLI parses this file). The scale profile
(``spark``) reads the same parquet files as ``SparkSource`` (Spark offline store
and materialization engine); the data directory may then be an object-store URI.
"""

from __future__ import annotations

from pathlib import Path

from feast import BigQuerySource, FileSource, PushSource

from feature_platform.profiles import offline_kind
from feature_platform.settings import settings

_OFFLINE = offline_kind()
_BQ_DATASET = settings().bq_dataset
_DATA_DIR = settings().data_dir or str(Path(__file__).resolve().parent / "data")

CUSTOMER_TABLE = "customer_stats"
DRIVER_TABLE = "driver_stats"


def _source(
    table: str, *, created: str | None, description: str, owner: str, team: str
):
    tags = {"team": team}
    if _OFFLINE == "bigquery":
        return BigQuerySource(
            name=f"{table}_source",
            table=f"{_BQ_DATASET}.{table}",
            timestamp_field="event_timestamp",
            created_timestamp_column=created or "",
            description=description,
            owner=owner,
            tags=tags,
        )
    if _OFFLINE == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (  # noqa: E501
            SparkSource,
        )

        return SparkSource(
            name=f"{table}_source",
            path=f"{_DATA_DIR}/{table}.parquet",
            file_format="parquet",
            timestamp_field="event_timestamp",
            created_timestamp_column=created or "",
            description=description,
            owner=owner,
            tags=tags,
        )
    return FileSource(
        name=f"{table}_source",
        path=f"{_DATA_DIR}/{table}.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column=created or "",
        description=description,
        owner=owner,
        tags=tags,
    )


customer_stats_source = _source(
    CUSTOMER_TABLE,
    created="created_timestamp",
    description="Daily customer order aggregates from the orders warehouse.",
    owner="growth@example.com",
    team="growth",
)

driver_stats_source = _source(
    DRIVER_TABLE,
    created=None,
    description="Two-hourly driver performance aggregates from the fleet system.",
    owner="logistics@example.com",
    team="logistics",
)

# Real-time updates (e.g. a stream consumer, or POST /push on the feature
# server) for driver_stats. Materialization and point-in-time joins still read
# the batch source above; a push writes straight to the online store, so the
# pushed row is what the next online read returns.
driver_stats_push_source = PushSource(
    name="driver_stats_push",
    batch_source=driver_stats_source,
    description="Pushed driver_stats rows (same schema as the batch source).",
    owner="logistics@example.com",
    tags={"team": "logistics"},
)
