"""Spark rows of the benchmark: the scale profile vs the single-machine path.

``python benchmarks/spark_bench.py [--rows 1000000 [10000000 ...]] [--quick]``
writes ``benchmarks/results/spark.json`` and ``benchmarks/results/spark.md``.

Same machine, same parquet, same Redis Cluster, the platform's own functions:

* ``pit``: ``training.build_training_set`` (as-known-at point-in-time join of
  the churn feature service, every entity row kept) on Feast's DuckDB offline
  store (local/services profiles) vs Feast's Spark offline store (scale
  profile). N feature rows (10 per customer over 30 days, 2 % arriving late)
  and N entity rows (~5 % unknown customers). The two results are compared cell
  by cell.
* ``materialize``: ``materialize.materialize_window`` of N customers (one row
  each, so N online keys) into a 3-master Redis Cluster: DuckDB pull + writes
  from this one process (Feast's generic path) vs the Spark engine (pull as a
  Spark job, writes from the executors, ``batch_engine.partitions`` at a time).

Spark runs at ``local[2]`` ($FP_SPARK_MASTER) in this process: the JVM start is
timed apart (``spark_session_start_s``), so the rows measure the work. Every
run creates its own Redis Cluster (free loopback ports, nothing on disk) and
PostgreSQL database, and removes them afterwards. No timing assertions: the
numbers are reported, on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SERVICE = "churn_prediction_service"
RUN_KEYS = (
    "when",
    "spark_driver_memory",
    "spark_session_start_s",
    "command",
    "commit",
    "commit_source",
    "commit_dirty",
)
CATEGORIES = ["grocery", "electronics", "fashion", "home", "beauty", "sports"]

if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def _customer_table(ids: Any, ev_us: Any, created_us: Any, rng: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    n = len(ids)
    amount = rng.gamma(2.0, 20.0, n)
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(ev_us, ts),
            "created_timestamp": pa.array(created_us, ts),
            "total_orders": pa.array(rng.integers(0, 500, n)),
            "avg_order_amount": pa.array(
                np.where(rng.random(n) < 0.05, np.nan, amount), from_pandas=True
            ),
            "lifetime_value": pa.array(amount * rng.integers(1, 50, n)),
            "preferred_category": pa.array(np.array(CATEGORIES)[rng.integers(0, 6, n)]),
            "churn_risk_score": pa.array(rng.random(n).astype("float32")),
            "email": pa.array([f"user{i}@example.com" for i in ids.tolist()]),
        }
    )


def write_pit_inputs(data: Path, n: int, end: datetime, seed: int = 3) -> Any:
    """N feature rows (10 per customer, 30 days, 2 % late) -> parquet; N entity rows."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    customers = max(1, n // 10)
    end_us = int(end.timestamp() * 1_000_000)
    span = 30 * 86_400 * 1_000_000
    ev = end_us - rng.integers(0, span, n)
    late = rng.random(n) < 0.02
    created = ev + np.where(late, rng.integers(1, 48 * 3_600, n) * 1_000_000, 0)
    ids = rng.integers(0, customers, n) + 1_000_000
    pq.write_table(
        _customer_table(ids, ev, created, rng),
        data / "customer_stats.parquet",
        row_group_size=1_000_000,
    )
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, int(customers * 1.05) + 1, n) + 1_000_000,
            "event_timestamp": pd.to_datetime(
                end_us - rng.integers(0, span, n), unit="us", utc=True
            ),
            "churned": rng.integers(0, 2, n),
        }
    )


def write_materialize_input(data: Path, n: int, end: datetime, seed: int = 1) -> None:
    """N customers, one row each, events in the 2 days before ``end``."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    end_us = int(end.timestamp() * 1_000_000)
    ev = end_us - rng.integers(3_600, 2 * 86_400, n) * 1_000_000
    ids = np.arange(n) + 1_000_000
    pq.write_table(
        _customer_table(ids, ev, ev, rng),
        data / "customer_stats.parquet",
        row_group_size=1_000_000,
    )


def _copy_repo(dst: Path) -> Path:
    src = ROOT / "feature_repo"
    shutil.copytree(
        src, dst, ignore=shutil.ignore_patterns("data", "__pycache__", "*.db")
    )
    return dst


def _pg(dbname: str, sql: str) -> None:
    import psycopg

    conn = psycopg.connect(
        host=os.environ.get("FP_PG_HOST", "127.0.0.1"),
        port=os.environ.get("FP_PG_PORT", "5432"),
        user=os.environ.get("FP_PG_USER", "postgres"),
        password=os.environ.get("FP_PG_PASSWORD", ""),
        dbname=dbname,
        connect_timeout=5,
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _store(profile: str, repo: Path, project: str) -> Any:
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    os.environ["FEATURE_PLATFORM_PROJECT"] = project
    store = get_store(profile, repo=repo)
    apply_definitions(store)
    return store


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 2)


def _same_frames(a: Any, b: Any) -> dict[str, Any]:
    """Cell agreement of two training sets (sorted the same way)."""
    from pandas.api.types import is_numeric_dtype

    cols = [c for c in a.columns if c in b.columns]
    keys = ["event_timestamp", "customer_id", "churned"]
    a = a[cols].sort_values(keys, kind="stable").reset_index(drop=True)
    b = b[cols].sort_values(keys, kind="stable").reset_index(drop=True)
    if len(a) != len(b):
        return {"rows_equal": False}
    diff = {}
    for c in cols:
        x, y = a[c], b[c]
        if is_numeric_dtype(x.dtype) or is_numeric_dtype(y.dtype):
            x, y = x.astype("float64"), y.astype("float64")
        same = (x == y) | (x.isna() & y.isna())
        diff[c] = int((~same).sum())
    return {
        "rows_equal": True,
        "cells_differing": diff,
        "identical": not any(diff.values()),
    }


def bench_size(
    n: int, env: dict[str, Any], cluster: Any, only: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": n, "pit": [], "materialize": []}
    tag = uuid.uuid4().hex[:6]
    if only != "materialize":
        out.update(_bench_pit(n, env, tag))
    if only != "pit":
        out["materialize"] = _bench_materialize(n, env, cluster, tag)
    return out


def _bench_pit(n: int, env: dict[str, Any], tag: str) -> dict[str, Any]:
    from feature_platform.training import build_training_set

    end, data = env["end"], env["data"]
    out: dict[str, Any] = {}

    # ---- point-in-time join: N entity rows x N feature rows
    entities = write_pit_inputs(data, n, end)
    duck = _store("services", env["duck_repo"], f"bench_duck_{tag}")
    spark = _store("scale", env["spark_repo"], f"bench_spark_{tag}")
    runs = []
    frames = {}
    for name, store in (("duckdb", duck), ("spark", spark)):
        frame, secs = _timed(
            lambda s=store, e=entities: build_training_set(
                s, e, feature_service=SERVICE
            )
        )
        frames[name] = frame
        runs.append(
            {
                "engine": name,
                "entity_rows": n,
                "feature_rows": n,
                "seconds": secs,
                "entity_rows_per_s": round(n / secs),
                "rows_out": len(frame),
            }
        )
        print(f"pit {name} {n:,}: {secs}s", flush=True)
    out["pit"] = runs
    out["pit_agreement"] = _same_frames(frames["duckdb"], frames["spark"])
    return out


def _bench_materialize(
    n: int, env: dict[str, Any], cluster: Any, tag: str
) -> list[dict[str, Any]]:
    from feature_platform.materialize import materialize_window

    end, data = env["end"], env["data"]
    # ---- materialization: N customers -> N keys in the Redis Cluster
    write_materialize_input(data, n, end)
    start = end - timedelta(days=3)
    mats = []
    for name, profile, repo in (
        ("duckdb", "services", env["duck_repo"]),
        ("spark", "scale", env["spark_repo"]),
    ):
        cluster.client().flushall()  # our own throwaway cluster
        store = _store(profile, repo, f"bench_{name}_m_{tag}")
        summary, secs = _timed(lambda s=store: materialize_window(s, start, end))
        keys = sum(
            cluster.client().get_redis_connection(node).dbsize()
            for node in cluster.client().get_primaries()
        )
        mats.append(
            {
                "engine": name,
                "rows": n,
                "seconds": secs,
                "rows_per_s": round(summary["rows_total"] / secs),
                "rows_written": summary["rows_total"],
                "cluster_keys": keys,
            }
        )
        print(f"materialize {name} {n:,}: {secs}s", flush=True)
    return mats


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    runs = "; ".join(
        f"{size['rows']:,} rows: {r['when']}, driver {r['spark_driver_memory']}, "
        f"Spark session start {r['spark_session_start_s']} s"
        for size in result["sizes"]
        if (r := size.get("run", m))
    )
    lines = [
        "## Spark (scale profile) vs DuckDB (single machine)",
        "",
        f"{m['cpus']} CPUs, Spark `{m['spark_master']}`, Redis Cluster of 3 "
        f"masters on loopback. Session start is not included below. Runs: {runs}.",
        "",
        "| benchmark | engine | rows | seconds | rows/s | check |",
        "|---|---|---:|---:|---:|---|",
    ]
    for size in result["sizes"]:
        agree = size.get("pit_agreement", {})
        check = (
            "every cell equal to DuckDB's"
            if agree.get("identical")
            else f"differs from DuckDB: {agree}"
        )
        for r in size["pit"]:
            note = "" if r["engine"] == "duckdb" else f"; {check}"
            lines.append(
                f"| PIT join (N entity x N feature rows) | {r['engine']} | "
                f"{r['entity_rows']:,} | {r['seconds']} | {r['entity_rows_per_s']:,} | "
                f"{r['rows_out']:,} rows out{note} |"
            )
        for r in size["materialize"]:
            lines.append(
                f"| materialize into Redis Cluster | {r['engine']} | {r['rows']:,} | "
                f"{r['seconds']} | {r['rows_per_s']:,} | "
                f"{r['cluster_keys']:,} keys |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--quick", action="store_true", help="20k rows (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only rewrite spark.md")
    parser.add_argument("--only", choices=["pit", "materialize"])
    parser.add_argument(
        "--append", action="store_true", help="add these sizes to spark.json"
    )
    args = parser.parse_args(argv)
    if args.render:  # re-render the markdown of an existing result
        result = json.loads((args.out / "spark.json").read_text())
        (args.out / "spark.md").write_text(markdown(result))
        return 0
    sizes = [20_000] if args.quick else args.rows

    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("FP_SPARK_DRIVER_MEMORY", "2g")
    from feature_platform.sample_data import SampleSpec, write_sample_data
    from tests.cluster import RedisCluster

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    work = Path(tempfile.mkdtemp(prefix="fp-spark-bench-"))
    db = f"fp_bench_spark_{uuid.uuid4().hex[:8]}"
    cluster = RedisCluster(masters=3).start()
    _pg("postgres", f'CREATE DATABASE "{db}"')
    try:
        data = work / "data"
        # Small driver_stats (the definitions need it); customer_stats is
        # rewritten per size.
        write_sample_data(data, SampleSpec(customers=50, drivers=20, days=20, end=end))
        os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(data)
        os.environ["FP_PG_DATABASE"] = db
        os.environ["FP_REDIS_CLUSTER_NODES"] = cluster.nodes_string
        duck_repo = _copy_repo(work / "duck_repo")
        # The single-machine path writes to the same Redis Cluster.
        services = duck_repo / "profiles" / "services.yaml"
        text = services.read_text().replace(
            "redis_type: redis", "redis_type: redis_cluster"
        )
        services.write_text(
            text.replace(
                "connection_string: ${FP_REDIS_HOST}:${FP_REDIS_PORT},"
                "db=${FP_REDIS_DB},",
                "connection_string: ${FP_REDIS_CLUSTER_NODES},",
            )
        )
        env = {
            "end": end,
            "data": data,
            "duck_repo": duck_repo,
            "spark_repo": _copy_repo(work / "spark_repo"),
        }
        from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
            get_spark_session_or_start_new_with_repoconfig,
        )

        from feature_platform.profiles import load_repo_config

        cfg = load_repo_config("scale", repo=env["spark_repo"])
        _, spark_start = _timed(
            lambda: get_spark_session_or_start_new_with_repoconfig(cfg.offline_store)
        )
        from benchmarks.harness import provenance

        result = {
            "meta": {
                **provenance(" ".join(["benchmarks/spark_bench.py", *sys.argv[1:]])),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "spark_master": cfg.offline_store.spark_conf["spark.master"],
                "spark_driver_memory": cfg.offline_store.spark_conf[
                    "spark.driver.memory"
                ],
                "spark_write_partitions": cfg.batch_engine.partitions,
                "spark_session_start_s": spark_start,
                "redis_cluster_masters": 3,
            },
            "sizes": [bench_size(n, env, cluster, args.only) for n in sizes],
        }
        run = {k: result["meta"][k] for k in RUN_KEYS}
        for size in result["sizes"]:
            size["run"] = run
    finally:
        cluster.stop()
        _pg("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "spark_quick" if args.quick else "spark"
    previous = args.out / f"{name}.json"
    if args.append and previous.is_file():
        old = json.loads(previous.read_text())
        result["meta"]["earlier_runs"] = [
            old["meta"],
            *old["meta"].get("earlier_runs", []),
        ]
        result["sizes"] = old["sizes"] + result["sizes"]
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
