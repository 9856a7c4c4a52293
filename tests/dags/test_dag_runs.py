"""The DAGs run end to end with ``dag.test()`` against the services profile.

PostgreSQL SQL registry + Redis (the shared loopback Redis, a fresh Feast
project per test; the fault test uses its own redis-server on a free port).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import TEST_END
from tests.dags.conftest import DAGS, Webhook, redis_dump, unique_project
from tests.reference import latest_offline_values

pytestmark = pytest.mark.integration

PRIMARY = "feast_materialization_pipeline"  # customer_stats, every 4 hours
DRIVERS = "feast_materialization_pipeline_every_2_hours"  # driver_stats, every 2 hours
KEYS = {"customer_stats": "customer_id", "driver_stats": "driver_id"}


def _floor(ts: datetime, hours: int) -> datetime:
    return ts.replace(hour=ts.hour - ts.hour % hours)


@pytest.fixture
def dag_env(
    airflow_db, services_store, local_repo: Path, webhook: Webhook, monkeypatch
) -> Any:
    """Tasks resolve the services profile and this test's repo copy and project."""
    monkeypatch.setenv("FEATURE_PLATFORM_PROFILE", "services")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    # Retries (3 per task) wait a second, not five minutes, in tests.
    monkeypatch.setenv("FEATURE_PLATFORM_RETRY_DELAY_SECONDS", "1")
    return services_store


def run_dag(dag_id: str, **kwargs: Any):
    """Parse the DAGs now (so env changes apply) and ``dag.test()`` one."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[dag_id].test(**kwargs)


def task_states(run) -> dict[str, tuple[str | None, int]]:
    """task id (with map index) -> (state, try number) of a finished run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id
            )
        ).all()
        return {
            ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): (
                ti.state,
                ti.try_number,
            )
            for ti in tis
        }


def assert_online_equals_offline(
    store, repo: Path, name: str, *, start: datetime, end: datetime
) -> int:
    """Every entity with a source row in [start, end] reads back its latest row."""
    from feature_platform.pii import mask_frame as mask_pii_frame
    from feature_platform.pii import pii_fields

    view = store.get_feature_view(name)
    key = KEYS[name]
    source = pd.read_parquet(repo / "data" / f"{name}.parquet")
    want = latest_offline_values(
        source, key, pd.Timestamp(end), ttl=pd.Timedelta(view.ttl), start=start
    )
    want = mask_pii_frame(want, pii_fields(view))
    assert len(want) > 0
    features = [f.name for f in view.features]
    online = store.get_online_features(
        features=[f"{name}:{f}" for f in features],
        entity_rows=[{key: int(k)} for k in want[key]],
    ).to_dict()
    for feature in features:
        expected = want[feature].tolist()
        got = online[feature]
        for e, g in zip(expected, got, strict=True):
            if pd.isna(e):
                assert g is None, (feature, e, g)
            elif isinstance(e, float):
                assert g == pytest.approx(e, rel=1e-6), feature
            else:
                assert g == e, feature
    return len(want)


def test_materialization_dag_end_to_end(dag_env, local_repo: Path, webhook) -> None:
    store = dag_env
    tick = _floor(TEST_END, 4)
    run = run_dag(PRIMARY, logical_date=tick)

    assert run.state == "success"
    states = task_states(run)
    assert {k: s for k, (s, _) in states.items()} == {
        "validate_source_data": "success",
        "materialize_features": "success",
        "validate_online_store": "success",
        "notify_completion": "success",
    }
    # The run's data interval ends the window, not "now"; never materialized
    # before, the window starts one ttl earlier (the catch-up rule).
    assert (run.data_interval_start, run.data_interval_end) == (
        tick - timedelta(hours=4),
        tick,
    )
    [done] = webhook.events("success")
    start = datetime.fromisoformat(done["window"]["start"])
    end = datetime.fromisoformat(done["window"]["end"])
    assert (start, end) == (tick - timedelta(days=3), tick)
    # Entities with a row in the data interval (older ones may expire by now).
    assert_online_equals_offline(
        store, local_repo, "customer_stats", start=tick - timedelta(hours=4), end=end
    )
    rows = done["views"]["customer_stats"]["rows"]
    assert rows >= 500  # nearly every customer of the 3-day window
    interval = store.get_feature_view("customer_stats").materialization_intervals[-1]
    assert interval[1].astimezone(UTC) == end

    # driver_stats belongs to the 2-hourly DAG: untouched here.
    drivers = store.get_online_features(
        features=["driver_stats:avg_rating"], entity_rows=[{"driver_id": 5000}]
    ).to_dict()
    assert drivers["avg_rating"] == [None]

    assert done["skew"]["success"] is True and done["skew"]["mismatches"] == 0
    assert webhook.events("failure") == []

    # The asset event that schedules the training DAG was recorded.
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(
                AssetModel.uri == "feature-platform://online-store/customer_stats",
                AssetEvent.source_run_id == run.run_id,
            )
        ).all()
    assert [e["rows"] for e in extras] == [rows]


def test_bad_source_data_stops_the_run(dag_env, local_repo: Path, webhook) -> None:
    from feature_platform.materialize import materialize_window

    store = dag_env
    tick = _floor(TEST_END, 2)
    # The online store already holds an earlier window.
    materialize_window(store, tick - timedelta(hours=8), tick - timedelta(hours=2))
    before = redis_dump(store)
    assert len(before) > 0
    intervals = len(store.get_feature_view("driver_stats").materialization_intervals)

    path = local_repo / "data" / "driver_stats.parquet"
    frame = pd.read_parquet(path)
    in_run = frame.index[
        frame["event_timestamp"] >= pd.Timestamp(tick - timedelta(hours=2))
    ]
    frame["driver_id"] = frame["driver_id"].astype("float64")
    frame.loc[in_run[:3], "driver_id"] = float("nan")  # null keys
    frame.loc[in_run[3:6], "acceptance_rate"] = 1.7  # out of range
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_localize(None)  # naive
    frame.to_parquet(path, index=False)

    run = run_dag(DRIVERS, logical_date=tick)

    assert run.state == "failed"
    states = task_states(run)
    assert states["validate_source_data"] == ("failed", 1)  # failed fast, no retries
    for task_id in (
        "materialize_features",
        "validate_online_store",
        "notify_completion",
    ):
        assert states[task_id][0] == "upstream_failed", task_id
    # Nothing was written or recorded.
    assert redis_dump(store) == before
    assert (
        len(store.get_feature_view("driver_stats").materialization_intervals)
        == intervals
    )
    # The alert names the DAG, task, run and the broken expectations.
    [alert] = webhook.events("failure")
    assert (alert["dag_id"], alert["task_id"], alert["run_id"]) == (
        DRIVERS,
        "validate_source_data",
        run.run_id,
    )
    for text in ("driver_id", "acceptance_rate", "event_timestamp", "naive"):
        assert text in alert["exception"], text
    assert webhook.events("success") == []


def test_redis_outage_fails_clearly_and_the_retry_recovers(
    airflow_db, services_env, local_repo: Path, webhook, own_redis, monkeypatch
) -> None:
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", unique_project())
    monkeypatch.setenv("FP_REDIS_PORT", str(own_redis.port))
    monkeypatch.setenv("FEATURE_PLATFORM_PROFILE", "services")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_RETRY_DELAY_SECONDS", "1")
    store = get_store("services", repo=local_repo)
    apply_definitions(store)

    own_redis.stop()  # Redis goes away before the run

    def bring_redis_back(message: dict[str, Any]) -> None:
        event = message.get("feature_platform", {})
        if (
            event.get("event") == "retry"
            and event.get("task_id") == "materialize_features"
        ):
            own_redis.start()

    webhook.hooks.append(bring_redis_back)
    tick = _floor(TEST_END, 4)
    try:
        run = run_dag(PRIMARY, logical_date=tick)

        assert run.state == "success"
        states = task_states(run)
        assert states["materialize_features"] == ("success", 2)
        assert states["validate_source_data"] == ("success", 1)
        [retry] = webhook.events("retry")
        assert "OnlineStoreUnavailable" in retry["exception"]
        assert f"127.0.0.1:{own_redis.port}" in retry["exception"]
        assert "unreachable" in retry["exception"]
        assert webhook.events("failure") == []
        assert_online_equals_offline(
            store,
            local_repo,
            "customer_stats",
            start=run.data_interval_start,
            end=run.data_interval_end,
        )
    finally:
        if own_redis.proc is not None:
            store.teardown()


def test_backfill_equals_one_materialization(
    dag_env, local_repo: Path, webhook, monkeypatch
) -> None:
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.profiles import get_store

    backfilled = dag_env
    end = TEST_END.replace(hour=0)
    start = end - timedelta(days=3)
    run = run_dag(
        "feast_backfill",
        run_conf={"start": start.isoformat(), "end": end.isoformat()},
    )
    assert run.state == "success"
    states = task_states(run)
    chunks = sorted(k for k in states if k.startswith("materialize_chunk"))
    assert chunks == [f"materialize_chunk[{i}]" for i in range(3)]
    assert all(state == "success" for state, _ in states.values())

    # The same range in one go, into another project.
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", unique_project())
    once = get_store("services", repo=local_repo)
    apply_definitions(once)
    try:
        materialize_window(once, start, end)
        a, b = redis_dump(backfilled), redis_dump(once)
        assert len(a) > 0
        assert a == b
    finally:
        once.teardown()
    [done] = webhook.events("success")
    assert done["chunks"] == 3
    # the online check really compared values (nothing newer was there to skip)
    assert done["skew"]["compared"] > 0 and done["skew"]["mismatches"] == 0


def test_no_lost_intervals(dag_env, local_repo: Path, webhook, monkeypatch) -> None:
    """Issue 14 item 5: a run that failed every retry loses nothing, and rows
    that land late for an interval already written are picked up: the next run
    starts from the last watermark (minus the late-arrival bound)."""
    from feature_platform.settings import settings
    from tests.integration.faults import free_port

    store = dag_env
    key, name = "customer_id", "customer_stats"
    t0 = _floor(TEST_END, 4) - timedelta(hours=8)
    run_a = run_dag(PRIMARY, logical_date=t0)  # [t0-4h, t0]: succeeds
    assert run_a.state == "success"

    # Rows that land late, for run A's interval, inside the late-arrival bound.
    path = local_repo / "data" / f"{name}.parquet"
    source = pd.read_parquet(path)
    late = source.tail(3).copy()
    late[key] = [990_001, 990_002, 990_003]  # new customers: these rows are latest
    late["event_timestamp"] = pd.Timestamp(t0) - pd.Timedelta(minutes=20)
    late["created_timestamp"] = pd.Timestamp(datetime.now(UTC))
    late["lifetime_value"] = [11.0, 22.0, 33.0]
    source = pd.concat([source, late], ignore_index=True)
    source.to_parquet(path, index=False)
    assert settings().late_arrival_s >= 20 * 60

    # Run B ([t0, t0+4h]) cannot reach Redis on any try: it fails, records nothing.
    monkeypatch.setenv("FP_REDIS_PORT", str(free_port()))
    run_b = run_dag(PRIMARY, logical_date=t0 + timedelta(hours=4))
    assert run_b.state == "failed"
    assert task_states(run_b)["materialize_features"] == ("failed", 4)
    assert len(webhook.events("retry")) == 3 and len(webhook.events("failure")) == 1
    monkeypatch.delenv("FP_REDIS_PORT")

    # Run C ([t0+4h, t0+8h]) covers B's interval and the late rows.
    end = t0 + timedelta(hours=8)
    run_c = run_dag(PRIMARY, logical_date=end)
    assert run_c.state == "success"
    done = webhook.events("success")[-1]
    assert datetime.fromisoformat(done["window"]["start"]) == t0 - timedelta(hours=1)

    # The test means something: some customers' latest row is in B's interval.
    in_b = source[
        (source["event_timestamp"] > pd.Timestamp(t0))
        & (source["event_timestamp"] <= pd.Timestamp(t0 + timedelta(hours=4)))
    ]
    assert len(in_b) > 0

    # Every entity: online equals the offline latest row up to `end` that is
    # still within ttl when read (reads enforce the ttl against now).
    view = store.get_feature_view(name)
    read_at = pd.Timestamp(datetime.now(UTC))
    upto = source[source["event_timestamp"] <= pd.Timestamp(end)]
    latest = (
        upto.sort_values(["event_timestamp", "created_timestamp"])
        .groupby(key)
        .tail(1)
        .set_index(key)
    )
    ids = sorted(int(k) for k in source[key].unique())
    online = store.get_online_features(
        features=[f"{name}:lifetime_value", f"{name}:total_orders"],
        entity_rows=[{key: k} for k in ids],
    ).to_dict()
    fresh = 0
    for i, k in enumerate(ids):
        row = latest.loc[k] if k in latest.index else None
        if row is None or row["event_timestamp"] < read_at - pd.Timedelta(view.ttl):
            assert online["lifetime_value"][i] is None, k
            continue
        fresh += 1
        assert online["lifetime_value"][i] == pytest.approx(row["lifetime_value"]), k
        assert online["total_orders"][i] == row["total_orders"], k
    assert fresh > 100
    assert online["lifetime_value"][ids.index(990_002)] == pytest.approx(22.0)
