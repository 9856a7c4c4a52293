"""Materialization schedules, read from ``feature_repo/operations.py``.

The cadence of each view is operating metadata of the definitions and lives
next to them (``SCHEDULES`` in ``feature_repo/operations.py``); this module
gives it types. Pure data, no heavy imports: the Airflow DAG files import it at
parse time, and ``feature_platform.governance`` checks every online view's ttl
against it (ttl >= 3 x interval, the product rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = [
    "SCHEDULES",
    "TTL_MULTIPLE",
    "Schedule",
    "load_schedules",
    "monitoring_schedule",
    "schedule_for",
]

TTL_MULTIPLE = 3


@dataclass(frozen=True)
class Schedule:
    cron: str
    interval: timedelta
    feature_views: tuple[str, ...]


def load_schedules() -> dict[str, Schedule]:
    """The schedules of the feature repo (``operations.SCHEDULES``)."""
    from feature_platform.profiles import repo_module

    return {
        name: Schedule(
            cron=entry["cron"],
            interval=entry["interval"],
            feature_views=tuple(entry["feature_views"]),
        )
        for name, entry in repo_module("operations").SCHEDULES.items()
    }


SCHEDULES: dict[str, Schedule] = load_schedules()


def monitoring_schedule() -> Schedule:
    """The monitor's cadence (``operations.MONITORING``: cron and interval) over
    the views it has thresholds for."""
    from feature_platform.profiles import repo_module

    entry = repo_module("operations").MONITORING
    return Schedule(
        cron=entry["cron"],
        interval=entry["interval"],
        feature_views=tuple(entry["views"]),
    )


def schedule_for(feature_view: str) -> Schedule:
    for schedule in load_schedules().values():
        if feature_view in schedule.feature_views:
            return schedule
    raise KeyError(f"feature view {feature_view!r} has no materialization schedule")
