"""``pit``: point-in-time join, entity rows/s and peak RSS (child processes).

Feast's DuckDB offline store ``get_historical_features`` vs
``feature_platform.pit.pit_join`` (the ``FastPitOfflineStore`` plugin), both
through Feast's API; rows preserved and cell agreement.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    CHURN_FEATURES,
    BenchEnv,
    Benchmark,
    Sizes,
    cpu_seconds,
    fill_view_columns,
    last_hour,
    run_child,
    target,
)


def write_pit_inputs(
    workdir: Path,
    n_entities: int,
    n_features: int,
    end: datetime,
    *,
    view: Any,
    seed: int = 3,
) -> tuple[Path, Path]:
    """Features: 10 rows per customer over 30 days, 2 % late; random entity rows."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    customers = max(1, n_features // 10)
    end_us = int(end.timestamp() * 1_000_000)
    span = 30 * 86_400 * 1_000_000
    ev = end_us - rng.integers(0, span, n_features)
    late = rng.random(n_features) < 0.02
    created = ev + np.where(
        late, rng.integers(1, 48 * 3_600, n_features) * 1_000_000, 0
    )
    amount = rng.gamma(2.0, 20.0, n_features)
    source = pa.table(
        {
            "customer_id": pa.array(rng.integers(0, customers, n_features) + 1_000_000),
            "event_timestamp": pa.array(ev, pa.timestamp("us", tz="UTC")),
            "created_timestamp": pa.array(created, pa.timestamp("us", tz="UTC")),
            "total_orders": pa.array(rng.integers(0, 500, n_features)),
            "avg_order_amount": pa.array(amount),
            "lifetime_value": pa.array(amount * 7),
            "preferred_category": pa.array(np.full(n_features, "home")),
            "churn_risk_score": pa.array(rng.random(n_features).astype("float32")),
        }
    )
    source = fill_view_columns(source, view, rng)
    src_path = workdir / "repo" / "data" / "customer_stats.parquet"
    pq.write_table(source, src_path, row_group_size=1_000_000)
    del source
    ent = pd.DataFrame(
        {
            # ~5 % unknown customers: their rows must be kept (with nulls).
            "customer_id": rng.integers(0, int(customers * 1.05) + 1, n_entities)
            + 1_000_000,
            "event_timestamp": pd.to_datetime(
                end_us - rng.integers(0, span, n_entities), unit="us", utc=True
            ),
            "churned": rng.integers(0, 2, n_entities),
        }
    )
    ent_path = workdir / f"entities_{n_entities}.parquet"
    ent.to_parquet(ent_path, index=False)
    return src_path, ent_path


def _agreement(feast_path: Path, ours_path: Path) -> dict[str, Any]:
    import pandas as pd

    keys = ["customer_id", "event_timestamp", "churned"]
    a = pd.read_parquet(feast_path)
    b = pd.read_parquet(ours_path)
    a["event_timestamp"] = pd.to_datetime(a["event_timestamp"], utc=True)
    b["event_timestamp"] = pd.to_datetime(b["event_timestamp"], utc=True)
    # Duplicate entity rows make a plain merge ambiguous: compare sorted frames.
    a = a.sort_values(keys + CHURN_FEATURES, kind="stable").reset_index(drop=True)
    b = b.sort_values(keys + CHURN_FEATURES, kind="stable").reset_index(drop=True)
    if len(a) != len(b):
        return {"comparable": False, "feast_rows": len(a), "platform_rows": len(b)}
    equal = total = 0
    for col in CHURN_FEATURES:
        x = pd.to_numeric(a[col], errors="coerce").astype("float64")
        y = pd.to_numeric(b[col], errors="coerce").astype("float64")
        same = (x.isna() & y.isna()) | ((x - y).abs() <= 1e-6 * (1 + y.abs()))
        equal += int(same.sum())
        total += len(same)
    return {
        "comparable": True,
        "cells": total,
        "cells_equal_share": round(equal / total, 6),
    }


def pit_workload(store: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Child process: one historical retrieval of the task's entity rows, timed."""
    import pandas as pd

    entities = pd.read_parquet(task["entities"])
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    # Both through Feast's API: plain repo = stock DuckDB offline store,
    # platform repo = the FastPitOfflineStore plugin from feature_store.yaml.
    job = store.get_historical_features(
        entity_df=entities,
        features=[f"customer_stats:{f}" for f in CHURN_FEATURES],
        filter_by_created_timestamp=True,
    )
    out = job.to_df()
    seconds = time.perf_counter() - t0
    out.to_parquet(task["output"], index=False)
    return {
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu_seconds() - cpu0, 3),
        "retrieval_job": type(job).__name__,
        "rows_out": len(out),
    }


def bench_pit(env: BenchEnv, sizes: Sizes) -> dict[str, Any]:
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import PLAIN_FEAST

    end = last_hour()
    store = env.store()
    apply_definitions(store)
    view = store.get_feature_view("customer_stats")
    runs = []
    for n_ent, n_feat, run_feast in sizes.pit:
        src, ents = write_pit_inputs(env.workdir, n_ent, n_feat, end, view=view)
        outputs = {}
        engines = ["feast", "platform"] if run_feast else ["platform"]
        for engine in engines:
            out = env.workdir / f"pit_{engine}_{n_ent}.parquet"
            task = {
                "kind": "pit",
                "engine": engine,
                "repo": str(env.plain_repo if engine == "feast" else env.repo),
                "overrides": PLAIN_FEAST if engine == "feast" else None,
                "entities": str(ents),
                "source": str(src),
                "output": str(out),
            }
            res = run_child(env, task, pit_workload, in_process=sizes.in_process)
            res.update({"engine": engine, "entity_rows": n_ent, "feature_rows": n_feat})
            if "seconds" in res:
                res["entity_rows_per_s"] = round(n_ent / res["seconds"])
                res["all_entity_rows_kept"] = res["rows_out"] == n_ent
                outputs[engine] = out
            runs.append(res)
        if len(outputs) == 2:
            runs[-1]["agreement_with_feast"] = _agreement(
                outputs["feast"], outputs["platform"]
            )
        for path in outputs.values():
            path.unlink(missing_ok=True)
    return {"runs": runs}


def pit_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    plat = [r for r in res["runs"] if r["engine"] == "platform" and "seconds" in r]
    if not plat:
        return []
    feast = {
        r["entity_rows"]: r
        for r in res["runs"]
        if r["engine"] == "feast" and "seconds" in r
    }
    pairs = [(p, feast[p["entity_rows"]]) for p in plat if p["entity_rows"] in feast]
    ratios = [p["entity_rows_per_s"] / f["entity_rows_per_s"] for p, f in pairs]
    big = max(plat, key=lambda r: r["entity_rows"])
    out = []
    if pairs:
        out.append(
            target(
                "PIT (as known at) >= 2x Feast's DuckDB store at every size, same run",
                ", ".join(
                    f"{p['entity_rows_per_s']:,} vs {f['entity_rows_per_s']:,} "
                    f"rows/s at {p['entity_rows']:,} x {p['feature_rows']:,} "
                    f"({x:.2f}x)"
                    for (p, f), x in zip(pairs, ratios, strict=True)
                ),
                all(x >= 2.0 for x in ratios),
            )
        )
    out.append(
        target(
            "PIT >= 1M entity rows/s at 1M x 10M (quiet machine)",
            f"{big['entity_rows_per_s']:,} rows/s at "
            f"{big['entity_rows']:,} x {big['feature_rows']:,}",
            big["entity_rows"] >= 1_000_000 and big["entity_rows_per_s"] >= 1_000_000,
        )
    )
    agree = [p.get("agreement_with_feast", {}) for p in plat]
    out.append(
        target(
            "PIT cell for cell equal to Feast's DuckDB store",
            ", ".join(
                f"{a.get('cells_equal_share', 'n/a')} of {a.get('cells', 0):,} cells"
                for a in agree
            ),
            bool(agree) and all(a.get("cells_equal_share") == 1.0 for a in agree),
        )
    )
    out.append(
        target(
            "PIT keeps every entity row",
            ", ".join(
                f"{r['engine']}@{r['entity_rows']:,}: {r['rows_out']:,}"
                for r in res["runs"]
                if "rows_out" in r
            ),
            all(r["all_entity_rows_kept"] for r in plat),
        )
    )
    return out


def pit_summary(res: dict[str, Any]) -> list[str]:
    lines = [
        "Point-in-time join, 4 features, as known at (created timestamps):",
        "",
        "| engine | entity x feature rows | seconds | entity rows/s | x Feast "
        "| CPU s | rows kept | cells equal to Feast | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    feast = {
        r["entity_rows"]: r["entity_rows_per_s"]
        for r in res["runs"]
        if r["engine"] == "feast" and "entity_rows_per_s" in r
    }
    for r in res["runs"]:
        size = f"{r['entity_rows']:,} x {r['feature_rows']:,}"
        if "error" in r:
            lines.append(f"| {r['engine']} | {size} | error | | | | | | |")
            continue
        agree = r.get("agreement_with_feast", {}).get("cells_equal_share", "")
        base = feast.get(r["entity_rows"])
        ratio = f"{r['entity_rows_per_s'] / base:.2f}" if base else ""
        lines.append(
            f"| {r['engine']} | {size} | {r['seconds']} "
            f"| {r['entity_rows_per_s']:,} | {ratio} | {r.get('cpu_s', '')} | "
            f"{r['rows_out']:,} | {agree} | {r['peak_rss_mb']:,} |"
        )
    lines.append("")
    return lines


BENCHMARK = Benchmark("pit", bench_pit, pit_targets, pit_summary, workload=pit_workload)
