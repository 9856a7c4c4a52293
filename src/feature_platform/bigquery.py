"""BigQuery, the production profile's offline store: where its results are
read from, and loading parquet sources into source tables.

``PlatformBigQueryOfflineStore`` is Feast's ``BigQueryOfflineStore`` (the same
SQL, the same point-in-time script, the same entity upload) with one more
setting, ``storage_read_endpoint``: Feast reads every result through the
BigQuery Storage Read API, whose client always connects to Google's endpoint
(it does not honour ``BIGQUERY_EMULATOR_HOST``). Set it to the plaintext gRPC
``host:port`` of a Storage Read API (an emulator's) to read results there;
unset (the default, a real deployment) nothing changes.

``load_sources`` is what ``feature-platform load`` runs: each BigQuery batch
source of the definitions gets its table created (partitioned by day on the
event timestamp, clustered by the entity keys: a materialization window then
scans only its days, a point-in-time join only its entities' blocks) and
replaced by the rows of ``<data dir>/<table>.parquet``, one load job per table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from feast.infra.offline_stores.bigquery import (
    BigQueryOfflineStore,
    BigQueryOfflineStoreConfig,
    BigQueryRetrievalJob,
)
from pydantic import StrictStr, field_validator

from feature_platform import feast_compat

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore
    from feast.infra.offline_stores.offline_store import RetrievalJob

__all__ = [
    "OFFLINE_STORE_TYPE",
    "PlatformBigQueryOfflineStore",
    "PlatformBigQueryOfflineStoreConfig",
    "LoadSummary",
    "PlatformBigQueryRetrievalJob",
    "load_sources",
]

OFFLINE_STORE_TYPE = "feature_platform.bigquery.PlatformBigQueryOfflineStore"


class PlatformBigQueryOfflineStoreConfig(BigQueryOfflineStoreConfig):
    """``offline_store:`` keys: Feast's BigQuery keys plus ``storage_read_endpoint``."""

    # Narrows Feast's Literal["bigquery"] to this class's type name.
    type: Literal["feature_platform.bigquery.PlatformBigQueryOfflineStore"] = (
        "feature_platform.bigquery.PlatformBigQueryOfflineStore"  # type: ignore[assignment]
    )
    storage_read_endpoint: StrictStr | None = None
    """Plaintext gRPC ``host:port`` of the Storage Read API (an emulator's);
    unset or empty: Google's endpoint, over TLS with the client's credentials."""

    @field_validator("storage_read_endpoint")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


def _read_endpoint(config: Any) -> str | None:
    return getattr(config.offline_store, "storage_read_endpoint", None)


class PlatformBigQueryRetrievalJob(BigQueryRetrievalJob):
    """Feast's BigQuery job reading its result from ``storage_read_endpoint``
    (a job becomes one only when the profile sets it: ``_platform_job``)."""

    def _read_client(self) -> Any:
        endpoint = _read_endpoint(self.config)
        import grpc
        from google.cloud.bigquery_storage_v1 import BigQueryReadClient
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (  # noqa: E501
            BigQueryReadGrpcTransport,
        )

        channel = grpc.insecure_channel(endpoint)
        return BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))

    # RetrievalJob's two read methods, which each job class implements.
    def _to_df_internal(self, timeout: int | None = None) -> Any:
        with feast_compat.bigquery_query_job(self, timeout) as job:
            return job.to_dataframe(bqstorage_client=self._read_client())

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        with feast_compat.bigquery_query_job(self, timeout) as job:
            return job.to_arrow(bqstorage_client=self._read_client())


def _platform_job(job: RetrievalJob) -> RetrievalJob:
    """Feast's job as a ``PlatformBigQueryRetrievalJob`` (same state, the read
    methods above) when the profile sets ``storage_read_endpoint``; otherwise
    Feast's job, reading from Google's endpoint. The subclass adds no state, so
    the object is re-typed rather than rebuilt from Feast's private attributes."""
    if type(job) is BigQueryRetrievalJob and _read_endpoint(job.config):
        job.__class__ = PlatformBigQueryRetrievalJob
    return job


def _reads_via_platform(method: Callable[..., RetrievalJob]) -> staticmethod:
    def wrapped(*args: Any, **kwargs: Any) -> RetrievalJob:
        return _platform_job(method(*args, **kwargs))

    wrapped.__doc__ = method.__doc__
    return staticmethod(wrapped)


class PlatformBigQueryOfflineStore(BigQueryOfflineStore):
    """Feast's BigQuery offline store whose jobs read their results through
    ``PlatformBigQueryRetrievalJob`` (see the module docstring)."""

    pull_latest_from_table_or_query = _reads_via_platform(
        BigQueryOfflineStore.pull_latest_from_table_or_query
    )
    pull_all_from_table_or_query = _reads_via_platform(
        BigQueryOfflineStore.pull_all_from_table_or_query
    )
    get_historical_features = _reads_via_platform(
        BigQueryOfflineStore.get_historical_features
    )


# ------------------------------------------------------------------- loading

_BQ_TYPES = {
    "int8": "INT64",
    "int16": "INT64",
    "int32": "INT64",
    "int64": "INT64",
    "float": "FLOAT64",
    "double": "FLOAT64",
    "bool": "BOOL",
    "string": "STRING",
    "large_string": "STRING",
}


def _schema_fields(path: Path) -> list[Any]:
    """The BigQuery schema of a parquet file; timestamps must be UTC (a naive
    column is refused, naming it: BigQuery would read it as UTC silently)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from google.cloud import bigquery

    fields = []
    for column in pq.read_schema(path):
        if pa.types.is_timestamp(column.type):
            if column.type.tz not in ("UTC", "+00:00", "Etc/UTC"):
                raise ValueError(
                    f"{path}: column {column.name!r} holds timestamps with "
                    f"timezone {column.type.tz!r}; write them as UTC first"
                )
            kind = "TIMESTAMP"
        else:
            kind = _BQ_TYPES.get(str(column.type), "")
            if not kind:
                raise ValueError(
                    f"{path}: column {column.name!r} has type {column.type}, "
                    f"which the loader does not map (known: {sorted(_BQ_TYPES)})"
                )
        fields.append(bigquery.SchemaField(column.name, kind))
    return fields


def _bigquery_sources(store: FeatureStore) -> dict[str, tuple[Any, list[str]]]:
    """``table -> (source, entity keys)`` of every BigQuery batch source."""
    from feast import BigQuerySource

    from feature_platform.definitions import load_definitions
    from feature_platform.offline import batch_source

    contents = load_definitions(Path(store.repo_path))
    join_keys = {e.name: e.join_key for e in contents.entities}
    tables: dict[str, tuple[Any, list[str]]] = {}
    for view in contents.feature_views:
        source = batch_source(view)
        if isinstance(source, BigQuerySource) and source.table:
            keys = [join_keys[name] for name in view.entities if name in join_keys]
            tables.setdefault(source.table, (source, keys))
    return tables


class TableLoad(TypedDict):
    rows: int
    source: str  # the parquet file loaded
    partitioned_by: str
    clustered_by: list[str]
    job_id: str


class LoadSummary(TypedDict):
    """What ``load`` prints: the BigQuery project and each table loaded."""

    project: str
    tables: dict[str, TableLoad]


def load_sources(store: FeatureStore, *, data: Path | str | None = None) -> LoadSummary:
    """Load ``<data>/<table>.parquet`` into each BigQuery source table of the
    definitions (created when missing: partitioned by day on the event
    timestamp, clustered by the entity keys; its rows replaced otherwise).

    ``data`` defaults to the profile's data directory. Returns the dataset and,
    per table, the rows loaded and the load job's id.
    """
    from google.cloud import bigquery

    from feature_platform.profiles import data_dir

    config = store.config.offline_store
    if not isinstance(config, BigQueryOfflineStoreConfig):
        raise ValueError(
            f"profile's offline store is {config.type!r}, not BigQuery: "
            "`load` seeds BigQuery source tables (use --profile production)"
        )
    folder = Path(data) if data else data_dir()
    sources = _bigquery_sources(store)
    if not sources:
        raise ValueError("the definitions have no BigQuery sources to load")
    client = bigquery.Client(project=config.project_id, location=config.location)
    summary: LoadSummary = {"project": client.project, "tables": {}}
    for table, (source, keys) in sorted(sources.items()):
        path = folder / f"{table.rsplit('.', 1)[-1]}.parquet"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: the source file of BigQuery table {table}"
            )
        fields = _schema_fields(path)
        names = {f.name for f in fields}
        missing = [c for c in [source.timestamp_field, *keys] if c not in names]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing} of table {table}")
        dataset = bigquery.Dataset(f"{client.project}.{table.rsplit('.', 1)[0]}")
        dataset.location = config.location or "US"
        client.create_dataset(dataset, exists_ok=True)
        target = bigquery.Table(f"{client.project}.{table}", schema=fields)
        # Day partitions on the event time: a window's query reads its days
        # only. Clustering by entity key: rows of one entity share blocks.
        target.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=source.timestamp_field
        )
        target.clustering_fields = keys[:4]  # BigQuery clusters on <= 4 columns
        client.create_table(target, exists_ok=True)
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=fields,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        with path.open("rb") as handle:
            job = client.load_table_from_file(
                handle, f"{client.project}.{table}", job_config=job_config
            )
        job.result()
        loaded = client.get_table(f"{client.project}.{table}")
        summary["tables"][table] = {
            "rows": loaded.num_rows,
            "source": str(path),
            "partitioned_by": source.timestamp_field,
            "clustered_by": keys[:4],
            "job_id": job.job_id,
        }
    return summary
