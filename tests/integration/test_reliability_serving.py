"""The feature server under load: during a large materialization, and a soak.

One server process per module (``python -m feature_platform.server`` on a free
127.0.0.1 port, registry refresh every second) over a private redis-server and
this session's PostgreSQL registry, with a larger sample (20k customers).

* During Feast's own materialization (which flips the views to MATERIALIZING in
  the shared registry) and then the platform's ``materialize_window``, a
  fixed-rate stream of good requests gets no error
  (``serve_features_while_materializing: true``).
* Soak: a fixed request rate for ``FP_SOAK_SECONDS`` (default 60) with a mix
  of good and malformed requests: 0 server errors, malformed ones answered
  4xx, RSS growth reported.

Latency percentiles and RSS are written to ``artifacts/test-results/reliability.json``;
the only assertions are on error counts (and a generous leak bound).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from benchmarks.harness import provenance
from benchmarks.report import RELIABILITY_COMMAND
from feature_platform.sample_data import SampleSpec
from tests.conftest import PROJECT, ROOT, TEST_END, make_repo
from tests.integration.faults import RedisServer, free_port, stop_process
from tests.integration.load import rss_kib, run_load

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIG_SPEC = SampleSpec(customers=20_000, drivers=1_000, days=16, seed=11, end=TEST_END)
MAX_ROWS = 100
SOAK_S = float(os.environ.get("FP_SOAK_SECONDS", "60"))
# Test runs write to artifacts/ (git-ignored); set FP_BENCH_RESULTS=benchmarks/results
# to refresh the committed record quoted in the README.
RESULTS = (
    Path(os.environ.get("FP_BENCH_RESULTS", ROOT / "artifacts" / "test-results"))
    / "reliability.json"
)


@dataclass
class Served:
    url: str
    store: Any
    repo: Path
    proc: subprocess.Popen[bytes]
    customers: list[int]
    drivers: list[int]


def _record(name: str, result: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data[name] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "load_average_1m": round(os.getloadavg()[0], 2),
                  **provenance(RELIABILITY_COMMAND), **result}  # fmt: skip
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def served(
    services_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.profiles import get_store

    repo = make_repo(tmp_path_factory.mktemp("serving_repo"), BIG_SPEC)
    if os.environ.get("FP_TEST_SERVE_WHILE_MATERIALIZING") == "false":
        # Manual check only: shows what the flag prevents (errors > 0).
        profile = repo / "profiles" / "services.yaml"
        text = profile.read_text().replace(
            "serve_features_while_materializing: true",
            "serve_features_while_materializing: false",
        )
        profile.write_text(text)
    redis_server = RedisServer().start()
    log = tmp_path_factory.mktemp("serving_log") / "server.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FP_REDIS_PORT", str(redis_server.port))
        mp.setenv("FEATURE_PLATFORM_PROJECT", f"{PROJECT}_srv_{uuid.uuid4().hex[:4]}")
        store = get_store("services", repo=repo)
        apply_definitions(store)
        # Something to serve before the big run: the last 6 hours.
        materialize_window(store, TEST_END - timedelta(hours=6), TEST_END)
        port = free_port()
        env = {
            **os.environ,
            "FEAST_USAGE": "False",
            "FP_SERVER_LOG_LEVEL": "warning",
            "FP_AUTH": "no_auth",  # reliability here; auth is test_auth_oidc's
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "feature_platform.server",
                    "--profile", "services", "--repo", str(repo),
                    "--host", "127.0.0.1", "--port", str(port),
                    "--max-entity-rows", str(MAX_ROWS), "--registry-ttl-sec", "1",
                    "--no-access-log",
                ],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            customers = pd.read_parquet(repo / "data" / "customer_stats.parquet")
            drivers = pd.read_parquet(repo / "data" / "driver_stats.parquet")
            yield Served(
                url=url,
                store=store,
                repo=repo,
                proc=proc,
                customers=[int(c) for c in customers["customer_id"].unique()],
                drivers=[int(d) for d in drivers["driver_id"].unique()],
            )
        finally:
            stop_process(proc)
            redis_server.stop()


def _good(served: Served, rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    if i % 2:
        body = {
            "feature_service": "churn_prediction_service",
            "entities": {"customer_id": rng.sample(served.customers, 10)},
        }
    else:
        body = {
            "features": ["driver_stats:avg_rating", "driver_stats:total_trips"],
            "entities": {"driver_id": rng.sample(served.drivers, 5)},
        }
    return "good", {"method": "POST", "url": "/get-online-features", "json": body}


MALFORMED: list[dict[str, Any]] = [
    {"content": b"{not json", "headers": {"content-type": "application/json"}},
    {"json": {"features": ["driver_stats:no_such"], "entities": {"driver_id": [1]}}},
    {"json": {"features": ["driver_stats:avg_rating"]}},
    {"json": {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": "x"}}},
    {"json": {"feature_service": "no_such_service", "entities": {"customer_id": [1]}}},
    {"json": {"features": ["avg_rating"], "entities": {"driver_id": [1]}}},
    {"json": {"features": ["driver_stats:avg_rating"],
              "entities": {"driver_id": list(range(MAX_ROWS + 1))}}},
]  # fmt: skip


def _force_state(store: Any, name: str, state: str) -> None:
    """Write a feature view's lifecycle state straight into the SQL registry."""
    from feast.feature_view import FeatureViewState
    from feast.infra.registry.sql import feature_views
    from sqlalchemy import update

    registry = store.registry
    view = registry.get_feature_view(name, store.project, allow_cache=False)
    view.state = FeatureViewState[state]
    with registry.write_engine.begin() as conn:
        conn.execute(
            update(feature_views)
            .where(
                feature_views.c.feature_view_name == name,
                feature_views.c.project_id == store.project,
            )
            .values(feature_view_proto=view.to_proto().SerializeToString())
        )


def test_serving_during_large_materialization(served: Served) -> None:
    from feature_platform.materialize import materialize_window
    from feature_platform.profiles import get_store

    rng = random.Random(5)
    stop = threading.Event()
    box: dict[str, Any] = {}
    loader = threading.Thread(
        target=lambda: box.update(
            report=run_load(
                served.url,
                lambda i: _good(served, rng, i),
                rate=40,
                duration_s=600,
                stop=stop,
                max_requests=40 * 600,
            )
        )
    )
    # Watch the view state in the registry as a feature server would see it.
    watcher_store = get_store("services", repo=served.repo)
    states: set[str] = set()

    def watch() -> None:
        while not stop.is_set():
            view = watcher_store.registry.get_feature_view(
                "customer_stats", watcher_store.project, allow_cache=False
            )
            states.add(getattr(view.state, "name", str(view.state)))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    loader.start()
    watcher.start()
    timings: dict[str, float] = {}
    try:
        time.sleep(2)  # steady state first
        start, end = TEST_END - timedelta(days=3), TEST_END
        # The state Feast's materialization means to publish (feast#6780): the
        # views MATERIALIZING in the shared registry while a large run writes.
        # Feast 0.67's own flip never reaches the SQL registry (FeatureView
        # equality ignores the state, so the write is skipped): the test writes
        # the state itself, as a registry that persists it would.
        for name in ("customer_stats", "driver_stats"):
            _force_state(served.store, name, "MATERIALIZING")
        deadline = time.monotonic() + 10
        while "MATERIALIZING" not in states and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # > the server's registry refresh period
        # 1. Feast's own path (`feast materialize`); each view turns
        #    AVAILABLE_ONLINE when its run is recorded.
        t0 = time.monotonic()
        served.store.refresh_registry()
        served.store.materialize(start_date=start, end_date=end)
        timings["feast_materialize_s"] = round(time.monotonic() - t0, 1)
        # 2. The platform's path over the same window.
        for name in ("customer_stats", "driver_stats"):
            _force_state(served.store, name, "MATERIALIZING")
        time.sleep(1.5)
        t0 = time.monotonic()
        summary = materialize_window(served.store, start, end)
        timings["platform_materialize_s"] = round(time.monotonic() - t0, 1)
        time.sleep(2)  # and after
    finally:
        stop.set()
        loader.join(60)
        watcher.join(10)
    report = box["report"]
    result = {
        **report.summary(),
        **timings,
        "rows_materialized": summary["rows_total"],
        "view_states_seen": sorted(states),
    }
    _record("serving_during_materialization", result)
    print(json.dumps(result, indent=2))
    assert "MATERIALIZING" in states, "the views were never MATERIALIZING"
    assert watcher_store.get_feature_view("customer_stats").state.name == (
        "AVAILABLE_ONLINE"
    )
    assert summary["rows_total"] > 10_000
    assert result["server_errors"] == 0 and result["transport_errors"] == 0
    assert result["good"]["statuses"] == {"200": len(report.results)}


def test_bounded_soak(served: Served) -> None:
    rng = random.Random(9)

    def request(i: int) -> tuple[str, dict[str, Any]]:
        if i % 5 == 4:
            bad = MALFORMED[(i // 5) % len(MALFORMED)]
            return "malformed", {"method": "POST", "url": "/get-online-features", **bad}
        return _good(served, rng, i)

    rss: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        t0 = time.monotonic()
        while not stop.wait(2):
            rss.append((round(time.monotonic() - t0, 1), rss_kib(served.proc.pid)))

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    rss_start = rss_kib(served.proc.pid)
    try:
        report = run_load(
            served.url,
            request,
            rate=25,
            duration_s=SOAK_S,
            max_requests=int(25 * SOAK_S),
        )
    finally:
        stop.set()
        sampler.join(10)
    rss_end = rss_kib(served.proc.pid)
    # Growth after warm-up (first 10 s), so allocator warm-up is not a "leak".
    warm = [kib for t, kib in rss if t >= 10] or [rss_start]
    result = {
        **report.summary(),
        "duration_s": SOAK_S,
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_after_warmup_mib": round(warm[0] / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1),
        "rss_growth_after_warmup_mib": round((rss_end - warm[0]) / 1024, 1),
        "rss_max_mib": round(max([rss_end, *(k for _, k in rss)]) / 1024, 1),
    }
    _record("soak", result)
    print(json.dumps(result, indent=2))
    assert result["server_errors"] == 0 and result["transport_errors"] == 0
    assert set(result["good"]["statuses"]) == {"200"}
    assert all(400 <= int(s) < 500 for s in result["malformed"]["statuses"])
    assert result["requests"] >= 0.9 * 25 * SOAK_S
    # A generous leak bound: a leaking server grows far faster than this.
    assert result["rss_growth_after_warmup_mib"] < 100
