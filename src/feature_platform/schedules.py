"""Materialization schedules: the one home of "how often each view is refreshed".

Pure data, no heavy imports: the Airflow DAG files import it at parse time, and
``feature_platform.governance`` checks every online view's ttl against it
(ttl >= 3 x interval, the product rule).

``driver_stats`` has a 6-hour ttl, so the 4-hourly schedule of the product spec
would break the rule (3 x 4 h = 12 h > 6 h); it is refreshed every 2 hours
instead (its source lands every 2 hours anyway). ``customer_stats`` (3-day ttl)
runs every 4 hours as specified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = ["SCHEDULES", "TTL_MULTIPLE", "Schedule", "schedule_for"]

TTL_MULTIPLE = 3


@dataclass(frozen=True)
class Schedule:
    cron: str
    interval: timedelta
    feature_views: tuple[str, ...]


SCHEDULES: dict[str, Schedule] = {
    "every_4_hours": Schedule("0 */4 * * *", timedelta(hours=4), ("customer_stats",)),
    "every_2_hours": Schedule("0 */2 * * *", timedelta(hours=2), ("driver_stats",)),
}


def schedule_for(feature_view: str) -> Schedule:
    for schedule in SCHEDULES.values():
        if feature_view in schedule.feature_views:
            return schedule
    raise KeyError(f"feature view {feature_view!r} has no materialization schedule")
