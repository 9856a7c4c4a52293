"""
### Feast backfill

Manually triggered: materialize a historical window `[start, end)` into the
online store, in chunks (one mapped task per `chunk_hours`, default a day), after
validating the sources over the whole range.

`plan_chunks` → `validate_source_data` → `materialize_chunk` (mapped) →
`validate_online_store` → `notify_completion`

* **Params**: `start`, `end` (ISO-8601 with an offset, e.g. `2026-11-20T00:00:00Z`;
  `end` may not be in the future), `views` (default: every online view),
  `chunk_hours`.
* **Idempotent**: every chunk is an explicit window; re-running a chunk writes the
  same values. The Redis online store keeps the newest event per entity, so the
  result equals one materialization of the whole range. Chunks run one at a time
  (`max_active_tis_per_dagrun=1`) so the SQLite store of the local profile ends
  in the same state too.
* The online check skips a view whose registry records a materialization ending
  after the range (a later scheduled run): the store rightly holds newer values.
* Same alerts, profile resolution and validation gate as
  `feast_materialization_pipeline`.

Trigger it with `airflow dags trigger feast_backfill -c
'{"start": "2026-11-20T00:00:00Z", "end": "2026-11-23T00:00:00Z"}'`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from feature_platform.notify import airflow_dag_failure_callback
from feature_platform.orchestration import dag_default_args


@dag(
    dag_id="feast_backfill",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=24),
    on_failure_callback=airflow_dag_failure_callback,
    doc_md=__doc__,
    tags=["feast", "materialization", "backfill", "ml-platform"],
    default_args=dag_default_args(retries=3),
    params={
        "start": Param(None, type=["null", "string"], description="ISO-8601 UTC"),
        "end": Param(None, type=["null", "string"], description="ISO-8601 UTC"),
        "views": Param(None, type=["null", "array"]),
        "chunk_hours": Param(24, type="integer", minimum=1),
        "skew_sample_size": Param(100, type="integer", minimum=1),
        "max_mismatch_rate": Param(0.0, type="number", minimum=0, maximum=1),
    },
)
def feast_backfill():
    @task
    def plan_chunks(**context: Any) -> list[dict[str, str]]:
        from airflow.sdk.exceptions import AirflowFailException

        from feature_platform.orchestration import day_chunks
        from feature_platform.utc import parse_utc, utc_now

        params = context["params"]
        if not params.get("start") or not params.get("end"):
            raise AirflowFailException("feast_backfill needs params start and end")
        try:
            start = parse_utc(params["start"], "start")
            end = parse_utc(params["end"], "end")
            if end > utc_now():
                raise ValueError(f"end {end.isoformat()} is in the future")
            return day_chunks(start, end, hours=int(params["chunk_hours"]))
        except ValueError as exc:  # includes NaiveTimestampError
            raise AirflowFailException(f"bad backfill window: {exc}") from exc

    @task
    def validate_source_data(
        chunks: list[dict[str, str]], **context: Any
    ) -> dict[str, Any]:

        from feature_platform.orchestration import fail_fast, profile_name
        from feature_platform.profiles import get_store
        from feature_platform.utc import parse_utc
        from feature_platform.validation import validate_sources

        with fail_fast():
            return validate_sources(
                get_store(profile_name()),
                start=parse_utc(chunks[0]["start"]),
                end=parse_utc(chunks[-1]["end"]),
                views=context["params"]["views"],
            )

    @task(max_active_tis_per_dagrun=1)
    def materialize_chunk(window: dict[str, str], **context: Any) -> dict[str, Any]:
        from feature_platform.orchestration import (
            fail_fast,
            profile_name,
            run_materialization,
        )
        from feature_platform.profiles import get_store
        from feature_platform.utc import parse_utc

        with fail_fast():
            return run_materialization(
                get_store(profile_name()),
                parse_utc(window["start"], "start"),
                parse_utc(window["end"], "end"),
                views=context["params"]["views"],
            )

    @task
    def validate_online_store(
        chunks: list[dict[str, str]], results: list[dict[str, Any]], **context: Any
    ) -> dict[str, Any]:
        from feature_platform.orchestration import fail_fast, profile_name
        from feature_platform.profiles import get_store
        from feature_platform.skew import check_online_skew
        from feature_platform.utc import parse_utc

        params = context["params"]
        with fail_fast():
            return check_online_skew(
                get_store(profile_name()),
                start=parse_utc(chunks[0]["start"]),
                end=parse_utc(chunks[-1]["end"]),
                views=params["views"],
                sample_size=int(params["skew_sample_size"]),
                max_mismatch_rate=float(params["max_mismatch_rate"]),
                skip_if_newer=True,  # later runs may have written newer values
            )

    @task
    def notify_completion(
        chunks: list[dict[str, str]],
        results: list[dict[str, Any]],
        skew: dict[str, Any],
        **context: Any,
    ) -> dict[str, Any]:
        from feature_platform.notify import post_message, summary_message

        # Index by count: iterating Airflow's lazy XCom sequence asks for one
        # item past the end and logs "XCom not found" for it.
        parts = [results[i] for i in range(len(results))]
        views: dict[str, dict[str, int]] = {}
        for part in parts:
            for name, view in part["views"].items():
                views.setdefault(name, {"rows": 0})["rows"] += view["rows"]
        summary = {
            "window": {"start": chunks[0]["start"], "end": chunks[-1]["end"]},
            "chunks": len(chunks),
            "views": views,
            "skew": skew,
        }
        title = (
            f"feast_backfill {context['run_id']} materialized {len(chunks)} chunk(s)"
        )
        return post_message(summary_message(title, summary))

    chunks = plan_chunks()
    validated = validate_source_data(chunks)
    results = materialize_chunk.expand(window=chunks)
    validated >> results
    skew = validate_online_store(chunks, results)
    notify_completion(chunks, results, skew)


feast_backfill()
