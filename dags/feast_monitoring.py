"""
### Feature monitoring, hourly

`monitor_features` → `send_alerts`

* **What**: `feature_platform.monitoring.monitor_and_publish` over every online
  view: freshness (age of the last materialized end), drift (PSI of the latest
  day against the reference window, per feature), null rate of served values
  and p50/p95/p99 read latency. The clock is the run's `data_interval_end`, so a
  rerun of an old interval reports that interval's state.
* **Traffic**: null rates and latency come from the feature server's
  `GET /metrics` at `FP_MONITOR_SERVER_URL` (the reads it served since the
  previous run); without a server configured, from probe reads, and the report
  says so.
* **Thresholds and cadence**: `MONITORING` in `feature_repo/operations.py`, next
  to the view definitions (`max_age`, `max_null_rate`, `max_psi` per view,
  server p99 latency). Hourly at :30: the fastest view materializes every 2 h,
  so a missed run alerts within the hour after it was due, between the
  materialization ticks at :00.
* **Report**: `artifacts/monitoring/monitor.{json,html}` (the latest run, a
  stable path) and `artifacts/monitoring/history/<timestamp>/` (every run).
* **Alerts**: `send_alerts` posts one message listing every crossed threshold
  to the webhook (Airflow connection `feature_platform_webhook` or
  `$FEATURE_PLATFORM_WEBHOOK_URL`, the same notifier as the other DAGs); a
  healthy run posts nothing. A failing task (e.g. an unreachable feature
  server) alerts through its `on_failure_callback`.
* **Profile**: Airflow Variable `feature_platform_profile`, else
  `$FEATURE_PLATFORM_PROFILE`, else `local`.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from feature_platform.notify import airflow_dag_failure_callback
from feature_platform.orchestration import dag_default_args
from feature_platform.schedules import monitoring_schedule

SCHEDULE = monitoring_schedule()


@dag(
    dag_id="feast_monitoring",
    schedule=CronDataIntervalTimetable(SCHEDULE.cron, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # A stuck run alerts before the next one is due.
    dagrun_timeout=SCHEDULE.interval,
    on_failure_callback=airflow_dag_failure_callback,
    doc_md=__doc__,
    tags=["feast", "monitoring", "ml-platform"],
    default_args=dag_default_args(retries=1),
)
def feast_monitoring():
    @task
    def monitor_features(**context: Any) -> dict[str, Any]:
        from feature_platform.monitoring import monitor_and_publish
        from feature_platform.orchestration import profile_name
        from feature_platform.profiles import get_store

        store = get_store(profile_name())
        now = context.get("data_interval_end")
        return monitor_and_publish(store, now=now, notify=False)

    @task
    def send_alerts(summary: dict[str, Any]) -> dict[str, Any]:
        from feature_platform.monitoring import send_alerts as post_alerts

        return post_alerts(summary)

    send_alerts(monitor_features())


feast_monitoring()
