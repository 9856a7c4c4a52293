"""Fixtures of the scale-out tests: a Redis Cluster, one Spark session, 3 profiles.

Everything here is package-scoped: the cluster, the Spark session (started by
the first Spark call, stopped with its JVM after the last test of this package)
and the stores of the local, services and scale profiles over ONE sample-data
repo, each applied and materialized over the same window, so the tests compare
answers, not setups. Under ``CI=true`` a missing PostgreSQL, Redis or
``redis-server`` binary fails the tests (never a skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import RedisCluster
from tests.conftest import PROJECT, TEST_END, _service_unavailable, make_repo

PROFILES = ("local", "services", "scale")
WINDOW_START: datetime = TEST_END - timedelta(days=3)


@dataclass
class ProfileRun:
    store: Any  # feast.FeatureStore
    materialized: dict[str, Any]


@pytest.fixture(scope="package")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster on free loopback ports, torn down afterwards."""
    cluster = RedisCluster(masters=3)
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001 - binary missing, ports, timeout
        _service_unavailable("Redis Cluster (redis-server binary)", exc)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="package")
def scale_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repo with the small sample data, read by all three profiles."""
    return make_repo(tmp_path_factory.mktemp("scale_repo"))


def _stop_spark() -> None:
    """Stop the shared Spark session and its JVM (frees ~1 GB for later tests)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
    gateway = SparkContext._gateway
    if gateway is not None:
        proc = getattr(gateway, "proc", None)
        gateway.shutdown()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        SparkContext._gateway = None
        SparkContext._jvm = None


@pytest.fixture(scope="package")
def profile_runs(
    scale_repo: Path,
    pg_database: str,
    redis_available: None,
    redis_cluster: RedisCluster,
) -> Iterator[dict[str, ProfileRun]]:
    """local, services and scale stores on the same data, applied and materialized.

    Each profile gets its own Feast project (services and scale share the
    session's PostgreSQL database); the window is the same for all three.
    """
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.profiles import get_store

    runs: dict[str, ProfileRun] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FP_PG_DATABASE", pg_database)
        mp.setenv("FP_REDIS_CLUSTER_NODES", redis_cluster.nodes_string)
        # Each profile builds its own sources (profiles.offline_kind follows the
        # loaded profile); no override may force one kind on all three.
        mp.delenv("FEATURE_PLATFORM_OFFLINE", raising=False)
        mp.delenv("PYSPARK_PYTHON", raising=False)  # restored for later tests
        try:
            for name in PROFILES:
                mp.setenv("FEATURE_PLATFORM_PROJECT", f"{PROJECT}_{name}")
                store = get_store(name, repo=scale_repo)
                apply_definitions(store)
                summary = materialize_window(store, WINDOW_START, TEST_END)
                runs[name] = ProfileRun(store=store, materialized=summary)
            yield runs
        finally:
            if "services" in runs:
                runs["services"].store.teardown()  # its keys on the shared Redis
            _stop_spark()
