"""The benchmark suite: plain Feast vs this platform vs the physical floor, same run.

``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]`` (``make bench`` /
``make bench-full``) writes ``<out>/<name>.json`` per benchmark and
``<out>/summary.md`` (the table the README shows).

One module per benchmark, each exposing a ``BENCHMARK``; the environment
(own ``redis-server`` and PostgreSQL database), sizes, measuring helpers and
results writing live in ``benchmarks.harness``. Quick mode shrinks every size so
the whole suite takes seconds to a minute; there are no timing assertions
anywhere, the numbers are reported.

* ``online`` (``benchmarks.online``): SDK read latency, plain Feast vs the
  plugin vs the platform's readers vs the redis-py floor.
* ``materialize`` (``benchmarks.materialize``): rows/s and peak RSS, plain
  Feast vs Feast's API through the ``PlatformEngine`` vs ``materialize_window``.
* ``pit`` (``benchmarks.pit``): point-in-time join, Feast's DuckDB offline
  store vs the platform's.
* ``http`` (``benchmarks.http_serving``): ``feast serve`` defaults vs the
  platform's server at 1 and 16 concurrent clients.
* ``cold_start`` (``benchmarks.cold_start``): process start costs.
* ``on_demand`` (``benchmarks.on_demand``): the read cost of the on-demand view
  (service v2 vs v1), SDK and HTTP, plain Feast vs the platform, python vs
  pandas mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import (
    cold_start,
    harness,
    http_serving,
    materialize,
    on_demand,
    online,
    pit,
)
from benchmarks.harness import RESULTS

BENCHMARKS = (
    online.BENCHMARK,
    materialize.BENCHMARK,
    pit.BENCHMARK,
    http_serving.BENCHMARK,
    cold_start.BENCHMARK,
    on_demand.BENCHMARK,
)
NAMES = tuple(b.name for b in BENCHMARKS)


def run(
    *,
    quick: bool,
    only: list[str] | None = None,
    out: Path = RESULTS,
    command: str = "",
) -> dict[str, Any]:
    """Run the selected benchmarks; write JSON per benchmark and summary.md."""
    return harness.run(BENCHMARKS, quick=quick, only=only, out=out, command=command)


def render(out: Path) -> str:
    """Rebuild ``summary.md`` from the JSON results in ``out``."""
    return harness.render(BENCHMARKS, out)


def child_main(task: dict[str, Any]) -> dict[str, Any]:
    """The ``_child`` task of a fresh process: its ``kind`` names the benchmark."""
    kind = task["kind"]
    workload = next((b.workload for b in BENCHMARKS if b.name == kind), None)
    if workload is None:
        raise ValueError(f"unknown child task {kind!r}")
    return harness.measure_child(task, workload)
