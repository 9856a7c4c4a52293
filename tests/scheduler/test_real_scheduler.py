"""Every DAG driven by a real Airflow 3 scheduler (LocalExecutor, PostgreSQL
metadata database), started by ``feature_platform.stack`` like ``make stack``.

The tests share one deployment (starting it is the slow part). Each DAG run
is made once per module by a fixture, and a run that needs an earlier one's
state (a watermark, the asset event, the driver view never materialized)
requests that run's fixture: any test runs alone, and the tests run in any
order, with the same runs behind them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tests.conftest import TEST_END
from tests.dags.conftest import redis_dump
from tests.dags.test_dag_runs import assert_online_equals_offline
from tests.scheduler.conftest import RETRY_DELAY_S, Deployment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PRIMARY = "feast_materialization_pipeline"  # customer_stats, every 4 hours
DRIVERS = "feast_materialization_pipeline_every_2_hours"  # driver_stats, 2 hours
LATE = timedelta(hours=1)  # FEATURE_PLATFORM_LATE_ARRIVAL_SECONDS default
TICK = TEST_END.replace(hour=TEST_END.hour - TEST_END.hour % 4)  # last 4-hour tick
MATERIALIZE = [
    "validate_source_data",
    "materialize_features",
    "validate_online_store",
    "notify_completion",
]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _messages(d: Deployment, run: dict[str, Any], event: str) -> list[dict[str, Any]]:
    """The webhook messages of ``run``: its DAG's (two DAGs' scheduled runs of
    one interval share a run id) with its run id."""
    return [
        e
        for e in d.webhook.events(event)
        if e.get("dag_id", run["dag_id"]) == run["dag_id"]
        and (
            e.get("run_id") == run["dag_run_id"]
            or run["dag_run_id"] in e.get("title", "")
        )
    ]


def _online_mismatch(
    d: Deployment, view: str, *, start: datetime, end: datetime
) -> str | None:
    """``None`` when the online values of the window's entities equal the
    offline reference now, else what differs (kept for the test to assert)."""
    try:
        assert_online_equals_offline(d.store, d.repo, view, start=start, end=end)
    except AssertionError as exc:
        return str(exc) or "online values differ from the offline reference"
    return None


@pytest.fixture(autouse=True)
def _wall_time(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    print(f"\n{request.node.name}: {time.monotonic() - t0:.0f} s")


@pytest.fixture(scope="module")
def backfill(deployment: Deployment) -> dict[str, Any]:
    """The backfill of customer_stats over the two days before the scheduled
    run's interval (it leaves the watermark the scheduled run starts from)."""
    d = deployment
    end = TICK - timedelta(hours=4)  # the scheduled run's interval starts here
    start = end - timedelta(days=2)
    d.api.set_paused("feast_backfill", False)
    run = d.api.post(
        "/dags/feast_backfill/dagRuns",
        {
            "logical_date": None,
            "conf": {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "views": ["customer_stats"],
                "chunk_hours": 24,
            },
        },
    )
    run = d.api.wait_for_run("feast_backfill", run_id=run["dag_run_id"])
    # Online values of the range's customers = the offline reference (the
    # range starts well within the 3-day ttl, so none has expired when read),
    # compared before any later run writes newer values.
    online = _online_mismatch(d, "customer_stats", start=start, end=end)
    return {"run": run, "start": start, "end": end, "online_mismatch": online}


def test_backfill(deployment: Deployment, backfill: dict[str, Any]) -> None:
    d = deployment
    run = backfill["run"]
    assert run["state"] == "success"
    states = d.api.states(run)
    assert states == {
        "plan_chunks": ("success", 1),
        "validate_source_data": ("success", 1),
        "materialize_chunk[0]": ("success", 1),
        "materialize_chunk[1]": ("success", 1),
        "validate_online_store": ("success", 1),
        "notify_completion": ("success", 1),
    }
    skew = d.api.xcom(run, "validate_online_store")
    assert skew["views"]["customer_stats"]["compared"] > 0
    assert skew["mismatches"] == 0
    [done] = _messages(d, run, "success")
    assert done["chunks"] == 2 and done["skew"]["compared"] > 0
    # Airflow's own task logs: the mapped results are read without a miss.
    logs = d.stack.logs / "airflow" / "dag_id=feast_backfill"
    text = "\n".join(p.read_text() for p in logs.rglob("*.log"))
    assert "notify_completion" in str(list(logs.rglob("*.log")))
    assert "XCom not found" not in text
    assert backfill["online_mismatch"] is None


@pytest.fixture(scope="module")
def scheduled(deployment: Deployment, backfill: dict[str, Any]) -> dict[str, Any]:
    """The scheduled run of the primary DAG after the backfill, and the
    training run its asset event triggers (training is paused again after it,
    so later runs of the primary DAG trigger none)."""
    d = deployment
    d.api.set_paused("feast_training", False)  # the asset triggers it
    d.api.set_paused(PRIMARY, False)  # the scheduler creates the latest interval's run
    try:
        run = d.api.wait_for_run(PRIMARY, run_type="scheduled")
        # The online store and watermark as this run left them.
        d.store.refresh_registry()
        watermark = d.store.get_feature_view("customer_stats").most_recent_end_time
        online = _online_mismatch(
            d,
            "customer_stats",
            start=_ts(run["data_interval_start"]),
            end=_ts(run["data_interval_end"]),
        )
        training = d.api.wait_for_run("feast_training", run_type="asset_triggered")
    finally:
        d.api.set_paused("feast_training", True)
    return {
        "run": run,
        "watermark": watermark,
        "online_mismatch": online,
        "training": training,
    }


def test_scheduled_materialization(
    deployment: Deployment, scheduled: dict[str, Any]
) -> None:
    d = deployment
    run = scheduled["run"]
    assert run["state"] == "success"
    assert d.api.states(run) == {t: ("success", 1) for t in MATERIALIZE}
    interval_start = _ts(run["data_interval_start"])
    interval_end = _ts(run["data_interval_end"])
    assert interval_end == TICK and interval_start == TICK - timedelta(hours=4)
    result = d.api.xcom(run, "materialize_features")
    # Catch-up rule: from the backfill's watermark minus the late-arrival bound.
    assert _ts(result["window"]["start"]) == interval_start - LATE
    assert _ts(result["window"]["end"]) == interval_end
    assert result["window"]["trigger"] == "scheduled"
    assert scheduled["online_mismatch"] is None
    assert scheduled["watermark"].astimezone(UTC) == interval_end
    [done] = _messages(d, run, "success")
    assert done["skew"]["compared"] > 0 and done["skew"]["mismatches"] == 0
    assert _messages(d, run, "failure") == _messages(d, run, "retry") == []


def test_asset_triggered_training(
    deployment: Deployment, scheduled: dict[str, Any]
) -> None:
    d = deployment
    run = scheduled["training"]
    assert run["state"] == "success"
    assert d.api.states(run) == {
        "train_churn_model": ("success", 1),
        "notify_completion": ("success", 1),
    }
    summary = d.api.xcom(run, "train_churn_model")
    assert summary["trigger"] == "asset"
    # The model saw exactly what the online store holds: up to the watermark.
    view = d.store.get_feature_view("customer_stats")
    assert _ts(
        summary["training_window"]["end"]
    ) <= view.most_recent_end_time.astimezone(UTC)
    assert summary["rows"]["train"] > 0 and 0.5 < summary["metrics"]["roc_auc"] <= 1
    [done] = _messages(d, run, "success")
    assert done["training"]["metrics"] == summary["metrics"]


def test_manual_run_without_logical_date(
    deployment: Deployment, scheduled: dict[str, Any]
) -> None:
    """(``scheduled`` first: the run starts from its watermark.)"""
    from feature_platform.materialize import materialize_window

    d = deployment
    view = d.store.get_feature_view("customer_stats")
    watermark = view.most_recent_end_time
    # A deployment's online store holds every value within ttl (its initial
    # load); the tests before this one wrote only parts of that range. A manual
    # run over a quiet window (no source row since the last run) has its skew
    # check widened to everything within ttl, so load that range first, up to
    # the watermark (which stays where it is).
    wm = watermark.astimezone(UTC)
    materialize_window(
        d.store, wm - view.ttl - LATE, wm, views=["customer_stats"], validate=False
    )
    d.store.refresh_registry()
    assert d.store.get_feature_view("customer_stats").most_recent_end_time == watermark
    run = d.api.post(f"/dags/{PRIMARY}/dagRuns", {"logical_date": None})
    assert run["logical_date"] is None
    run = d.api.wait_for_run(PRIMARY, run_id=run["dag_run_id"])
    assert run["state"] == "success"
    assert d.api.states(run) == {t: ("success", 1) for t in MATERIALIZE}
    window = d.api.xcom(run, "materialize_features")["window"]
    assert window["trigger"] == "manual"
    # From the last watermark (minus the late bound) up to the run's start.
    assert _ts(window["start"]) == watermark.astimezone(UTC) - LATE
    assert _ts(window["end"]) == _ts(run["start_date"])
    # The window is quiet (the source ends before it): every entity within
    # ttl of its end (10 min short of the ttl, so none expires before the
    # read) serves the offline latest.
    assert_online_equals_offline(
        d.store,
        d.repo,
        "customer_stats",
        start=_ts(window["end"]) - view.ttl + timedelta(minutes=10),
        end=_ts(window["end"]),
    )
    [done] = _messages(d, run, "success")
    assert done["skew"]["mismatches"] == 0
    assert _messages(d, run, "failure") == []


@pytest.fixture(scope="module")
def bad_driver_run(deployment: Deployment) -> dict[str, Any]:
    """The first scheduled run of the driver DAG, on source data with values
    out of range and naive timestamps; the online store and the view's
    materialized intervals right before and right after it."""
    d = deployment
    path = d.repo / "data" / "driver_stats.parquet"
    original = path.read_bytes()
    frame = pd.read_parquet(path)
    recent = frame.index[
        frame["event_timestamp"] >= pd.Timestamp(TICK - timedelta(hours=3))
    ]
    frame.loc[recent[:5], "acceptance_rate"] = 1.7  # out of range
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_localize(None)  # naive
    frame.to_parquet(path, index=False)
    before = redis_dump(d.store)
    assert d.store.get_feature_view("driver_stats").materialization_intervals == []
    try:
        d.api.set_paused(DRIVERS, False)
        run = d.api.wait_for_run(DRIVERS, run_type="scheduled")
    finally:
        path.write_bytes(original)
    d.store.refresh_registry()
    return {
        "run": run,
        "online_before": before,
        "online_after": redis_dump(d.store),
        "intervals_after": d.store.get_feature_view(
            "driver_stats"
        ).materialization_intervals,
    }


def test_bad_source_data_fails_at_once(
    deployment: Deployment, bad_driver_run: dict[str, Any]
) -> None:
    d = deployment
    run = bad_driver_run["run"]
    assert run["state"] == "failed"
    states = d.api.states(run)
    assert states["validate_source_data"] == ("failed", 1)  # no retry
    for task_id in MATERIALIZE[1:]:
        assert states[task_id][0] == "upstream_failed", task_id
    # nothing written, nothing recorded as materialized
    assert bad_driver_run["online_after"] == bad_driver_run["online_before"]
    assert bad_driver_run["intervals_after"] == []
    [alert] = _messages(d, run, "failure")  # one alert
    assert alert["task_id"] == "validate_source_data"
    for text in ("acceptance_rate", "event_timestamp", "naive"):
        assert text in alert["exception"], text
    assert _messages(d, run, "retry") == []


def test_unreachable_redis_retries_then_recovers(
    deployment: Deployment, bad_driver_run: dict[str, Any]
) -> None:
    """(``bad_driver_run`` first: the driver DAG's one scheduled run is the bad
    data's, whichever test runs first.)"""
    d = deployment
    d.redis.stop()

    def bring_redis_back(message: dict[str, Any]) -> None:
        event = message.get("feature_platform", {})
        if event.get("event") == "retry" and event.get("dag_id") == DRIVERS:
            d.redis.start()

    d.webhook.hooks.append(bring_redis_back)
    try:
        run = d.api.post(f"/dags/{DRIVERS}/dagRuns", {"logical_date": None})
        run = d.api.wait_for_run(DRIVERS, run_id=run["dag_run_id"])
    finally:
        d.webhook.hooks.remove(bring_redis_back)
        if d.redis.proc is None:
            d.redis.start()
    assert run["state"] == "success"
    states = d.api.states(run)
    assert states["validate_source_data"] == ("success", 1)
    assert states["materialize_features"] == ("success", 2)
    first, second = sorted(
        d.api.tries(run, "materialize_features"), key=lambda t: t["try_number"]
    )
    assert first["state"] in ("failed", "up_for_retry"), first["state"]
    gap = _ts(second["start_date"]) - _ts(first["end_date"])
    assert gap >= timedelta(seconds=RETRY_DELAY_S), gap  # the configured delay
    [retry] = _messages(d, run, "retry")  # one alert for the one failure
    assert "OnlineStoreUnavailable" in retry["exception"]
    assert f"127.0.0.1:{d.redis.port}" in retry["exception"]
    assert _messages(d, run, "failure") == []
    window = d.api.xcom(run, "materialize_features")["window"]
    assert_online_equals_offline(
        d.store,
        d.repo,
        "driver_stats",
        start=_ts(window["start"]),
        end=_ts(window["end"]),
    )
    [done] = _messages(d, run, "success")
    assert done["skew"]["mismatches"] == 0
