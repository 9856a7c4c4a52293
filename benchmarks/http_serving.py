"""``http``: the platform's server against its floor and ``feast serve``.

``POST /get-online-features`` for the churn service, batch 1, at 1 client
(latency) and 16 clients (throughput), in one run:

* ``platform_server``: ``feature_platform.server`` (one process), and
  ``platform_server_workers_2`` (``serve --workers 2``);
* ``floor_asgi``: the floor, a bare ASGI app on uvicorn with the server's
  options (no access log, keep-alive 30 s) answering the platform's response
  body of the same request (``benchmarks.http_floor``): the platform is
  reported as a fraction of it;
* ``feast_serve_defaults``: plain ``feast serve``.

The Python load generator (``_http_load``) is checked against ``wrk`` (C, 2
threads, 16 connections, a Lua script sending the same POST bodies) on the
floor and the platform, when ``wrk`` is installed (``make wrk``). (The module is
not called ``http.py``: ``benchmarks/spark_bench.py`` runs as a script with
this folder first on ``sys.path``, where it would shadow the standard library.)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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


def feast_serve_argv(env: BenchEnv, port: int) -> list[str]:
    """``feast serve`` (its defaults, no access log) on the plain-Feast repo."""
    feast = Path(sys.executable).parent / "feast"
    return [
        str(feast),
        "-c",
        str(env.plain_repo),
        "-f",
        str(env.plain_repo / "profiles" / "services.yaml"),
        "serve",
        "-p",
        str(port),
        "--no-access-log",
    ]


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


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(port: int, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    """``wrk`` at 16 connections (2 threads) POSTing ``bodies`` in turn."""
    exe = shutil.which("wrk")
    if exe is None:
        return {"error": "wrk not installed (make wrk)"}
    lines = ",\n".join(f"  {json.dumps(b.decode())}" for b in bodies)
    script = (
        f"local bodies = {{\n{lines}\n}}\nlocal i = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n  i = i % #bodies + 1\n"
        '  return wrk.format("POST", "/get-online-features", headers, bodies[i])\n'
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [exe, "-t2", "-c16", f"-d{max(1, round(seconds))}s", "--latency", "-s",
             f.name, f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=seconds + 60, check=False,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result: dict[str, Any] = {"req_per_s": float(rate.group(1)) if rate else None}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)$", out, re.M)
        result[f"p{pct}_ms"] = (
            round(float(m.group(1)) * _WRK_UNITS[m.group(2)], 3) if m else None
        )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(errors.group(1)) if errors else 0
    return result


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
    platform = [
        sys.executable,
        "-m",
        "feature_platform.server",
        "--no-access-log",
    ]
    floor_body = Path(tempfile.mkdtemp(prefix="fp_http_floor_")) / "body.json"
    servers: dict[str, Callable[[int], list[str]]] = {
        "platform_server": lambda port: [*platform, "--port", str(port)],
        "floor_asgi": lambda port: [
            sys.executable,
            "-m",
            "benchmarks.http_floor",
            "--port",
            str(port),
            "--body-file",
            str(floor_body),
        ],
        "platform_server_workers_2": lambda port: [
            *platform,
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        "feast_serve_defaults": lambda port: feast_serve_argv(env, port),
    }
    wrk_for = {"platform_server", "floor_asgi"}
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
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
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
            if name == "platform_server":  # the floor answers this very body
                floor_body.write_bytes(_answer(port, bodies[0]))
            _http_load(port, bodies[:50], clients=1, seconds=None)  # warm-up
            one = _http_load(
                port, bodies[: sizes.http_requests], clients=1, seconds=None
            )
            many = _http_load(port, bodies, clients=16, seconds=sizes.http_seconds)
            results[name] = {"clients_1": one, "clients_16": many}
            if name in wrk_for:
                results[name]["wrk_16"] = _wrk(port, bodies, sizes.http_seconds)
        except Exception as exc:  # noqa: BLE001 - one server's failure is reported, the others still run
            err = proc.stderr.read().decode()[-800:] if proc.poll() is not None else ""
            results[name] = {"error": f"{exc} {err}".strip()}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
    size = floor_body.stat().st_size if floor_body.exists() else 0
    shutil.rmtree(floor_body.parent, ignore_errors=True)
    return {"servers": results, "floor_body_bytes": size}


def _answer(port: int, body: bytes) -> bytes:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    conn.request("POST", "/get-online-features", body, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"platform server answered {resp.status}: {data[:300]!r}")
    return data


def _ok(r: dict[str, Any] | None) -> bool:
    return bool(r) and "error" not in r  # type: ignore[operator]


def http_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    s = res["servers"]
    plat, feast = s.get("platform_server"), s.get("feast_serve_defaults")
    floor = s.get("floor_asgi")
    if not _ok(plat) or not _ok(feast):
        return [target("HTTP targets", f"not measured: {json.dumps(s)[:300]}", False)]
    assert plat is not None and feast is not None
    one, many = plat["clients_1"], plat["clients_16"]
    ratio = many["req_per_s"] / max(feast["clients_16"]["req_per_s"], 1e-9)
    worst = max(one["max_ms"], many["max_ms"])
    out = [
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
    if not _ok(floor):
        out.append(target("HTTP vs floor", f"floor not measured: {floor}", False))
        return out
    assert floor is not None
    f1, f16 = floor["clients_1"], floor["clients_16"]
    frac = many["req_per_s"] / max(f16["req_per_s"], 1e-9)
    out += [
        target(
            "HTTP >= 0.7x the floor's req/s at 16 clients",
            f"{many['req_per_s']} vs floor {f16['req_per_s']} req/s = {frac:.2f}x",
            frac >= 0.7,
        ),
        target(
            "HTTP 1-client p50 <= floor + 0.25 ms",
            f"p50 {one['p50_ms']} ms vs floor {f1['p50_ms']} ms "
            f"(+{one['p50_ms'] - f1['p50_ms']:.3f} ms)",
            one["p50_ms"] <= f1["p50_ms"] + 0.25,
        ),
        target(
            "HTTP 16-client p99 <= 1.5x the floor's",
            f"p99 {many['p99_ms']} ms vs floor {f16['p99_ms']} ms "
            f"= {many['p99_ms'] / max(f16['p99_ms'], 1e-9):.2f}x",
            many["p99_ms"] <= 1.5 * f16["p99_ms"],
        ),
    ]
    return out


def http_summary(res: dict[str, Any]) -> list[str]:
    servers = res["servers"]
    floor = servers.get("floor_asgi")
    lines = [
        "HTTP `POST /get-online-features`, churn service, batch 1 "
        f"(the floor answers the same {res.get('floor_body_bytes', '?')}-byte body):",
        "",
        "| server | 1 client p50 / p99 / max ms | 16 clients req/s "
        "| 16 clients p99 / max ms | x floor (req/s at 16, p50 at 1) "
        "| wrk 16 conns req/s (p50 / p99 ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in servers.items():
        if "error" in r:
            lines.append(f"| {name} | error | | | | |")
            continue
        one, many = r["clients_1"], r["clients_16"]
        ratio = ""
        if _ok(floor):
            assert floor is not None
            ratio = (
                f"{many['req_per_s'] / max(floor['clients_16']['req_per_s'], 1e-9):.2f}"
                f" / {one['p50_ms'] / max(floor['clients_1']['p50_ms'], 1e-9):.2f}"
            )
        wrk = r.get("wrk_16") or {}
        wrk_text = (
            f"{wrk['req_per_s']} ({wrk['p50_ms']} / {wrk['p99_ms']})"
            if wrk.get("req_per_s")
            else wrk.get("error", "")
        )
        lines.append(
            f"| {name} | {fmt_latency(one)} | {many['req_per_s']} "
            f"| {many['p99_ms']} / {many['max_ms']} | {ratio} | {wrk_text} |"
        )
    lines.append("")
    return lines


BENCHMARK = Benchmark("http", bench_http, http_targets, http_summary, needs_sample=True)
