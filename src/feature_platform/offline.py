"""Reading feature view sources: the latest rows of a window, all rows of a window.

One home for "what does materializing ``[start, end]`` read": the offline
store's ``pull_latest_from_table_or_query`` (latest row per entity with an event
time in ``[start, end]``, the created timestamp breaking ties), used by the
batch engine's generic write path, the Spark writer, recovery, governance and
the online-vs-offline sampler; ``latest_parquet_batches`` is the same rule for
a local parquet source as one DuckDB query streamed in Arrow batches (the
streaming Redis writer reads here); ``window_rows_job`` reads every row of a
window (monitoring's drift windows). A low-layer module: it imports nothing of
the platform but nothing above it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore, FeatureView
    from feast.data_source import DataSource
    from feast.infra.offline_stores.offline_store import RetrievalJob
    from feast.repo_config import RepoConfig

__all__ = [
    "BATCH_ROWS",
    "DUCKDB_MEMORY_LIMIT",
    "batch_source",
    "growing_batches",
    "latest_parquet_batches",
    "latest_rows_job",
    "latest_rows_sql",
    "online_views",
    "pull_latest",
    "source_path",
    "window_rows_job",
]

BATCH_ROWS = 50_000
DUCKDB_MEMORY_LIMIT = "384MB"


def batch_source(view: FeatureView) -> DataSource:
    """The batch source behind ``view`` (a push source's batch source)."""
    source = view.batch_source
    if source is None:
        raise ValueError(f"feature view {view.name!r} has no batch source")
    return source


def source_path(view: FeatureView) -> str | None:
    """The local parquet path of ``view``'s batch source, if it has one."""
    from pathlib import Path

    from feast import FileSource

    source = view.batch_source
    if not isinstance(source, FileSource):
        return None
    path = source.path
    if "://" in path and not path.startswith("file://"):
        return None
    path = path.removeprefix("file://")
    return path if Path(path).exists() else None


class _PullArgs(TypedDict):
    """The keyword arguments of Feast's ``OfflineStore.pull_latest_from_table_or_query``
    and ``pull_all_from_table_or_query`` (same names, same types)."""

    config: RepoConfig
    data_source: DataSource
    join_key_columns: list[str]
    feature_name_columns: list[str]
    timestamp_field: str
    created_timestamp_column: str | None
    start_date: datetime
    end_date: datetime


def _query(
    config: RepoConfig,
    view: FeatureView,
    start: datetime,
    end: datetime,
    features: list[str] | None,
) -> _PullArgs:
    """The arguments of an offline store's pull over ``view``'s batch source."""
    source = batch_source(view)
    return {
        "config": config,
        "data_source": source,
        "join_key_columns": [e.name for e in view.entity_columns],
        "feature_name_columns": (
            [f.name for f in view.features] if features is None else features
        ),
        "timestamp_field": source.timestamp_field,
        "created_timestamp_column": source.created_timestamp_column or None,
        "start_date": start,
        "end_date": end,
    }


def latest_rows_job(
    config: Any,
    offline_store: Any,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    features: list[str] | None = None,
) -> RetrievalJob:
    """The offline store's latest row per entity of ``view`` with an event time
    in ``[start, end]``: what materializing that window writes. ``features``
    defaults to all of the view's features."""
    return offline_store.pull_latest_from_table_or_query(
        **_query(config, view, start, end, features)
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def latest_rows_sql(
    key: str,
    features: list[str],
    ts: str,
    created: str | None,
    *,
    transforms: Mapping[str, Callable[[str], str]] | None = None,
) -> str:
    """DuckDB SQL of the latest row per ``key`` of a parquet window (parameters:
    path, start, end): ``pull_latest_from_table_or_query``'s rule, an event
    time in ``[start, end]``, the latest event winning and the ``created``
    timestamp breaking ties. Columns ``k, <features...>, __ts`` (flat);
    ``transforms`` maps a feature to the SQL of its value from its column's
    (applied after the aggregation, e.g. ``pii.mask_sql``)."""
    cols = ", ".join(f"{_q(f)} := {_q(f)}" for f in features)
    order = f"struct_pack(t := {_q(ts)}, c := {_q(created)})" if created else _q(ts)
    transforms = transforms or {}
    out = ", ".join(
        (transforms[f](f"r.{_q(f)}") if f in transforms else f"r.{_q(f)}")
        + f" AS {_q(f)}"
        for f in features
    )
    return (
        f"SELECT k, {out}, r.__ts AS __ts FROM ("
        f"SELECT {_q(key)} AS k, "
        f"arg_max(struct_pack({cols}, __ts := {_q(ts)}), {order}) AS r "
        f"FROM read_parquet(?) "
        f"WHERE {_q(ts)}::TIMESTAMPTZ >= ? AND {_q(ts)}::TIMESTAMPTZ <= ? "
        f"GROUP BY {_q(key)})"
    )


def latest_parquet_batches(
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    transforms: Mapping[str, Callable[[str], str]] | None = None,
    batch_rows: int | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    on_total: Callable[[int], None] | None = None,
    first_batch_rows: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """``latest_rows_job`` for a view with a local parquet source
    (``source_path``), as Arrow record batches of at most ``batch_rows`` rows:
    ``k, <features...>, __ts`` (``latest_rows_sql``; ``transforms`` applied).

    One DuckDB query under ``memory_limit`` (spilling to a temporary
    directory beyond it) on ``threads`` threads (all cores when None), the
    result streamed, never collected. ``on_total`` first receives the number
    of distinct entities of the window (the rows to come), for progress.
    ``first_batch_rows``: the first batch that small and each next one twice
    as large, up to ``batch_rows`` (``growing_batches``), so that a consumer
    which pipelines its work starts it sooner."""
    import duckdb

    path = source_path(view)
    if path is None:
        raise ValueError(f"view {view.name!r} has no local parquet source")
    source = batch_source(view)
    key = view.entity_columns[0].name
    ts = source.timestamp_field
    sql = latest_rows_sql(
        key,
        [f.name for f in view.features],
        ts,
        source.created_timestamp_column or None,
        transforms=transforms,
    )
    con = duckdb.connect()
    with tempfile.TemporaryDirectory(prefix="fp_duckdb_") as spill:
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET memory_limit = '{memory_limit or DUCKDB_MEMORY_LIMIT}'")
            con.execute(f"SET temp_directory = '{spill}'")
            con.execute("SET preserve_insertion_order = false")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            if on_total:
                on_total(
                    con.execute(
                        f"SELECT count(DISTINCT {_q(key)}) FROM read_parquet(?) "
                        f"WHERE {_q(ts)}::TIMESTAMPTZ >= ? "
                        f"AND {_q(ts)}::TIMESTAMPTZ <= ?",
                        [path, start, end],
                    ).fetchall()[0][0]
                )
            most = batch_rows or BATCH_ROWS
            first = min(first_batch_rows or most, most)
            reader = con.sql(sql, params=[path, start, end]).to_arrow_reader(first)
            yield from growing_batches(reader, first, most) if first < most else reader
        finally:
            con.close()


def growing_batches(
    batches: Iterable[pa.RecordBatch], first: int, most: int
) -> Iterator[pa.RecordBatch]:
    """``batches`` regrouped: ``first`` rows, then twice as many each time up
    to ``most`` (the last one what is left)."""
    import pyarrow as pa

    size, pending, have = first, [], 0
    for batch in batches:
        pending.append(batch)
        have += batch.num_rows
        while have >= size:
            whole = pa.concat_batches(pending) if len(pending) > 1 else pending[0]
            yield whole.slice(0, size)
            pending, have = [whole.slice(size)], have - size
            size = min(size * 2, most)
    if have:
        yield pa.concat_batches(pending) if len(pending) > 1 else pending[0]


def window_rows_job(
    config: Any,
    offline_store: Any,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    features: list[str] | None = None,
) -> RetrievalJob:
    """Every source row of ``view`` with an event time in ``[start, end]``
    (Feast's ``pull_all_from_table_or_query``: DuckDB, BigQuery and Spark
    alike). ``features`` defaults to all of the view's features."""
    return offline_store.pull_all_from_table_or_query(
        **_query(config, view, start, end, features)
    )


def pull_latest(
    store: FeatureStore,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    features: list[str] | None = None,
) -> RetrievalJob:
    """``latest_rows_job`` with the store's config and offline store."""
    from feature_platform.feast_compat import provider

    offline_store = provider(store).offline_store
    return latest_rows_job(
        store.config, offline_store, view, start, end, features=features
    )


def online_views(
    store: FeatureStore, names: Iterable[str] | None = None
) -> list[FeatureView]:
    """The registry's online batch feature views, optionally restricted by name."""
    views = [v for v in store.list_feature_views() if v.online]
    if names is None:
        return views
    wanted = list(names)
    known = {v.name for v in views}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(
            f"unknown feature view(s) {unknown}; online views are {sorted(known)}"
        )
    return [v for v in views if v.name in wanted]
