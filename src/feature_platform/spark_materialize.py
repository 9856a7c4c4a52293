"""Materialization on Spark executors (the scale profile's batch engine).

When a profile configures Feast's Spark batch engine (``batch_engine: type:
spark.engine``), ``feature_platform.materialize`` hands each view to this
module instead of collecting the window on the driver:

* the Spark offline store's ``pull_latest_from_table_or_query`` builds the
  latest row per entity in the window as a Spark DataFrame (the same query and
  tie-breaking as Feast's engine and as the other offline stores);
* the frame is repartitioned to ``batch_engine.partitions`` and each partition
  writes its rows from the executor with the online store's own
  ``online_write_batch`` (Feast's key format and value encoding, one Redis
  Cluster client per partition), after the view's ``pii`` fields are masked
  (``feature_platform.governance``), exactly like the driver-side path;
* each partition returns how many rows it wrote, so the summary stays exact.

This is Feast's ``SparkComputeEngine`` write step (``map_in_pandas``) with two
changes the platform needs: pii masking before any online write, and row
counts. ``feast materialize`` on the same profile runs Feast's own engine.
Executors need the ``feature-platform`` package installed (it is in the image
used for Spark jobs; ``local[N]`` uses this virtualenv).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore, FeatureView

__all__ = ["materialize_view_spark", "uses_spark_engine"]


def uses_spark_engine(store: FeatureStore) -> bool:
    """True when the store's profile configures Feast's Spark batch engine."""
    engine = store.config.batch_engine
    return getattr(engine, "type", None) == "spark.engine"


def _write_partition(
    artifacts: Any, salt: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Runs on an executor: mask pii, convert to Feast protos, write online."""
    import pyarrow as pa

    from feature_platform.feast_compat import arrow_to_proto_rows
    from feature_platform.pii import mask_table

    view, online_store, _, repo_config = artifacts.unserialize()
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    written = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = mask_table(pa.Table.from_batches([batch]), view, salt=salt)
        rows = arrow_to_proto_rows(table, view, join_keys)
        online_store.online_write_batch(repo_config, view, rows, progress=None)
        written += len(rows)
    yield pa.RecordBatch.from_pydict({"rows": pa.array([written], pa.int64())})


def materialize_view_spark(
    store: FeatureStore, view: FeatureView, start: datetime, end: datetime
) -> int:
    """Write the latest row per entity of ``[start, end]`` from Spark executors."""
    from feast.infra.common.serde import SerializedArtifacts
    from pyspark.sql import functions as F

    from feature_platform.offline import pull_latest
    from feature_platform.pii import pii_fields, pii_salt

    job = pull_latest(store, view, start, end)
    frame = job.to_spark_df()  # type: ignore[attr-defined]  # SparkRetrievalJob
    partitions = int(getattr(store.config.batch_engine, "partitions", 0) or 0)
    if partitions:
        frame = frame.repartition(partitions)
    artifacts = SerializedArtifacts.serialize(
        feature_view=view, repo_config=store.config
    )
    # The salt is resolved here, on the driver, so executors need no secret env.
    salt = pii_salt() if pii_fields(view) else ""
    write = partial(_write_partition, artifacts, salt)
    counts = frame.mapInArrow(write, "rows long")
    total = counts.agg(F.sum("rows").alias("rows")).collect()[0]["rows"]
    return int(total or 0)
