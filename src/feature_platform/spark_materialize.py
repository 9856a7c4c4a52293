"""Materialization on Spark executors: the scale profile's batch engine.

``batch_engine: type: feature_platform.spark_materialize.PlatformSparkEngine``
(the ``scale`` profile) is the platform's engine (``feature_platform.engine``)
with the write step moved to Spark, so ``feast materialize``,
``FeatureStore.materialize*`` and the platform's own ``materialize_window`` get
the same behaviour as on every other profile: the project's registry lock for
the whole run, the validation gate before anything is written, each view's
interval recorded inside the lock, and ``pii`` fields masked before any
online write. The write step:

* the Spark offline store's ``pull_latest_from_table_or_query`` builds the
  latest row per entity in the window as a Spark DataFrame (the same query and
  tie-breaking as Feast's engine and as the other offline stores);
* the frame is repartitioned to ``batch_engine.partitions`` and each partition
  writes its rows from the executor with the online store's own
  ``online_write_batch`` (Feast's key format and value encoding, one Redis
  Cluster client per partition), after the view's ``pii`` fields are masked
  (``feature_platform.pii``), exactly like the driver-side path;
* each partition returns how many rows it wrote, so the summary stays exact.

This is Feast's ``SparkComputeEngine`` write step (``map_in_pandas``) with what
the platform needs around it. The Spark session is the offline store's
(``offline_store.spark_conf``). Executors need the ``feature-platform``
package installed (it is in the image used for Spark jobs; ``local[N]`` uses
this virtualenv).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from feature_platform.engine import PlatformEngine, PlatformEngineConfig

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureView

__all__ = [
    "PlatformSparkEngine",
    "PlatformSparkEngineConfig",
    "SPARK_ENGINE_TYPE",
    "materialize_view_spark",
]

SPARK_ENGINE_TYPE = "feature_platform.spark_materialize.PlatformSparkEngine"


class PlatformSparkEngineConfig(PlatformEngineConfig):
    """``batch_engine:`` keys of the scale profile's engine."""

    # A narrower literal than the base class's: this engine's own type name.
    type: Literal["feature_platform.spark_materialize.PlatformSparkEngine"] = (
        "feature_platform.spark_materialize.PlatformSparkEngine"  # type: ignore[assignment]
    )
    partitions: int = 0
    """Partitions of the latest-row frame written in parallel (0: Spark's)."""


class PlatformSparkEngine(PlatformEngine):
    """The platform's engine (lock, gate, intervals, pii) writing from Spark."""

    config_class = PlatformSparkEngineConfig

    def writer(self) -> Callable[[Any, datetime, datetime], int]:
        partitions = int(getattr(self.engine_config, "partitions", 0) or 0)
        return partial(
            materialize_view_spark,
            self.repo_config,
            self.offline_store,
            partitions=partitions,
        )


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
    config: Any,
    offline_store: Any,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    partitions: int = 0,
) -> int:
    """Write the latest row per entity of ``[start, end]`` from Spark executors."""
    from feast.infra.common.serde import SerializedArtifacts
    from pyspark.sql import functions as F

    from feature_platform.offline import latest_rows_job
    from feature_platform.pii import pii_fields, pii_salt

    job = latest_rows_job(config, offline_store, view, start, end)
    frame = job.to_spark_df()  # type: ignore[attr-defined]  # SparkRetrievalJob
    if partitions:
        frame = frame.repartition(partitions)
    artifacts = SerializedArtifacts.serialize(feature_view=view, repo_config=config)
    # The salt is resolved here, on the driver, so executors need no secret env.
    salt = pii_salt() if pii_fields(view) else ""
    write = partial(_write_partition, artifacts, salt)
    counts = frame.mapInArrow(write, "rows long")
    total = counts.agg(F.sum("rows").alias("rows")).collect()[0]["rows"]
    return int(total or 0)
