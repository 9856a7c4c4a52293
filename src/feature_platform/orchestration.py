"""What the Airflow tasks do, as plain functions (the DAG files only wire them).

* :func:`profile_name` - the profile a task runs against: Airflow Variable
  ``feature_platform_profile``, else ``$FEATURE_PLATFORM_PROFILE``, else ``local``.
* :func:`run_materialization` - ``materialize_window`` for the run's data
  interval, turning a never-applied registry and an unreachable online store
  into clear errors.
* :func:`run_window` - the window a materialization run writes: from the last
  watermark (minus the late-arrival bound) up to the data interval's end, or
  up to the start of a manual run that has no data interval.
* :func:`training_end` - where a training run's window ends: the materialized
  window of the asset event that triggered it, else the watermark (what the
  online store holds).
* :func:`fail_fast` - permanent errors (bad data, bad configuration, a registry
  never applied, a missing window) become ``AirflowFailException``: one alert,
  no retry; transient ones (connection refused, timeouts) stay retryable.
* :func:`day_chunks` - split a backfill range into chunks (one mapped task each).
* :func:`online_asset_uri` - the Airflow asset a view's materialization updates
  (training DAGs schedule on it).

No heavy imports at module level: DAG files import this at parse time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.errors import (
    BadInput,
    ConfigError,
    MissingDataInterval,
    OnlineStoreUnavailable,
    ValidationFailed,
    is_unavailable,
)
from feature_platform.profiles import require_applied
from feature_platform.settings import settings
from feature_platform.utc import ensure_utc, parse_utc

if TYPE_CHECKING:
    from feature_platform.materialize import MaterializeSummary

__all__ = [
    "OWNER",
    "MissingDataInterval",
    "PROFILE_VARIABLE",
    "dag_default_args",
    "day_chunks",
    "fail_fast",
    "is_permanent",
    "run_window",
    "training_end",
    "online_asset_uri",
    "profile_name",
    "run_materialization",
]

log = logging.getLogger(__name__)
PROFILE_VARIABLE = "feature_platform_profile"
OWNER = "ml-platform"


def dag_default_args(*, retries: int = 3) -> dict[str, Any]:
    """Task defaults shared by every DAG: owner, retries, and the webhook alerts.

    The retry delay (``FEATURE_PLATFORM_RETRY_DELAY_SECONDS``, default 5
    minutes, through ``settings.settings``) is part of the serialized DAG, so it is
    read where the DAG is parsed: the dag-processor's environment (the stack's
    env file sets it for every component; tests shorten it).
    ``notify`` imports only the standard library at module level, so DAG files
    can reference its callbacks at parse time. A plain dict: Airflow's
    ``default_args`` is one (any operator argument may appear in it).
    """
    from feature_platform.notify import airflow_failure_callback, airflow_retry_callback

    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=settings().retry_delay_s),
        "on_failure_callback": airflow_failure_callback,
        "on_retry_callback": airflow_retry_callback,
    }


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying ``exc`` cannot help: bad source data, a failed gate or
    online check, bad configuration or input, a registry never applied.

    Connection errors and timeouts (``OnlineStoreUnavailable``, redis/psycopg
    operational errors, ``OSError``) are transient; anything unknown is treated
    as transient too, so a new kind of outage still retries.
    """
    from feature_platform.skew import SkewCheckFailed

    if is_unavailable(exc):
        return False
    return isinstance(
        exc,
        ValidationFailed
        | SkewCheckFailed
        | ConfigError  # includes RegistryNotApplied
        | ValueError  # MissingDataInterval, FutureWindowError, naive timestamps
        | TypeError
        | KeyError,
    )


@contextmanager
def fail_fast() -> Iterator[None]:
    """Re-raise permanent errors as ``AirflowFailException`` (no retry, one
    failure alert from the task's callback); transient ones unchanged."""
    try:
        yield
    except Exception as exc:
        if not is_permanent(exc):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def _context_time(context: Mapping[str, Any], key: str) -> datetime | None:
    value = context.get(key)
    return ensure_utc(value, key) if value is not None else None


def run_window(
    store: Any, context: Mapping[str, Any], *, views: Iterable[str] | None = None
) -> dict[str, str]:
    """``{"start", "end", "trigger"}``: the window a materialization run writes.

    A scheduled run (or a manual one with a logical date) ends at its
    ``data_interval_end``; a manual run without a logical date ends at the
    run's start time. Both start at
    :func:`~feature_platform.materialize.catch_up_window`'s start: the last
    watermark minus ``FEATURE_PLATFORM_LATE_ARRIVAL_SECONDS`` (or the data
    interval's start if that is earlier), so no interval is ever lost.
    """
    from feature_platform.materialize import catch_up_window

    interval_start = _context_time(context, "data_interval_start")
    end = _context_time(context, "data_interval_end")
    trigger = "scheduled"
    if end is None:
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or getattr(
            dag_run, "run_after", None
        )
        if started is None:
            raise MissingDataInterval(
                "the run has no data interval and no start time: trigger it with "
                "a logical date or as a normal manual run"
            )
        end = ensure_utc(started, "dag_run.start_date")
        interval_start = None
        trigger = "manual"
    require_applied(store)
    start, end = catch_up_window(
        store,
        end,
        views=views,
        interval_start=interval_start,
        late_arrival=timedelta(seconds=settings().late_arrival_s),
    )
    return {"start": start.isoformat(), "end": end.isoformat(), "trigger": trigger}


def training_end(
    store: Any, context: Mapping[str, Any], *, feature_service: str
) -> datetime:
    """End of a training run's window: the newest materialized window end of the
    asset events that triggered it; run by hand (no event), the oldest watermark
    of the feature service's views, i.e. what the online store holds.
    Raises :class:`MissingDataInterval` when a view was never materialized."""
    from feature_platform.materialize import watermark

    end: datetime | None = None
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            window = (getattr(event, "extra", None) or {}).get("window") or {}
            if window.get("end"):
                candidate = parse_utc(window["end"], "asset event window end")
                end = candidate if end is None else max(end, candidate)
    if end is not None:
        return end
    require_applied(store)
    service = store.get_feature_service(feature_service)
    on_demand = {
        v.name: v for v in store.list_on_demand_feature_views(allow_cache=True)
    }
    names: list[str] = []
    for projection in service.feature_view_projections:
        # An on-demand view is computed at read time: the views it reads hold
        # the data.
        odfv = on_demand.get(projection.name)
        sources = odfv.source_feature_view_projections.values() if odfv else []
        names += [p.name for p in sources] if odfv else [projection.name]
    marks = []
    for name in dict.fromkeys(names):
        view = store.get_feature_view(name)
        mark = watermark(view)
        if mark is None:
            raise MissingDataInterval(
                f"feature view {view.name!r} of {feature_service!r} was never "
                "materialized: run the materialization DAG first"
            )
        marks.append(mark)
    return min(marks)


def online_asset_uri(view: str) -> str:
    """URI of the Airflow asset "online values of ``view`` are fresh"."""
    return f"feature-platform://online-store/{view}"


def profile_name() -> str:
    """Profile for a task: Airflow Variable, then environment, then ``local``."""
    try:
        from airflow.sdk import Variable

        value = Variable.get(PROFILE_VARIABLE, default=None)
    except Exception as exc:  # noqa: BLE001 - outside a task / Airflow not configured
        log.debug("no Airflow Variable %s: %s", PROFILE_VARIABLE, exc)
        value = None
    return value or settings().profile or "local"


def _online_target(store: Any) -> str:
    online = store.config.online_store
    kind = getattr(online, "type", "online store")
    conn = getattr(online, "connection_string", None) or getattr(online, "path", "")
    location = str(conn).split(",")[0]  # host:port, never the password part
    return f"{kind} at {location}" if location else str(kind)


def run_materialization(
    store: Any,
    start: datetime,
    end: datetime,
    *,
    views: Iterable[str] | None = None,
) -> MaterializeSummary:
    """``materialize_window`` with a clear error when the online store is down.

    A failed write never advances the registry watermark (it is recorded after
    the writes), and re-running the window is idempotent, so a retry is safe.
    A registry that was never applied raises
    :class:`~feature_platform.errors.RegistryNotApplied` (run ``apply`` first).
    """
    from feature_platform.materialize import materialize_window

    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    require_applied(store)
    try:
        return materialize_window(store, start, end, views=views)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise OnlineStoreUnavailable(
            f"online store {_online_target(store)} is unreachable while materializing "
            f"{sorted(views) if views else 'all online views'} for "
            f"{start.isoformat()} .. {end.isoformat()}: {type(exc).__name__}: {exc}. "
            "The materialization was not recorded; retrying the task rewrites the "
            "same window (idempotent)."
        ) from exc


def day_chunks(
    start: datetime, end: datetime, *, hours: int = 24
) -> list[dict[str, str]]:
    """``[start, end)`` as consecutive windows of ``hours`` (the last may be short)."""
    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    if start >= end:
        raise BadInput(
            f"empty range: start {start.isoformat()} >= end {end.isoformat()}"
        )
    if hours < 1:
        raise BadInput(f"chunk size must be at least one hour, got {hours}")
    step = timedelta(hours=hours)
    chunks = []
    cursor = start
    while cursor < end:
        nxt = min(cursor + step, end)
        chunks.append({"start": cursor.isoformat(), "end": nxt.isoformat()})
        cursor = nxt
    return chunks
