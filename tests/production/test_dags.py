"""The Airflow DAGs (``dag.test()``) on the production profile: BigQuery sources
in the emulator, PostgreSQL registry, Redis. The helpers and fixtures are the
services-profile DAG tests' own (tests/dags)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_END
from tests.dags.conftest import Webhook, redis_dump
from tests.dags.test_dag_runs import (
    PRIMARY,
    _floor,
    assert_online_equals_offline,
    run_dag,
    task_states,
)
from tests.production.conftest import JobCounter, production_store

pytestmark = pytest.mark.production


@pytest.fixture
def dag_env(
    airflow_db: Path,
    seeded_repo: Path,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """Tasks resolve the production profile, the seeded repo and a fresh project."""
    store = production_store(seeded_repo, monkeypatch, "dag")
    monkeypatch.setenv("FEATURE_PLATFORM_PROFILE", "production")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(seeded_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_RETRY_DELAY_SECONDS", "1")
    try:
        yield store
    finally:
        store.teardown()


def test_materialization_dag_on_bigquery(
    dag_env,
    seeded_repo: Path,
    webhook: Webhook,
    results: dict,
) -> None:
    store = dag_env
    tick = _floor(TEST_END, 4)
    counter = JobCounter().start()
    run = run_dag(PRIMARY, logical_date=tick)
    jobs = counter.stop()
    assert run.state == "success", task_states(run)
    assert {k: s for k, (s, _) in task_states(run).items()} == {
        "validate_source_data": "success",
        "materialize_features": "success",
        "validate_online_store": "success",
        "notify_completion": "success",
    }
    [done] = webhook.events("success")
    end = datetime.fromisoformat(done["window"]["end"])
    assert end == tick
    compared = assert_online_equals_offline(
        store, seeded_repo, "customer_stats", start=tick - timedelta(hours=4), end=end
    )
    assert done["skew"]["success"] is True and done["skew"]["mismatches"] == 0
    interval = store.get_feature_view("customer_stats").materialization_intervals[-1]
    assert interval[1].astimezone(UTC) == end
    assert jobs["jobs"] > 0 and set(jobs["by_type"]) == {"query"}, jobs
    results["materialization_dag_run"] = {
        **jobs,
        "dag": PRIMARY,
        "views": {v: r["rows"] for v, r in done["views"].items()},
        "online_entities_compared": compared,
    }


def test_backfill_dag_on_bigquery(
    dag_env,
    seeded_repo: Path,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    results: dict,
) -> None:
    from feature_platform.materialize import materialize_window

    backfilled = dag_env
    end = TEST_END.replace(hour=0)
    start = end - timedelta(days=3)
    counter = JobCounter().start()
    run = run_dag(
        "feast_backfill", run_conf={"start": start.isoformat(), "end": end.isoformat()}
    )
    jobs = counter.stop()
    assert run.state == "success", task_states(run)
    states = task_states(run)
    chunks = sorted(k for k in states if k.startswith("materialize_chunk"))
    assert chunks == [f"materialize_chunk[{i}]" for i in range(3)]
    # The same range in one go, into another project: the same Redis contents.
    once = production_store(seeded_repo, monkeypatch, "once")
    try:
        materialize_window(once, start, end)
        a, b = redis_dump(backfilled), redis_dump(once)
        assert len(a) > 0
        assert a == b
    finally:
        once.teardown()
    [done] = webhook.events("success")
    assert done["chunks"] == 3
    assert done["skew"]["compared"] > 0 and done["skew"]["mismatches"] == 0
    results["backfill_dag_run_3_days"] = {**jobs, "chunks": 3, "keys": len(a)}
