"""
### Feast materialization pipeline

Validate the source slice of the run, materialize it into the online store,
check the online store against the offline data, and notify.

`validate_source_data` → `materialize_features` → `validate_online_store` →
`notify_completion`

* **Window**: from the last watermark (the end of the view's last recorded
  materialization, minus the late-arrival bound `FEATURE_PLATFORM_LATE_ARRIVAL_SECONDS`,
  default 1 h), or the run's `data_interval_start` if earlier, up to its
  `data_interval_end` (`feature_platform.materialize.catch_up_window`): an interval
  whose run failed every retry, and rows that land late, are written by the next
  run. A manual run without a logical date ends at the run's start time (same
  rule). Never "now" beyond that, so the watermark never runs ahead of the data
  (feast#4222); overlapping windows are idempotent (newest event per entity).
* **Validation gate**: Great Expectations suites (`feature_platform.validation`)
  over the window; a failure stops the run before anything is written, without
  retries (bad data does not fix itself), and alerts once. Every permanent error
  (bad configuration, registry never applied, no window) fails the same way
  (`AirflowFailException`); only connection errors and timeouts retry.
* **Online check**: samples entities and compares online values with the offline
  latest-within-ttl values (`feature_platform.skew`); params `skew_sample_size`,
  `max_mismatch_rate`.
* **Alerts**: every task's `on_failure_callback` posts dag/task/run/exception to
  the webhook (Airflow connection `feature_platform_webhook` or
  `$FEATURE_PLATFORM_WEBHOOK_URL`); retries post a softer warning. The DAG's own
  `on_failure_callback` alerts on run failures no task reported (a run that
  exceeds `dagrun_timeout`, one schedule interval).
* **Profile**: Airflow Variable `feature_platform_profile`, else
  `$FEATURE_PLATFORM_PROFILE`, else `local`.
* **Assets**: `materialize_features` updates `feature-platform://online-store/<view>`;
  the training DAG is scheduled on it.

**One DAG per schedule.** The product spec says every 4 hours, and ttl must be at
least 3x the interval. `driver_stats` has a 6 h ttl, so it cannot run every 4 h:
this file generates one DAG per entry of SCHEDULES in feature_repo/operations.py:
`feast_materialization_pipeline` (`0 */4 * * *`: customer_stats) and
`feast_materialization_pipeline_every_2_hours` (`0 */2 * * *`: driver_stats).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from feature_platform.notify import airflow_dag_failure_callback
from feature_platform.orchestration import dag_default_args, online_asset_uri
from feature_platform.schedules import SCHEDULES

PRIMARY_CRON = "0 */4 * * *"  # the product spec's schedule keeps the plain DAG id
DAG_ID = "feast_materialization_pipeline"


def dag_id_for(key: str, cron: str) -> str:
    return DAG_ID if cron == PRIMARY_CRON else f"{DAG_ID}_{key}"


def build_dag(key: str, cron: str, interval: timedelta, views: tuple[str, ...]):
    """The materialization DAG for one schedule and its feature views."""
    outlets = [Asset(name=f"online_{v}", uri=online_asset_uri(v)) for v in views]

    @dag(
        dag_id=dag_id_for(key, cron),
        schedule=CronDataIntervalTimetable(cron, timezone="UTC"),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        # A run stuck longer than its interval alerts before the next one starts.
        dagrun_timeout=interval,
        on_failure_callback=airflow_dag_failure_callback,
        doc_md=__doc__,
        tags=["feast", "materialization", "ml-platform", *views],
        default_args=dag_default_args(retries=3),
        params={
            "views": Param(list(views), type="array"),
            "skew_sample_size": Param(100, type="integer", minimum=1),
            "max_mismatch_rate": Param(0.0, type="number", minimum=0, maximum=1),
        },
    )
    def materialization():
        @task
        def validate_source_data(**context: Any) -> dict[str, Any]:
            from feature_platform.orchestration import (
                fail_fast,
                profile_name,
                run_window,
            )
            from feature_platform.profiles import get_store
            from feature_platform.utc import parse_utc
            from feature_platform.validation import validate_sources

            views = context["params"]["views"]
            with fail_fast():
                store = get_store(profile_name())
                window = run_window(store, context, views=views)
                summary = validate_sources(
                    store,
                    start=parse_utc(window["start"], "start"),
                    end=parse_utc(window["end"], "end"),
                    views=views,
                )
            return {**summary, "window": window}

        @task(outlets=outlets)
        def materialize_features(
            validated: dict[str, Any], **context: Any
        ) -> dict[str, Any]:
            from feature_platform.orchestration import (
                fail_fast,
                profile_name,
                run_materialization,
            )
            from feature_platform.profiles import get_store
            from feature_platform.utc import parse_utc

            window = validated["window"]
            with fail_fast():
                result = run_materialization(
                    get_store(profile_name()),
                    parse_utc(window["start"], "start"),
                    parse_utc(window["end"], "end"),
                    views=context["params"]["views"],
                )
            result["window"]["trigger"] = window["trigger"]
            for asset in outlets:
                name = asset.uri.rsplit("/", 1)[-1]
                context["outlet_events"][asset].extra = {
                    "window": result["window"],
                    "rows": result["views"].get(name, {}).get("rows", 0),
                }
            return result

        @task
        def validate_online_store(
            materialized: dict[str, Any], **context: Any
        ) -> dict[str, Any]:
            from feature_platform.orchestration import fail_fast, profile_name
            from feature_platform.profiles import get_store
            from feature_platform.skew import check_online_skew
            from feature_platform.utc import parse_utc

            params = context["params"]
            window = materialized["window"]
            with fail_fast():
                return check_online_skew(
                    get_store(profile_name()),
                    start=parse_utc(window["start"], "start"),
                    end=parse_utc(window["end"], "end"),
                    views=params["views"],
                    sample_size=int(params["skew_sample_size"]),
                    max_mismatch_rate=float(params["max_mismatch_rate"]),
                )

        @task
        def notify_completion(
            materialized: dict[str, Any], skew: dict[str, Any], **context: Any
        ) -> dict[str, Any]:
            from feature_platform.notify import post_message, summary_message

            title = f"{context['dag'].dag_id} {context['run_id']} materialized"
            return post_message(summary_message(title, {**materialized, "skew": skew}))

        materialized = materialize_features(validate_source_data())
        notify_completion(materialized, validate_online_store(materialized))

    return materialization()


for _key, _schedule in SCHEDULES.items():
    build_dag(_key, _schedule.cron, _schedule.interval, _schedule.feature_views)
