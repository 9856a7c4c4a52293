"""The monitor reads the feature server's real traffic from its ``/metrics``.

A real server process (``python -m feature_platform.server``, services profile:
PostgreSQL registry + Redis) serves reads, some of them for entities the store
does not hold; the monitor's served null rates and request counts must equal
what the responses carried, and its latency percentiles (interpolated in the
server's histogram buckets) cannot exceed the bucket holding the same
percentile of the client-side times (the server times a part of each request).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import PROJECT, TEST_END, make_repo
from tests.integration.faults import free_port, stop_process
from tests.integration.served import wait_healthy

pytestmark = pytest.mark.integration

UNKNOWN = 999_999_999  # no such customer or driver
ON_DEMAND_OUTPUTS = ("cart_to_avg_ratio", "cart_share_of_lifetime", "is_first_order")
STARTUP_TIMEOUT_S = 120


def _columns(response: httpx.Response) -> dict[str, list[Any]]:
    body = response.json()
    names = body["metadata"]["feature_names"]
    return {name: r["values"] for name, r in zip(names, body["results"], strict=True)}


@pytest.fixture(scope="module")
def served(
    services_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any, Path]]:
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_incremental
    from feature_platform.profiles import get_store

    project = f"{PROJECT}_mon_{uuid.uuid4().hex[:4]}"
    repo = make_repo(tmp_path_factory.mktemp("monitor_repo"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATURE_PLATFORM_PROJECT", project)
        # The traffic is what this test is about, not who may read it (the
        # profile's OIDC auth is tested in test_auth_oidc.py).
        mp.setenv("FP_AUTH", "no_auth")
        store = get_store("services", repo=repo)
        apply_definitions(store)
        materialize_incremental(store, TEST_END)
        port = free_port()
        log = tmp_path_factory.mktemp("monitor_server") / "server.log"
        env = {**os.environ, "FEAST_USAGE": "False", "FP_SERVER_LOG_LEVEL": "warning"}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "feature_platform.server",
                    "--profile", "services", "--repo", str(repo),
                    "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                ],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc, log)
            yield url, store, repo
        finally:
            stop_process(proc)
            store.teardown()


class Traffic:
    """What the client sent and got back: rows and nulls per view/feature."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.rows: dict[str, int] = {}
        self.values: dict[str, dict[str, int]] = {}  # values served per feature
        self.nulls: dict[str, dict[str, int]] = {}
        self.statuses: dict[str, int] = {}

    def post(
        self, client: httpx.Client, body: dict[str, Any], views: dict[str, str]
    ) -> None:
        """``views``: output feature name -> its feature view."""
        t0 = time.perf_counter()
        response = client.post("/get-online-features", json=body)
        self.seconds.append(time.perf_counter() - t0)
        code = str(response.status_code)
        self.statuses[code] = self.statuses.get(code, 0) + 1
        if response.status_code != 200:
            return
        n = len(next(iter(body["entities"].values())))
        for view in set(views.values()):
            self.rows[view] = self.rows.get(view, 0) + n
        for name, values in _columns(response).items():
            if name in views:
                per = self.nulls.setdefault(views[name], {})
                per[name] = per.get(name, 0) + values.count(None)
                seen = self.values.setdefault(views[name], {})
                seen[name] = seen.get(name, 0) + len(values)


def _send(url: str, store: Any, repo: Path, rounds: int) -> Traffic:
    fresh = pd.Timestamp(TEST_END) - pd.Timedelta(hours=2)
    customers = pd.read_parquet(repo / "data" / "customer_stats.parquet")
    customers = customers[customers["event_timestamp"] > fresh - pd.Timedelta(days=1)]
    known_c = [int(c) for c in customers["customer_id"].unique()[: 2 * rounds]]
    drivers = pd.read_parquet(repo / "data" / "driver_stats.parquet")
    recent = drivers[drivers["event_timestamp"] > fresh]
    known_d = [int(d) for d in recent["driver_id"].unique()[:rounds]]
    service = store.get_feature_service("churn_prediction_service")
    service_views = {
        f.name: p.name for p in service.feature_view_projections for f in p.features
    }
    driver_views = {"total_trips": "driver_stats", "avg_rating": "driver_stats"}
    # v2: stored features and the checkout_value on-demand view's outputs
    # (all null for the unknown customer: no stored inputs).
    v2 = store.get_feature_service("churn_prediction_service_v2")
    v2_views = {f.name: p.name for p in v2.feature_view_projections for f in p.features}
    assert set(v2_views) >= set(ON_DEMAND_OUTPUTS)
    traffic = Traffic()
    with httpx.Client(base_url=url, timeout=15) as client:
        for i in range(rounds):
            traffic.post(
                client,
                {
                    "feature_service": "churn_prediction_service",
                    "entities": {"customer_id": [*known_c[2 * i : 2 * i + 2], UNKNOWN]},
                },
                service_views,
            )
            traffic.post(
                client,
                {
                    "features": ["driver_stats:total_trips", "driver_stats:avg_rating"],
                    "entities": {"driver_id": [known_d[i % len(known_d)], UNKNOWN]},
                },
                driver_views,
            )
            traffic.post(
                client,
                {
                    "feature_service": "churn_prediction_service_v2",
                    "entities": {
                        "customer_id": [known_c[2 * i], UNKNOWN],
                        "cart_value": [20.0 + i, 35.5],
                    },
                },
                v2_views,
            )
        # A bad request (unknown feature) is counted and timed, serves nothing.
        traffic.post(
            client,
            {"features": ["driver_stats:nope"], "entities": {"driver_id": [1]}},
            {},
        )
    return traffic


def _bucket_above(seconds: float) -> float:
    from feature_platform.serving.metrics import LATENCY_BUCKETS

    return next((b for b in LATENCY_BUCKETS if b >= seconds), float("inf"))


def _check(report: dict[str, Any], traffic: Traffic) -> None:
    assert report["online_source"]["kind"] == "server"
    served = report["served"]
    assert served["requests"] == traffic.statuses
    lat = report["latency_ms"]
    assert lat["reads"] == len(traffic.seconds)
    client = np.asarray(traffic.seconds)
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        got = lat[key]
        assert got is not None and got > 0, lat
        client_q = float(np.quantile(client, q, method="inverted_cdf"))
        assert got <= _bucket_above(client_q) * 1000 + 1e-9, (key, got, client_q)
    assert lat["p50"] <= lat["p95"] <= lat["p99"]
    for view, rows in traffic.rows.items():
        entry = report["online"][view]
        assert entry["rows"] == rows, view
        for feature, nulls in traffic.nulls[view].items():
            values = traffic.values[view][feature]
            assert entry["values"][feature] == values, (view, feature)
            assert entry["nulls"][feature] == nulls, (view, feature)
            assert entry["null_rate"][feature] == round(nulls / values, 4)
        # features no read asked for have no rate (not 0 %)
        for feature, served in entry["values"].items():
            if feature not in traffic.nulls[view]:
                assert served == 0 and entry["null_rate"][feature] is None


def test_monitor_reports_the_servers_real_traffic(served, tmp_path: Path) -> None:
    from feature_platform.monitoring import monitor_and_publish, previous_counters

    url, store, repo = served
    metrics = httpx.get(url + "/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "fp_serving_request_latency_seconds" in metrics.text

    first = _send(url, store, repo, rounds=25)
    assert first.statuses == {"200": 75, "404": 1}
    # each read asked for one unknown entity (null) and known, fresh ones
    assert first.nulls["customer_stats"]["total_orders"] == 50
    assert first.nulls["driver_stats"]["total_trips"] == 25
    # the on-demand outputs: null at least for the unknown customer, counted
    # by the server exactly as the responses carried them (_check)
    assert set(first.nulls["checkout_value"]) == set(ON_DEMAND_OUTPUTS)
    for name in ON_DEMAND_OUTPUTS:
        assert first.nulls["checkout_value"][name] >= 25, name
    assert first.rows["checkout_value"] == 50
    print(first.statuses)
    out = tmp_path / "monitoring"
    summary = monitor_and_publish(
        store, now=TEST_END, server_url=url, out_dir=out, notify=False, previous=None
    )
    report = json.loads((out / "monitor.json").read_text())
    _check(report, first)
    assert report["served"]["since"] == "server start"
    assert "probe" not in report["online_source"]["note"]
    # one in three customer rows is unknown: a served null rate above the ceiling
    assert any(
        a.startswith("null rate: customer_stats:total_orders 40.0% of 125 served")
        for a in summary["alerts"]
    ), summary["alerts"]
    assert "Source: <b>server</b>" in (out / "monitor.html").read_text()

    # The next run reports only the traffic since this one.
    second = _send(url, store, repo, rounds=10)
    assert second.statuses == {"200": 30, "404": 1}
    summary = monitor_and_publish(
        store,
        now=TEST_END,
        server_url=url,
        out_dir=out,
        notify=False,
        previous=previous_counters(out),
    )
    report = json.loads((out / "monitor.json").read_text())
    assert report["served"]["since"] == "previous monitor run"
    _check(report, second)


def test_metrics_add_up_every_worker(served, tmp_path: Path) -> None:
    """``--workers 2``: whichever worker answers /metrics counts every read."""
    from feature_platform.monitoring import parse_metrics

    _url, _store, repo = served
    port = free_port()
    log = tmp_path / "workers.log"
    env = {**os.environ, "FEAST_USAGE": "False", "FP_SERVER_LOG_LEVEL": "warning"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "feature_platform.server",
                "--profile", "services", "--repo", str(repo), "--workers", "2",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        # two interpreters importing Feast at once on a shared machine
        wait_healthy(url, proc, log, timeout=2 * STARTUP_TIMEOUT_S)
        body = {
            "features": ["driver_stats:total_trips"],
            "entities": {"driver_id": [1]},
        }

        def read(_: int) -> int:  # a new connection each, 8 at a time: both
            # workers accept some (a per-worker count would fall short below)
            return httpx.post(url + "/get-online-features", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, range(40))) == {200}
        for _ in range(6):
            counters = parse_metrics(httpx.get(url + "/metrics", timeout=10).text)
            assert counters.requests["/get-online-features"] == {"200": 40.0}
            assert counters.rows["driver_stats"] == {"total_trips": 40.0}
            assert counters.nulls["driver_stats"] == {"total_trips": 40.0}
    finally:
        stop_process(proc)


def _checkout_reads(
    url: str, repo: Path, *, scale: float, rows: int = 300, batch: int = 30
) -> dict[str, list[Any]]:
    """v2 reads of labelled checkouts (customer and recorded cart value, the
    cart times ``scale``); returns each output's served values."""
    labels = pd.read_parquet(repo / "data" / "churn_labels.parquet")
    labels = labels.sample(rows, random_state=11)
    served: dict[str, list[Any]] = {name: [] for name in ON_DEMAND_OUTPUTS}
    with httpx.Client(base_url=url, timeout=15) as client:
        for i in range(0, rows, batch):
            part = labels.iloc[i : i + batch]
            response = client.post(
                "/get-online-features",
                json={
                    "feature_service": "churn_prediction_service_v2",
                    "entities": {
                        "customer_id": [int(c) for c in part["customer_id"]],
                        "cart_value": [
                            round(float(c) * scale, 2) for c in part["cart_value"]
                        ],
                    },
                },
            )
            assert response.status_code == 200, response.text
            for name, values in _columns(response).items():
                if name in served:
                    served[name] += values
    return served


def test_on_demand_outputs_drift_from_served_traffic(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The on-demand view's outputs have no stored window: the monitor
    compares the values the server served (binned in /metrics) with the outputs
    of the same transformation over the labelled checkouts of the reference
    window. Carts as recorded: no drift; carts tripled: the cart ratios
    drift, the first-order flag (no cart in it) does not."""
    from feature_platform.monitoring import (
        ServerCounters,
        parse_metrics,
        run_monitor,
        scrape,
    )
    from feature_platform.monitoring.window import Window
    from feature_platform.serving.metrics import output_bin_counts

    url, store, repo = served
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(repo / "data"))
    # the labelled checkouts span the sample's last days
    reference = Window(TEST_END - pd.Timedelta(days=8), TEST_END, "labelled checkouts")
    current = Window(TEST_END - pd.Timedelta(days=1), TEST_END)

    def monitor(previous: ServerCounters) -> dict[str, Any]:
        return run_monitor(
            store,
            now=TEST_END,
            views=["checkout_value"],  # an on-demand view, named
            server_url=url,
            previous=previous,
            reference=reference,
            current=current,
        )

    before = parse_metrics(scrape(url))
    calm = _checkout_reads(url, repo, scale=1.0)
    report = monitor(before)
    assert set(report["drift"]) == {"checkout_value"}
    drift = report["drift"]["checkout_value"]
    assert set(drift) == set(ON_DEMAND_OUTPUTS)
    entry = report["online"]["checkout_value"]
    for name in ON_DEMAND_OUTPUTS:
        # the server's bins and nulls are exactly what the responses carried
        assert entry["bins"][name] == output_bin_counts(calm[name]), name
        assert entry["nulls"][name] == calm[name].count(None), name
        d = drift[name]
        assert d["rows"]["current"] == 300 and d["rows"]["reference"] > 300, d
        assert d["psi"] is not None and d["psi"] < 0.2 and not d["drifted"], (name, d)
    assert not any(a.startswith("drift:") for a in report["alerts"]), report["alerts"]
    print("PSI, carts as recorded:", {n: d["psi"] for n, d in drift.items()})

    previous = ServerCounters.from_dict(report["served"]["counters"])
    _checkout_reads(url, repo, scale=3.0)
    report = monitor(previous)
    drift = report["drift"]["checkout_value"]
    for name in ("cart_to_avg_ratio", "cart_share_of_lifetime"):
        assert drift[name]["drifted"] and drift[name]["psi"] > 1.0, (name, drift[name])
        assert any(
            a.startswith(f"drift: checkout_value:{name} PSI") for a in report["alerts"]
        ), report["alerts"]
    print("PSI, carts tripled:", {n: d["psi"] for n, d in drift.items()})
    first = drift["is_first_order"]
    assert first["psi"] < 0.2 and not first["drifted"], first
    assert first["rows"]["current"] == 300  # this run's traffic only
