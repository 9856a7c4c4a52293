"""Reading feature view sources: the latest rows of a window, all rows of a window.

One home for "what does materializing ``[start, end]`` read": the offline
store's ``pull_latest_from_table_or_query`` (latest row per entity with an event
time in ``[start, end]``, the created timestamp breaking ties), used by the
batch engine's generic write path, the Spark writer, recovery, governance and
the online-vs-offline sampler; ``window_rows_job`` reads every row of a window
(monitoring's drift windows). A low-layer module: it imports nothing of the
platform but nothing above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.data_source import DataSource
    from feast.infra.offline_stores.offline_store import RetrievalJob

__all__ = [
    "batch_source",
    "source_path",
    "latest_rows_job",
    "online_views",
    "pull_latest",
    "window_rows_job",
]


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


def _query(
    config: Any,
    view: FeatureView,
    start: datetime,
    end: datetime,
    features: list[str] | None,
) -> dict[str, Any]:
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
