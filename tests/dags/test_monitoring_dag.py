"""The monitoring DAG with ``dag.test()`` on the services profile.

PostgreSQL SQL registry + Redis (a fresh Feast project), a local webhook as the
notifier's sink, the report published under a temporary artifacts dir.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_END
from tests.dags.conftest import DAGS, Webhook

pytestmark = pytest.mark.integration

DAG_ID = "feast_monitoring"
TICK = TEST_END - timedelta(minutes=30)  # a :30 tick of "30 * * * *"


@pytest.fixture
def monitor_env(
    airflow_db,
    services_store,
    local_repo: Path,
    webhook: Webhook,
    tmp_path,
    monkeypatch,
) -> Any:
    monkeypatch.setenv("FEATURE_PLATFORM_PROFILE", "services")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("FEATURE_PLATFORM_RETRY_DELAY_SECONDS", "1")
    monkeypatch.delenv("FP_MONITOR_SERVER_URL", raising=False)
    return services_store


def run_dag(**kwargs: Any):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID].test(**kwargs)


def test_dag_schedule_comes_from_operations(dagbag) -> None:
    from feature_platform.schedules import monitoring_schedule

    dag = dagbag.get_dag(DAG_ID)
    schedule = monitoring_schedule()
    assert dag.timetable.expression == schedule.cron == "30 * * * *"
    assert dag.dagrun_timeout == schedule.interval == timedelta(hours=1)
    assert [t.task_id for t in dag.topological_sort()] == [
        "monitor_features",
        "send_alerts",
    ]


def test_stale_view_alerts_once_then_healthy_run_is_silent(
    monitor_env, webhook: Webhook, tmp_path: Path
) -> None:
    from feature_platform.materialize import materialize_window

    store = monitor_env
    materialize_window(store, TICK - timedelta(days=3), TICK, views=["customer_stats"])
    # driver_stats (every 2 h, max_age 2.5 h): last materialized 3 h before the tick
    materialize_window(
        store,
        TICK - timedelta(days=1),
        TICK - timedelta(hours=3),
        views=["driver_stats"],
    )

    run = run_dag(logical_date=TICK)
    assert run.state == "success"
    assert run.data_interval_end == TICK
    alerts = [m["feature_platform"] for m in webhook.messages]
    assert [a["event"] for a in alerts] == ["monitor_alert"]
    assert alerts[0]["alerts"] == [
        "freshness: driver_stats last materialized 3.0 h ago, more than 2.5 h"
    ]
    assert alerts[0]["online_source"]["kind"] == "probes"
    assert "driver_stats" in webhook.messages[0]["text"]

    out = tmp_path / "artifacts" / "monitoring"
    latest = json.loads((out / "monitor.json").read_text())
    assert latest["generated_at"] == TICK.isoformat()
    assert latest["alerts"] == alerts[0]["alerts"]
    assert "FP_MONITOR_SERVER_URL" in latest["online_source"]["note"]
    assert (out / "monitor.html").read_text().count("<h2") >= 4
    [first] = sorted((out / "history").iterdir())
    assert json.loads((first / "monitor.json").read_text()) == latest
    assert alerts[0]["report"]["html"] == str(out / "monitor.html")

    # The 2-hourly run catches up: the next hour's run is healthy and silent.
    materialize_window(store, TICK - timedelta(hours=3), TICK, views=["driver_stats"])
    run = run_dag(logical_date=TICK + timedelta(hours=1))
    assert run.state == "success"
    assert len(webhook.messages) == 1  # nothing new
    latest = json.loads((out / "monitor.json").read_text())
    assert latest["alerts"] == [] and latest["ok"]
    assert latest["generated_at"] == (TICK + timedelta(hours=1)).isoformat()
    assert all(not f["stale"] for f in latest["freshness"].values())
    assert len(list((out / "history").iterdir())) == 2
