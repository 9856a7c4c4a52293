"""What the Airflow tasks do, as plain functions (the DAG files only wire them).

* :func:`profile_name` - the profile a task runs against: Airflow Variable
  ``feature_platform_profile``, else ``$FEATURE_PLATFORM_PROFILE``, else ``local``.
* :func:`run_materialization` - ``materialize_window`` for the run's data
  interval, turning a never-applied registry and an unreachable online store
  into clear errors.
* :func:`day_chunks` - split a backfill range into chunks (one mapped task each).
* :func:`online_asset_uri` - the Airflow asset a view's materialization updates
  (training DAGs schedule on it).

No heavy imports at module level: DAG files import this at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from feature_platform.config import ensure_utc, require_applied, settings

__all__ = [
    "OWNER",
    "OnlineStoreUnavailable",
    "PROFILE_VARIABLE",
    "dag_default_args",
    "day_chunks",
    "online_asset_uri",
    "profile_name",
    "run_materialization",
]

PROFILE_VARIABLE = "feature_platform_profile"
OWNER = "ml-platform"


def dag_default_args(*, retries: int = 3) -> dict[str, Any]:
    """Task defaults shared by every DAG: owner, retries, and the webhook alerts.

    Read at DAG parse time: the retry delay is 5 minutes unless
    ``FEATURE_PLATFORM_RETRY_DELAY_SECONDS`` says otherwise (tests shorten it).
    ``notify`` imports only the standard library at module level, so DAG files
    can reference its callbacks at parse time.
    """
    from feature_platform.notify import airflow_failure_callback, airflow_retry_callback

    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=settings().retry_delay_s),
        "on_failure_callback": airflow_failure_callback,
        "on_retry_callback": airflow_retry_callback,
    }


class OnlineStoreUnavailable(RuntimeError):
    """The online store could not be reached; nothing was recorded as materialized."""


def online_asset_uri(view: str) -> str:
    """URI of the Airflow asset "online values of ``view`` are fresh"."""
    return f"feature-platform://online-store/{view}"


def profile_name() -> str:
    """Profile for a task: Airflow Variable, then environment, then ``local``."""
    try:
        from airflow.sdk import Variable

        value = Variable.get(PROFILE_VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - outside a task / Airflow not configured
        value = None
    return value or settings().profile or "local"


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import redis

        if isinstance(
            exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
        ):
            return True
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return isinstance(exc, ConnectionError | TimeoutError)


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
) -> dict[str, Any]:
    """``materialize_window`` with a clear error when the online store is down.

    A failed write never advances the registry watermark (it is recorded after
    the writes), and re-running the window is idempotent, so a retry is safe.
    A registry that was never applied raises
    :class:`~feature_platform.config.RegistryNotApplied` (run ``apply`` first).
    """
    from feature_platform.materialize import materialize_window

    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    require_applied(store)
    try:
        return materialize_window(store, start, end, views=views)
    except Exception as exc:
        if not _is_connection_error(exc):
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
        raise ValueError(
            f"empty range: start {start.isoformat()} >= end {end.isoformat()}"
        )
    if hours < 1:
        raise ValueError(f"chunk size must be at least one hour, got {hours}")
    step = timedelta(hours=hours)
    chunks = []
    cursor = start
    while cursor < end:
        nxt = min(cursor + step, end)
        chunks.append({"start": cursor.isoformat(), "end": nxt.isoformat()})
        cursor = nxt
    return chunks
