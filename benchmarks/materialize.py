"""``materialize``: rows/s and peak RSS, each run in a fresh child process.

Plain Feast's ``store.materialize`` (local engine, ``feast``), Feast's
``store.materialize`` on the profile, i.e. through the ``PlatformEngine``
(``feast_api_platform_engine_no_gate`` with ``validate_sources: false``, and
``..._gate`` with the validation gate at the smallest size), and the
platform's ``materialize_window(validate=False)`` (``platform``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BenchEnv,
    Benchmark,
    Sizes,
    cpu_seconds,
    fill_view_columns,
    last_hour,
    run_child,
    target,
)


def write_synthetic_customers(
    path: Path, rows: int, end: datetime, *, view: Any, seed: int = 1
) -> None:
    """``rows`` customer_stats rows, one per customer, events in the last 2 days."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    cats = np.array(["grocery", "electronics", "fashion", "home", "beauty", "sports"])
    end_us = int(end.timestamp() * 1_000_000)
    schema = None
    writer = None
    try:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ev = end_us - rng.integers(3_600, 2 * 86_400, n) * 1_000_000
            amount = rng.gamma(2.0, 20.0, n)
            table = pa.table(
                {
                    "customer_id": pa.array(np.arange(start, start + n) + 1_000_000),
                    "event_timestamp": pa.array(ev, pa.timestamp("us", tz="UTC")),
                    "created_timestamp": pa.array(ev, pa.timestamp("us", tz="UTC")),
                    "total_orders": pa.array(rng.integers(0, 500, n)),
                    "avg_order_amount": pa.array(
                        np.where(rng.random(n) < 0.05, np.nan, amount), from_pandas=True
                    ),
                    "lifetime_value": pa.array(amount * rng.integers(1, 50, n)),
                    "preferred_category": pa.array(cats[rng.integers(0, 6, n)]),
                    "churn_risk_score": pa.array(rng.random(n).astype("float32")),
                }
            )
            table = fill_view_columns(table, view, rng)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table, row_group_size=256_000)
    finally:
        if writer is not None:
            writer.close()


def materialize_workload(store: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Child process: one materialization of the task's window, timed."""
    start = datetime.fromisoformat(task["start"])
    end = datetime.fromisoformat(task["end"])
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    if task["engine"] == "platform":
        from feature_platform.materialize import materialize_window

        materialize_window(store, start, end, views=["customer_stats"], validate=False)
    else:  # Feast's API: plain Feast, or through the profile's PlatformEngine
        store.materialize(
            start_date=start, end_date=end, feature_views=["customer_stats"]
        )
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 3), "cpu_s": round(cpu_seconds() - cpu0, 3)}


ENGINE_NO_GATE = "feast_api_platform_engine_no_gate"
ENGINE_GATE = "feast_api_platform_engine_gate"


def _materialize_task(env: BenchEnv, engine: str) -> dict[str, Any]:
    """Repo and config overrides of a materialize row."""
    from feature_platform.config import PLAIN_FEAST
    from feature_platform.engine import ENGINE_TYPE

    if engine == "feast":  # plain Feast: stock Redis store + local engine
        return {"repo": str(env.plain_repo), "overrides": PLAIN_FEAST}
    if engine == ENGINE_NO_GATE:  # the engine's logged opt-out of the gate
        overrides = {"batch_engine": {"type": ENGINE_TYPE, "validate_sources": False}}
        return {"repo": str(env.repo), "overrides": overrides}
    return {"repo": str(env.repo), "overrides": None}  # profile as configured


def bench_materialize(env: BenchEnv, sizes: Sizes) -> dict[str, Any]:
    from feature_platform.definitions import apply_definitions

    end = last_hour()
    data = env.repo / "data"
    store = env.store()
    apply_definitions(store)
    runs = []
    view = store.get_feature_view("customer_stats")
    plan = (
        [("feast", n) for n in sizes.feast_materialize_rows]
        + [("platform", n) for n in sizes.platform_materialize_rows]
        + [(ENGINE_NO_GATE, n) for n in sizes.platform_materialize_rows]
        + [(ENGINE_GATE, n) for n in sizes.gated_materialize_rows]
    )
    written_rows = None
    for engine, rows in sorted(plan, key=lambda p: (p[1], p[0])):
        if written_rows != rows:
            write_synthetic_customers(
                data / "customer_stats.parquet", rows, end, view=view
            )
            written_rows = rows
        env.flush_redis()
        task = {
            "kind": "materialize",
            "engine": engine,
            **_materialize_task(env, engine),
            "start": (end - timedelta(days=3)).isoformat(),
            "end": end.isoformat(),
        }
        res = run_child(env, task, materialize_workload, in_process=sizes.in_process)
        keys = env.redis().dbsize()
        res.update({"engine": engine, "rows": rows, "redis_keys": keys})
        if "seconds" in res:
            res["rows_per_s"] = round(rows / res["seconds"])
        runs.append(res)
    env.flush_redis()
    return {"runs": runs}


def materialize_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    ok_runs = [r for r in res["runs"] if "rows_per_s" in r]
    plat = [r for r in ok_runs if r["engine"] == "platform"]
    feast = [r for r in ok_runs if r["engine"] == "feast"]
    out = []
    if plat:
        best = min(plat, key=lambda r: r["rows_per_s"])
        same = [f for f in feast if f["rows"] == best["rows"]]
        ratio = (
            f", {best['rows_per_s'] / same[0]['rows_per_s']:.1f}x Feast" if same else ""
        )
        out.append(
            target(
                "materialize >= 100k rows/s",
                f"{best['rows_per_s']:,} rows/s at {best['rows']:,} rows "
                f"(slowest size){ratio}",
                best["rows_per_s"] >= 100_000,
            )
        )
        big = max(plat, key=lambda r: r["rows"])
        out.append(
            target(
                "materialize peak RSS < 1 GB at 10M rows",
                f"{big['peak_rss_mb']:,} MB at {big['rows']:,} rows",
                big["rows"] >= 10_000_000 and big["peak_rss_mb"] < 1024,
            )
        )
    api = [r for r in ok_runs if r["engine"] == ENGINE_NO_GATE]
    pairs = [(a, p) for a in api for p in plat if p["rows"] == a["rows"]]  # same size
    if pairs:
        worst_a, worst_p = min(
            pairs, key=lambda ap: ap[0]["rows_per_s"] / ap[1]["rows_per_s"]
        )
        share = worst_a["rows_per_s"] / worst_p["rows_per_s"]
        out.append(
            target(
                "Feast API through PlatformEngine (no gate) within 15% of "
                "materialize_window rows/s",
                ", ".join(
                    f"{a['rows_per_s']:,} vs {p['rows_per_s']:,} rows/s at "
                    f"{a['rows']:,} rows ({a['rows_per_s'] / p['rows_per_s']:.2f}x)"
                    for a, p in pairs
                ),
                share >= 0.85,
            )
        )
        big = max(api, key=lambda r: r["rows"])
        out.append(
            target(
                "Feast API through PlatformEngine peak RSS < 1 GB at 10M rows",
                f"{big['peak_rss_mb']:,} MB at {big['rows']:,} rows",
                big["rows"] >= 10_000_000 and big["peak_rss_mb"] < 1024,
            )
        )
    return out


def materialize_summary(res: dict[str, Any]) -> list[str]:
    lines = [
        "Materialization into Redis (customer_stats, 1 row per entity):",
        "",
        "| engine | rows | seconds | rows/s | CPU s (client) | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['rows']:,} | error | | | |")
        else:
            lines.append(
                f"| {r['engine']} | {r['rows']:,} | {r['seconds']} "
                f"| {r['rows_per_s']:,} | {r.get('cpu_s', 'n/a')} "
                f"| {r['peak_rss_mb']:,} |"
            )
    lines.append("")
    return lines


BENCHMARK = Benchmark(
    "materialize",
    bench_materialize,
    materialize_targets,
    materialize_summary,
    workload=materialize_workload,
)
