"""Redis restart -> detect -> ``feature-platform recover``; idempotent windows.

Runs against a private redis-server on a free port (restarted by the test; it
keeps nothing on disk) and this session's PostgreSQL registry database.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROJECT, TEST_END
from tests.integration.faults import RedisServer
from tests.reference import latest_offline_values

pytestmark = pytest.mark.integration

VIEWS = {
    "customer_stats": (
        "customer_id",
        timedelta(days=3),
        [
            "total_orders",
            "avg_order_amount",
            "lifetime_value",
            "preferred_category",
            "churn_risk_score",
        ],
    ),
    "driver_stats": (
        "driver_id",
        timedelta(hours=6),
        ["avg_rating", "total_trips", "acceptance_rate", "avg_delivery_time_min"],
    ),
}


@pytest.fixture(scope="module")
def own_redis(redis_available: None) -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store_on_own_redis(
    services_env, own_redis: RedisServer, local_repo: Path, monkeypatch
):
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    own_redis.client().flushall()  # our private server only
    monkeypatch.setenv("FP_REDIS_PORT", str(own_redis.port))
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", f"{PROJECT}_{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    store = get_store("services", repo=local_repo)
    assert str(own_redis.port) in store.config.online_store.connection_string
    apply_definitions(store)
    return store


def _same(a, b) -> bool:
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b)) or pd.isna(b)
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return a == b


def _assert_online_equals_offline(store, repo: Path, *, per_view: int = 150) -> int:
    """Every sampled entity's online values equal the brute-force offline latest."""
    from feature_platform.online import read_online

    checked = 0
    for view, (key, ttl, features) in VIEWS.items():
        source = pd.read_parquet(repo / "data" / f"{view}.parquet")
        expected = latest_offline_values(source, key, TEST_END, ttl=ttl)
        sample = expected.sample(min(per_view, len(expected)), random_state=3)
        online = read_online(
            store,
            [{key: int(k)} for k in sample[key]],
            features=[f"{view}:{f}" for f in features],
            now=TEST_END,
        )
        for i, (_, row) in enumerate(sample.iterrows()):
            for feature in features:
                got, want = online[feature][i], row[feature]
                assert _same(got, want), (view, row[key], feature, got, want)
        checked += len(sample)
    return checked


def test_recover_after_redis_restart(
    store_on_own_redis, own_redis: RedisServer, local_repo: Path
) -> None:
    from feature_platform.cli import main
    from feature_platform.materialize import materialize_incremental
    from feature_platform.recovery import online_health

    store = store_on_own_redis
    materialize_incremental(store, TEST_END)
    assert online_health(store, end=TEST_END)["healthy"]
    assert _assert_online_equals_offline(store, local_repo) > 0

    own_redis.restart()  # the online store is empty now
    assert own_redis.client().dbsize() == 0
    health = online_health(store, end=TEST_END, sample=50)
    assert not health["healthy"]
    for view in VIEWS:
        assert health["views"][view]["missing"] == health["views"][view]["sampled"] > 0
    # The watermark survived in PostgreSQL, so an incremental run repairs nothing.
    assert materialize_incremental(store, TEST_END)["rows_total"] == 0
    assert not online_health(store, end=TEST_END, sample=50)["healthy"]

    # `feature-platform recover` (in-process: same code path as the console script)
    # exits 1 while unhealthy when only checking, 0 after recovering.
    end = TEST_END.isoformat()
    assert main(["--profile", "services", "recover", "--check", "--end", end]) == 1
    assert main(["--profile", "services", "recover", "--end", end]) == 0
    after = online_health(store, end=TEST_END, sample=500)
    assert after["healthy"], after
    assert all(v["missing"] == 0 and v["behind"] == 0 for v in after["views"].values())
    assert _assert_online_equals_offline(store, local_repo, per_view=400) > 0

    # Recovering a healthy store is a no-op.
    from feature_platform.recovery import recover

    again = recover(store, end=TEST_END)
    assert again["healthy"] and again["rematerialized"] == {}


def _dump(server: RedisServer) -> dict[bytes, dict[bytes, bytes]]:
    client = server.client()
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}


def test_materialization_is_idempotent_by_key_dump(
    store_on_own_redis, own_redis: RedisServer
) -> None:
    """Same window twice, or the window in two halves: identical key/value dump."""
    from feature_platform.materialize import materialize_window

    store = store_on_own_redis
    start, end = TEST_END - timedelta(days=2), TEST_END
    middle = start + (end - start) / 2

    materialize_window(store, start, end)
    once = _dump(own_redis)
    assert len(once) > 100
    materialize_window(store, start, end)
    assert _dump(own_redis) == once

    own_redis.client().flushall()
    materialize_window(store, start, middle)
    materialize_window(store, middle, end)
    halves = _dump(own_redis)
    assert halves == once


def _append_rows(path: Path, rows: pd.DataFrame) -> None:
    source = pd.read_parquet(path)
    # Microsecond timestamps, as the generator writes them (the data contract).
    pd.concat([source, rows[source.columns]], ignore_index=True).to_parquet(
        path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True
    )


def test_recover_repairs_values_that_are_present_but_stale(
    store_on_own_redis, local_repo: Path
) -> None:
    """Online values older than the offline latest (rows that arrived after the
    window was materialized) make the view unhealthy, and recover rewrites them."""
    from feature_platform.materialize import materialize_window
    from feature_platform.recovery import online_health, recover

    store = store_on_own_redis
    materialize_window(store, TEST_END - timedelta(days=3), TEST_END)
    assert online_health(store, end=TEST_END, views=["customer_stats"])["healthy"]

    path = local_repo / "data" / "customer_stats.parquet"
    latest = latest_offline_values(
        pd.read_parquet(path), "customer_id", TEST_END, ttl=timedelta(days=3)
    )
    newer = pd.Timestamp(TEST_END - timedelta(minutes=30))
    late = latest[latest["event_timestamp"] < newer].assign(
        event_timestamp=newer,
        created_timestamp=newer,
        total_orders=lambda f: f["total_orders"] + 1,
    )
    assert len(late) > len(latest) // 2
    _append_rows(path, late)

    health = online_health(store, end=TEST_END, views=["customer_stats"])
    view = health["views"]["customer_stats"]
    assert view["missing"] == 0 and view["behind"] > 0, view
    assert not view["healthy"] and not health["healthy"]

    result = recover(store, end=TEST_END, views=["customer_stats"])
    assert "customer_stats" in result["rematerialized"]
    after = result["after"]["views"]["customer_stats"]
    assert after["missing"] == 0 and after["behind"] == 0, after
    assert result["healthy"]
    assert _assert_online_equals_offline(store, local_repo) > 0


def test_restatement_does_not_replace_the_online_value(
    store_on_own_redis, own_redis: RedisServer, local_repo: Path
) -> None:
    """Pinned, as Feast does it: a row restated with the same event time (later
    created time) is skipped by the Redis write rule "write only when the event
    time is newer", on re-materialization and on ``recover --force`` alike.
    Deleting the entity's key and recovering again writes it (docs/operations.md).
    """
    from feast.value_type import ValueType

    from feature_platform.cli import main
    from feature_platform.materialize import materialize_window
    from feature_platform.online import read_online
    from feature_platform.online_store.codec import redis_entity_key

    store = store_on_own_redis
    start = TEST_END - timedelta(days=3)
    materialize_window(store, start, TEST_END)

    path = local_repo / "data" / "customer_stats.parquet"
    source = pd.read_parquet(path)
    latest = latest_offline_values(
        source, "customer_id", TEST_END, ttl=timedelta(days=3)
    )
    row = latest[latest["lifetime_value"].notna()].iloc[0]
    cid = int(row["customer_id"])

    def served() -> float:
        got = read_online(
            store,
            [{"customer_id": cid}],
            features=["customer_stats:lifetime_value"],
            now=TEST_END,
        )
        return float(got["lifetime_value"][0])

    original = float(row["lifetime_value"])
    assert served() == pytest.approx(original, rel=1e-6)
    restated = source[
        (source["customer_id"] == cid)
        & (source["event_timestamp"] == row["event_timestamp"])
    ].tail(1)
    restated = restated.assign(
        created_timestamp=restated["created_timestamp"] + pd.Timedelta(hours=1),
        lifetime_value=original + 1000.0,
    )
    _append_rows(path, restated)
    offline = latest_offline_values(
        pd.read_parquet(path), "customer_id", TEST_END, ttl=timedelta(days=3)
    )
    assert float(
        offline.loc[offline["customer_id"] == cid, "lifetime_value"].iloc[0]
    ) == pytest.approx(original + 1000.0)

    # Re-materializing the window does not replace the value...
    materialize_window(store, start, TEST_END)
    assert served() == pytest.approx(original, rel=1e-6)
    # ...and neither does `recover --force` (the same write rule).
    end = TEST_END.isoformat()
    argv = ["--profile", "services", "recover", "--force", "--end", end]
    assert main([*argv, "--views", "customer_stats"]) == 0
    assert served() == pytest.approx(original, rel=1e-6)

    # The remedy: delete the entity's key, then recover --force.
    key = redis_entity_key("customer_id", cid, ValueType.INT64.value, store.project)
    assert own_redis.client().delete(key) == 1
    assert main(argv) == 0
    assert served() == pytest.approx(original + 1000.0, rel=1e-6)
