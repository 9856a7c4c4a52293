"""A bounded, fixed-rate HTTP load generator for the reliability tests (127.0.0.1).

``run_load`` fires requests at ``rate`` per second (open loop: the schedule
does not wait for slow answers, up to ``concurrency`` in flight) until
``duration_s`` passes or ``stop`` is set, never more than ``max_requests``.
Each result records the request kind, HTTP status (0 = transport error) and
latency, so a test can count server errors and report percentiles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Result:
    kind: str
    status: int
    latency_ms: float
    error: str = ""


@dataclass
class LoadReport:
    results: list[Result] = field(default_factory=list)
    elapsed_s: float = 0.0

    def of(self, kind: str) -> list[Result]:
        return [r for r in self.results if r.kind == kind]

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        out: dict[str, Any] = {
            "requests": len(self.results),
            "elapsed_s": round(self.elapsed_s, 1),
            "rate_per_s": round(len(self.results) / self.elapsed_s, 1)
            if self.elapsed_s
            else 0,
            "server_errors": sum(1 for r in self.results if r.status >= 500),
            "transport_errors": sum(1 for r in self.results if r.status == 0),
        }
        for kind in sorted({r.kind for r in self.results}):
            rs = self.of(kind)
            lat = [r.latency_ms for r in rs]
            statuses: dict[str, int] = {}
            for r in rs:
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            out[kind] = {
                "count": len(rs),
                "statuses": statuses,
                "p50_ms": pct(lat, 0.50),
                "p95_ms": pct(lat, 0.95),
                "p99_ms": pct(lat, 0.99),
                "max_ms": round(max(lat), 2) if lat else None,
            }
        return out


Request = tuple[str, dict[str, Any]]  # (kind, httpx.Client.request kwargs)


def run_load(
    base_url: str,
    make_request: Callable[[int], Request],
    *,
    rate: float,
    duration_s: float,
    stop: threading.Event | None = None,
    max_requests: int = 100_000,
    concurrency: int = 8,
    timeout_s: float = 10.0,
) -> LoadReport:
    report = LoadReport()
    lock = threading.Lock()
    client = httpx.Client(base_url=base_url, timeout=timeout_s)

    def one(i: int) -> None:
        kind, kwargs = make_request(i)
        started = time.perf_counter()
        try:
            status = client.request(**kwargs).status_code
            error = ""
        except httpx.HTTPError as exc:
            status, error = 0, f"{type(exc).__name__}: {exc}"
        result = Result(kind, status, (time.perf_counter() - started) * 1000, error)
        with lock:
            report.results.append(result)

    start = time.monotonic()
    with client, ThreadPoolExecutor(concurrency) as pool:
        i = 0
        while i < max_requests:
            now = time.monotonic()
            if now - start >= duration_s or (stop is not None and stop.is_set()):
                break
            due = start + i / rate
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
            pool.submit(one, i)
            i += 1
    report.elapsed_s = time.monotonic() - start
    return report


def rss_kib(pid: int) -> int:
    """Resident set size of a process (Linux /proc), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
