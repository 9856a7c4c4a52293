"""Policy: owner, retries, tags, failure alerts, task order, and the TTL rule."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from croniter import croniter

from feature_platform.schedules import SCHEDULES, TTL_MULTIPLE
from tests.dags.conftest import ROOT

MATERIALIZATION = {
    "feast_materialization_pipeline": "0 */4 * * *",
    "feast_materialization_pipeline_every_2_hours": "0 */2 * * *",
}
PIPELINE = [
    "validate_source_data",
    "materialize_features",
    "validate_online_store",
    "notify_completion",
]


def cron_interval(expression: str) -> timedelta:
    """The longest gap between two consecutive ticks over a week."""
    it = croniter(expression, datetime(2026, 1, 5))
    ticks = [it.get_next(datetime) for _ in range(7 * 24 * 12 + 1)]
    return max(b - a for a, b in zip(ticks, ticks[1:], strict=False))


def ttl_violations(expression: str, views: list[str], ttls: dict[str, timedelta]):
    interval = cron_interval(expression)
    return [
        f"{v}: ttl {ttls[v]} < {TTL_MULTIPLE} x {interval}"
        for v in views
        if ttls[v] < TTL_MULTIPLE * interval
    ]


@pytest.fixture(scope="module")
def online_ttls() -> dict[str, timedelta]:
    """ttl of every online feature view, from the real definitions in feature_repo/."""
    from feature_platform.definitions import load_definitions

    contents = load_definitions(ROOT / "feature_repo")
    return {v.name: v.ttl for v in contents.feature_views if v.online}


def test_every_dag_follows_policy(dagbag) -> None:
    for dag in dagbag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        assert dag.catchup is False, dag.dag_id
        assert dag.on_failure_callback, f"{dag.dag_id} has no run-level alert"
        assert dag.dagrun_timeout is not None, dag.dag_id
        assert (
            dag.start_date.tzinfo is not None
            and dag.start_date.utcoffset() == timedelta(0)
        )
        assert dag.start_date < datetime.now(dag.start_date.tzinfo)
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.owner == "ml-platform", where
            assert task.retries >= 1, where
            assert task.on_failure_callback, f"{where} has no failure alert"


@pytest.mark.parametrize("dag_id", sorted(MATERIALIZATION))
def test_materialization_dags(dagbag, dag_id: str) -> None:
    dag = dagbag.get_dag(dag_id)
    assert dag.timetable.expression == MATERIALIZATION[dag_id]
    assert str(dag.timetable.timezone) in {"UTC", "Timezone('UTC')"}
    # a stuck run times out (and alerts) before the next one is due
    assert dag.dagrun_timeout == cron_interval(MATERIALIZATION[dag_id])
    for task in dag.tasks:
        assert task.retries == 3
        assert task.retry_delay == timedelta(minutes=5)
    # validate -> materialize -> online check -> notify, nothing else
    assert [t.task_id for t in dag.topological_sort()] == PIPELINE
    for a, b in zip(PIPELINE, PIPELINE[1:], strict=False):
        assert b in dag.get_task(a).downstream_task_ids
    # materialization updates an asset per view (training schedules on it)
    outlets = {o.uri for o in dag.get_task("materialize_features").outlets}
    views = dag.params["views"]
    assert outlets == {f"feature-platform://online-store/{v}" for v in views}


def test_ttl_rule_holds_for_every_online_view(dagbag, online_ttls) -> None:
    scheduled: dict[str, str] = {}
    for dag_id, expression in MATERIALIZATION.items():
        views = dagbag.get_dag(dag_id).params["views"]
        assert ttl_violations(expression, views, online_ttls) == [], dag_id
        for v in views:
            assert v not in scheduled, f"{v} is materialized by two DAGs"
            scheduled[v] = dag_id
    # every online view is refreshed by exactly one scheduled DAG
    assert set(scheduled) == set(online_ttls)
    # the DAGs are generated from SCHEDULES: same crons, same views
    assert {s.cron for s in SCHEDULES.values()} == set(MATERIALIZATION.values())


def test_ttl_rule_check_catches_the_spec_schedule_for_driver_stats(online_ttls) -> None:
    """driver_stats (ttl 6 h) on the spec's 4-hourly schedule breaks the rule."""
    assert cron_interval("0 */4 * * *") == timedelta(hours=4)
    assert ttl_violations("0 */4 * * *", ["driver_stats"], online_ttls) == [
        "driver_stats: ttl 6:00:00 < 3 x 4:00:00"
    ]
    assert ttl_violations("0 */4 * * *", ["customer_stats"], online_ttls) == []


def test_backfill_dag(dagbag) -> None:
    dag = dagbag.get_dag("feast_backfill")
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual trigger only
    assert {"start", "end", "chunk_hours"} <= set(dag.params)
    chunk = dag.get_task("materialize_chunk")
    assert chunk.max_active_tis_per_dagrun == 1
    assert (
        "materialize_chunk" in dag.get_task("validate_source_data").downstream_task_ids
    )


def test_training_dag_is_scheduled_on_the_customer_asset(dagbag) -> None:
    dag = dagbag.get_dag("feast_training")
    condition = dag.timetable.asset_condition
    assert [a.uri for a in condition.objects] == [
        "feature-platform://online-store/customer_stats"
    ]


def test_failure_callback_posts_dag_task_run_and_exception(dagbag, webhook) -> None:
    dag = dagbag.get_dag("feast_materialization_pipeline")
    task = dag.get_task("materialize_features")

    class TI:
        dag_id = dag.dag_id
        task_id = task.task_id
        run_id = "scheduled__2026-11-26T00:00:00+00:00"
        try_number = 4

    for callback in task.on_failure_callback:
        callback({"dag": dag, "ti": TI(), "exception": RuntimeError("redis is down")})
    [event] = webhook.events("failure")
    assert event["dag_id"] == "feast_materialization_pipeline"
    assert event["task_id"] == "materialize_features"
    assert event["run_id"] == TI.run_id
    assert event["exception"] == "RuntimeError: redis is down"
    assert "materialize_features failed" in webhook.messages[0]["text"]


@pytest.mark.parametrize(
    "dag_id",
    [
        "feast_materialization_pipeline",
        "feast_materialization_pipeline_every_2_hours",
        "feast_backfill",
        "feast_training",
    ],
)
def test_every_dag_ends_with_its_completion_message(dagbag, dag_id: str) -> None:
    dag = dagbag.get_dag(dag_id)
    last = [t for t in dag.tasks if not t.downstream_task_ids]
    assert [t.task_id for t in last] == ["notify_completion"]


def test_retry_delay_comes_from_settings_where_the_dags_are_parsed(
    airflow_db, monkeypatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.conftest import DAGS

    monkeypatch.setenv("FEATURE_PLATFORM_RETRY_DELAY_SECONDS", "7")
    bag = DagBag(dag_folder=str(DAGS))
    for dag_id in ("feast_materialization_pipeline", "feast_training"):
        for task in bag.get_dag(dag_id).tasks:
            assert task.retry_delay == timedelta(seconds=7), (dag_id, task.task_id)
