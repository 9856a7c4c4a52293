"""Materialization into the online store, driven by explicit UTC windows.

Why not ``FeatureStore.materialize_incremental(end_date=...)`` as is:

* its watermark is whatever ``end_date`` the caller passed; an end date in the
  future (feast#4222) moves the watermark past data that has not arrived yet, and
  that data is then never materialized. Here every run has an explicit
  ``[start, end]`` window and ``end`` in the future is rejected;
* it does not report what it wrote. Here each view reports the rows written.

The work per view is the same as Feast's local engine: the offline store's
``pull_latest_from_table_or_query`` (latest row per entity in the window, ties
broken by the created timestamp), conversion to Feast's protos, the online
store's ``online_write_batch`` (Feast's key format, so ``feast`` tools and the
feature server read the same data) and ``apply_materialization`` to record the
interval in the registry. Re-running a window writes the same values, so the
online store ends in the same state (idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.infra.offline_stores.offline_store import RetrievalJob

__all__ = [
    "FutureWindowError",
    "materialize_incremental",
    "materialize_window",
    "pull_latest",
    "online_views",
]

log = logging.getLogger(__name__)
WRITE_BATCH_ROWS = 10_000
# Clock skew tolerated between the caller's "now" and ours.
_FUTURE_GRACE = timedelta(minutes=5)

Progress = Callable[[str, int, int], None]


class FutureWindowError(ValueError):
    """A materialization window ends in the future (would skip late data)."""


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


def pull_latest(
    store: FeatureStore,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    features: list[str] | None = None,
) -> RetrievalJob:
    """The offline store's latest row per entity of ``view`` with an event time in
    ``[start, end]`` (Feast's ``pull_latest_from_table_or_query``; the created
    timestamp breaks ties): what materializing that window writes.
    ``features`` defaults to all of the view's features."""
    source = view.batch_source
    if source is None:
        raise ValueError(f"feature view {view.name!r} has no batch source")
    return store._get_provider().offline_store.pull_latest_from_table_or_query(
        config=store.config,
        data_source=source,
        join_key_columns=[e.name for e in view.entity_columns],
        feature_name_columns=(
            [f.name for f in view.features] if features is None else features
        ),
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        start_date=start,
        end_date=end,
    )


def _check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    if start >= end:
        raise ValueError(
            f"empty window: start {start.isoformat()} >= end {end.isoformat()}"
        )
    if end > utc_now() + _FUTURE_GRACE:
        raise FutureWindowError(
            f"window end {end.isoformat()} is in the future; materializing it would "
            "advance the watermark past data that has not arrived yet (feast#4222)"
        )
    return start, end


def _materialize_view(
    store: FeatureStore,
    view: FeatureView,
    start: datetime,
    end: datetime,
    progress: Progress | None,
) -> int:
    from feast.utils import _convert_arrow_to_proto

    from feature_platform import fast_materialize
    from feature_platform.governance import mask_pii_table

    if fast_materialize.enabled() and fast_materialize.supports(store, view):
        # Streaming path (Redis + parquet): same keys and bytes, bounded memory.
        written = fast_materialize.materialize_view_fast(
            store, view, start, end, progress
        )
        store.registry.apply_materialization(
            view, store.project, start, end, commit=True
        )
        return written

    from feature_platform import spark_materialize

    if spark_materialize.uses_spark_engine(store):
        # Scale profile: Spark executors write to the online store in parallel.
        written = spark_materialize.materialize_view_spark(store, view, start, end)
        if progress:
            progress(view.name, written, written)
        store.registry.apply_materialization(
            view, store.project, start, end, commit=True
        )
        return written

    provider = store._get_provider()
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    job = pull_latest(store, view, start, end)
    # `pii` fields are masked before they reach the online store.
    table = mask_pii_table(job.to_arrow(), view)
    total = table.num_rows
    written = 0
    for batch in table.to_batches(max_chunksize=WRITE_BATCH_ROWS):
        rows = _convert_arrow_to_proto(batch, view, join_keys)
        provider.online_write_batch(store.config, view, rows, progress=None)
        written += len(rows)
        if progress:
            progress(view.name, written, total)
    store.registry.apply_materialization(view, store.project, start, end, commit=True)
    return written


def materialize_window(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    *,
    views: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Materialize ``[start, end]`` (UTC) for the online views; rows written per view.

    Holds the project's registry lock (``feature_platform.locks``) for the whole
    run, so concurrent runs and applies never lose a recorded interval.
    """
    from feature_platform.locks import registry_lock

    start, end = _check_window(start, end)
    with registry_lock(store):
        return _materialize_window_locked(
            store, start, end, views=views, progress=progress
        )


def _materialize_window_locked(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    *,
    views: Iterable[str] | None,
    progress: Progress | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "views": {},
    }
    for view in online_views(store, views):
        rows = _materialize_view(store, view, start, end, progress)
        log.info("materialized %s rows of %s for %s..%s", rows, view.name, start, end)
        result["views"][view.name] = {
            "rows": rows,
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
    result["rows_total"] = sum(v["rows"] for v in result["views"].values())
    return result


def materialize_incremental(
    store: FeatureStore,
    end: datetime | None = None,
    *,
    views: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Materialize each view from its watermark (or ``end - ttl``) up to ``end``.

    ``end`` defaults to now (UTC). A view already materialized up to ``end``
    is skipped, so a second run in a row is cheap. The watermarks are read
    under the project's registry lock, so two runs never both start from the
    same stale watermark.
    """
    from feature_platform.locks import registry_lock

    end = ensure_utc(end, "end") if end is not None else utc_now()
    with registry_lock(store):
        store.refresh_registry()
        return _materialize_incremental_locked(
            store, end, views=views, progress=progress
        )


def _materialize_incremental_locked(
    store: FeatureStore,
    end: datetime,
    *,
    views: Iterable[str] | None,
    progress: Progress | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"window": {"end": end.isoformat()}, "views": {}}
    for view in online_views(store, views):
        watermark = view.most_recent_end_time
        if watermark is not None:
            # Feast records materialization intervals in UTC; older registries
            # return them naive.
            if watermark.tzinfo is None:
                watermark = watermark.replace(tzinfo=UTC)
            start = watermark.astimezone(UTC)
        else:
            start = end - (view.ttl or timedelta(days=1))
        if start >= end:
            result["views"][view.name] = {
                "rows": 0,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "skipped": "already materialized up to end",
            }
            continue
        part = materialize_window(
            store, start, end, views=[view.name], progress=progress
        )
        result["views"].update(part["views"])
    result["rows_total"] = sum(v["rows"] for v in result["views"].values())
    return result
