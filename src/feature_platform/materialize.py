"""Materialization into the online store, driven by explicit UTC windows.

The work is the batch engine plugin's (``feature_platform.engine``): the same
engine that ``feast materialize`` runs takes the registry lock, validates each
window's source rows, writes (streaming Redis writer or the online store's
``online_write_batch``, pii masked) and records the intervals. This module adds
what a scheduler needs on top of Feast's ``materialize`` /
``materialize_incremental``:

* every run has an explicit ``[start, end]`` window and ``end`` in the future
  is rejected: Feast moves the watermark to whatever ``end_date`` it is given
  (feast#4222), past data that has not arrived yet, which is then never
  materialized;
* incremental runs read the watermarks under the registry lock, so two runs
  never both start from the same stale watermark;
* scheduled and manual runs take their window from :func:`catch_up_window`:
  from the last recorded watermark (not only the run's own interval), minus
  the late-arrival bound, up to the interval end (or the manual run's start),
  so an interval whose run failed every retry, and rows that landed late for an
  interval already written, are picked up by the next run that covers them;
* each view reports the rows written (a JSON-able summary for the CLI, the DAG's
  XCom and KFP metrics).

Re-running a window writes the same values, so the online store ends in the
same state (idempotent). On the scale profile (Feast's Spark engine) the same
lock, gate and interval recording wrap the Spark executors' write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from feature_platform.errors import BadInput, FutureWindowError
from feature_platform.offline import online_views, pull_latest
from feature_platform.utc import CLOCK_SKEW, ensure_utc, stored_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

__all__ = [
    "FutureWindowError",
    "MaterializeSummary",
    "ViewWrite",
    "catch_up_window",
    "materialize_incremental",
    "materialize_window",
    "pull_latest",
    "online_views",
    "watermark",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


class ViewWrite(TypedDict):
    """One view's part of a materialization: rows written over ``[start, end]``."""

    rows: int
    start: str  # ISO-8601 UTC
    end: str
    skipped: NotRequired[str]  # why nothing was written (incremental runs)


class MaterializeSummary(TypedDict):
    """What a materialization returns: the CLI prints it, the DAG passes it by
    XCom, the demo and recovery add it up."""

    window: dict[str, str]  # start (absent for incremental), end, trigger (DAGs)
    views: dict[str, ViewWrite]
    rows_total: int


def _check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    if start >= end:
        raise BadInput(
            f"empty window: start {start.isoformat()} >= end {end.isoformat()}"
        )
    if end > utc_now() + CLOCK_SKEW:
        raise FutureWindowError(
            f"window end {end.isoformat()} is in the future; materializing it would "
            "advance the watermark past data that has not arrived yet (feast#4222)"
        )
    return start, end


def _engine_runner(store: FeatureStore) -> Callable[..., list[Any]]:
    """Run tasks through the store's platform engine (``PlatformEngine``, or on
    the scale profile its Spark form, ``PlatformSparkEngine``)."""
    from feature_platform import engine as platform_engine
    from feature_platform.feast_compat import batch_engine

    engine = batch_engine(store)
    if not isinstance(engine, platform_engine.PlatformEngine):
        raise BadInput(
            f"profile's batch_engine {type(engine).__name__} is not the platform's; "
            f"set batch_engine: type: {platform_engine.ENGINE_TYPE} (or, for Spark, "
            "feature_platform.spark_materialize.PlatformSparkEngine) in the profile"
        )
    return engine.materialize


def _run_tasks(
    store: FeatureStore,
    windows: list[tuple[FeatureView, datetime, datetime]],
    *,
    validate: bool | None,
    progress: Progress | None,
) -> dict[str, ViewWrite]:
    from feast.infra.common.materialization_job import (
        MaterializationJobStatus,
        MaterializationTask,
    )

    tasks = [
        MaterializationTask(
            project=store.project,
            feature_view=view,
            start_time=start,
            end_time=end,
            tqdm_builder=lambda _n: None,
        )
        for view, start, end in windows
    ]
    jobs = _engine_runner(store)(
        store.registry, tasks, validate=validate, progress=progress
    )
    views: dict[str, ViewWrite] = {}
    for job in jobs:
        if job.status() == MaterializationJobStatus.ERROR:
            error = job.error()
            raise error if error is not None else RuntimeError(job.job_id())
        views[job.view] = {
            "rows": job.rows,
            "start": job.start.isoformat(),
            "end": job.end.isoformat(),
        }
    return views


def materialize_window(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    *,
    views: Iterable[str] | None = None,
    progress: Progress | None = None,
    validate: bool | None = None,
) -> MaterializeSummary:
    """Materialize ``[start, end]`` (UTC) for the online views; rows written per view.

    Runs the profile's batch engine: registry lock for the whole run, source
    validation first (``validate`` overrides the engine's ``validate_sources``;
    a failure raises ``errors.ValidationFailed`` and writes nothing), then the
    writes and the recorded intervals.
    """
    start, end = _check_window(start, end)
    windows = [(view, start, end) for view in online_views(store, views)]
    written = _run_tasks(store, windows, validate=validate, progress=progress)
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "views": written,
        "rows_total": sum(v["rows"] for v in written.values()),
    }


def materialize_incremental(
    store: FeatureStore,
    end: datetime | None = None,
    *,
    views: Iterable[str] | None = None,
    progress: Progress | None = None,
    validate: bool | None = None,
) -> MaterializeSummary:
    """Materialize each view from its watermark (or ``end - ttl``) up to ``end``.

    ``end`` defaults to now (UTC). A view already materialized up to ``end``
    is skipped, so a second run in a row is cheap. The watermarks are read
    under the project's registry lock, so two runs never both start from the
    same stale watermark.
    """
    from feature_platform.locks import registry_lock

    end = ensure_utc(end, "end") if end is not None else utc_now()
    if end > utc_now() + CLOCK_SKEW:
        _check_window(end - timedelta(seconds=1), end)  # raises FutureWindowError
    result: MaterializeSummary = {
        "window": {"end": end.isoformat()},
        "views": {},
        "rows_total": 0,
    }
    with registry_lock(store):
        store.refresh_registry()
        windows = []
        for view in online_views(store, views):
            start = watermark(view) or end - (view.ttl or timedelta(days=1))
            if start >= end:
                result["views"][view.name] = {
                    "rows": 0,
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "skipped": "already materialized up to end",
                }
                continue
            windows.append((view, start, end))
        if windows:
            result["views"].update(
                _run_tasks(store, windows, validate=validate, progress=progress)
            )
    result["rows_total"] = sum(v["rows"] for v in result["views"].values())
    return result


def catch_up_window(
    store: FeatureStore,
    end: datetime,
    *,
    views: Iterable[str] | None = None,
    interval_start: datetime | None = None,
    late_arrival: timedelta = timedelta(0),
) -> tuple[datetime, datetime]:
    """The window a scheduled or manual run materializes: ``[start, end]``.

    Per view, ``start`` is the earliest of its watermark (the end of its last
    recorded interval; ``end - ttl`` if never materialized) and
    ``interval_start`` (a scheduled run's own data interval), moved back by
    ``late_arrival``, and never earlier than ``end - ttl`` (older rows have
    expired as of ``end``). The run's window starts at the earliest view start.

    So no interval is lost: a run whose retries all failed recorded no
    interval, and the next run starts from the older watermark; rows that land
    late, with an event time at most ``late_arrival`` before the watermark,
    are read again by the next run. Re-reading rows already written changes
    nothing (the online store keeps the newest event per entity), so the
    window may overlap earlier ones freely: the rule is idempotent.
    """
    end = ensure_utc(end, "end")
    if interval_start is not None:
        interval_start = ensure_utc(interval_start, "interval_start")
        if interval_start >= end:
            raise BadInput(
                f"empty data interval: {interval_start.isoformat()} >= "
                f"{end.isoformat()}"
            )
    if late_arrival < timedelta(0):
        raise BadInput(f"late_arrival must be >= 0, got {late_arrival}")
    store.refresh_registry()
    starts = []
    for view in online_views(store, views):
        ttl = view.ttl or timedelta(days=1)
        start = watermark(view) or end - ttl
        if interval_start is not None:
            start = min(start, interval_start)
        starts.append(max(start - late_arrival, end - ttl))
    if not starts:
        raise BadInput("no online feature view to materialize")
    start = min(starts)
    if start >= end:  # every view is materialized past ``end`` already
        start = end - max(late_arrival, timedelta(seconds=1))
    return start, end


def watermark(view: FeatureView) -> datetime | None:
    """The end of the view's last recorded interval, in UTC (``None``: never)."""
    watermark = view.most_recent_end_time
    if watermark is None:
        return None
    # Feast records materialization intervals in UTC; older registries return
    # them naive.
    return stored_utc(watermark)
