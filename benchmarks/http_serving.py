"""``http``: ``feast serve`` defaults vs the platform's server at 1 and 16 clients.

The platform's server is ``feature_platform.server``; both serve
``POST /get-online-features`` for the churn service, batch 1. (The module is
not called ``http.py``: ``benchmarks/spark_bench.py`` runs as a script with
this folder first on ``sys.path``, where it would shadow the standard library.)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    CHURN,
    ROOT,
    BenchEnv,
    Benchmark,
    Sizes,
    fmt_latency,
    free_port,
    percentiles,
    target,
)


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import http.client

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("server did not come up")


def _http_load(
    port: int, bodies: list[bytes], *, clients: int, seconds: float | None
) -> dict[str, Any]:
    """Latencies (1 client, fixed count) or throughput (N clients, fixed time)."""
    import http.client

    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds if seconds else None

    def worker(idx: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local: list[float] = []
        i = idx
        while True:
            if stop is None and i >= len(bodies):
                break
            if stop is not None and time.perf_counter() >= stop:
                break
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter_ns()
            try:
                conn.request(
                    "POST",
                    "/get-online-features",
                    body,
                    {"Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors[0] += 1
            except OSError:
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            local.append((time.perf_counter_ns() - t0) / 1e6)
            i += clients
        with lock:
            lat.extend(local)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        **percentiles(lat),
        "req_per_s": round(len(lat) / wall, 1),
        "errors": errors[0],
    }


def bench_http(env: BenchEnv, sizes: Sizes) -> dict[str, Any]:
    import pandas as pd

    customers = pd.read_parquet(env.repo / "data" / "customer_stats.parquet")
    ids = [int(c) for c in customers["customer_id"].unique()]
    rng = random.Random(11)
    bodies = [
        json.dumps(
            {"feature_service": CHURN, "entities": {"customer_id": [rng.choice(ids)]}}
        ).encode()
        for _ in range(max(sizes.http_requests, 500))
    ]
    venv_bin = Path(sys.executable).parent
    servers = {
        "feast_serve_defaults": lambda port: [
            str(venv_bin / "feast"),
            "-c",
            str(env.plain_repo),
            "-f",
            str(env.plain_repo / "profiles" / "services.yaml"),
            "serve",
            "-p",
            str(port),
            "--no-access-log",
        ],
    }
    if (ROOT / "src" / "feature_platform" / "server.py").is_file():
        servers["platform_server"] = lambda port: [
            sys.executable,
            "-m",
            "feature_platform.server",
            "--port",
            str(port),
            "--no-access-log",
        ]
    results: dict[str, Any] = {}
    for name, argv in servers.items():
        port = free_port()
        server_env = {
            **os.environ,
            **env.env,
            "FEATURE_PLATFORM_PROFILE": "services",
            "FEATURE_PLATFORM_REPO": str(env.repo),
            "FEATURE_PLATFORM_OFFLINE": "file",
            "FP_AUTH": "no_auth",
        }
        proc = subprocess.Popen(
            argv(port),
            cwd=env.repo,
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _wait_http(port, proc)
            _http_load(port, bodies[:50], clients=1, seconds=None)  # warm-up
            one = _http_load(
                port, bodies[: sizes.http_requests], clients=1, seconds=None
            )
            many = _http_load(port, bodies, clients=16, seconds=sizes.http_seconds)
            results[name] = {"clients_1": one, "clients_16": many}
        except Exception as exc:  # noqa: BLE001 - report, do not abort the suite
            err = proc.stderr.read().decode()[-800:] if proc.poll() is not None else ""
            results[name] = {"error": f"{exc} {err}".strip()}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
    return {"servers": results}


def http_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    s = res["servers"]
    plat, feast = s.get("platform_server"), s.get("feast_serve_defaults")
    if not plat or "error" in plat or not feast or "error" in feast:
        return [target("HTTP targets", f"not measured: {json.dumps(s)[:300]}", False)]
    one, many = plat["clients_1"], plat["clients_16"]
    ratio = many["req_per_s"] / max(feast["clients_16"]["req_per_s"], 1e-9)
    worst = max(one["max_ms"], many["max_ms"])
    return [
        target(
            "HTTP batch-1 p99 <= 3 ms at 1 client",
            f"p99 {one['p99_ms']} ms",
            one["p99_ms"] <= 3,
        ),
        target(
            "HTTP >= 2x req/s of feast serve at 16 clients",
            f"{many['req_per_s']} vs {feast['clients_16']['req_per_s']} req/s "
            f"= {ratio:.2f}x",
            ratio >= 2,
        ),
        target("HTTP: no stall over 50 ms", f"max {worst} ms", worst <= 50),
    ]


def http_summary(res: dict[str, Any]) -> list[str]:
    lines = [
        "HTTP `POST /get-online-features`, churn service, batch 1:",
        "",
        "| server | 1 client p50 / p99 / max ms | 16 clients req/s "
        "| 16 clients p99 / max ms |",
        "|---|---|---|---|",
    ]
    for name, r in res["servers"].items():
        if "error" in r:
            lines.append(f"| {name} | error | | |")
            continue
        one, many = r["clients_1"], r["clients_16"]
        lines.append(
            f"| {name} | {fmt_latency(one)} | {many['req_per_s']} "
            f"| {many['p99_ms']} / {many['max_ms']} |"
        )
    lines.append("")
    return lines


BENCHMARK = Benchmark("http", bench_http, http_targets, http_summary, needs_sample=True)
