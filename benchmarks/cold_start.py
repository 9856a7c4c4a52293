"""``cold_start``: process start costs.

Interpreter, ``import feast``, ``feature-platform --help``, DAG file parse.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, BenchEnv, Benchmark, Sizes, target


def bench_cold_start(env: BenchEnv | None, sizes: Sizes) -> dict[str, Any]:
    py = sys.executable
    fp = str(Path(py).parent / "feature-platform")
    cases = {
        "python -c pass (interpreter floor)": [py, "-c", "pass"],
        "python -c 'import feast'": [py, "-c", "import feast"],
        "feature-platform --help": [fp, "--help"],
    }
    if sizes.in_process:  # quick mode: skip the 6-10 s feast import
        del cases["python -c 'import feast'"]
    res: dict[str, Any] = {}
    for name, argv in cases.items():
        times = []
        for _ in range(sizes.cold_repeats):
            t0 = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, cwd=ROOT, timeout=300)
            times.append(time.perf_counter() - t0)
        res[name] = {
            "median_s": round(sorted(times)[len(times) // 2], 3),
            "runs": len(times),
        }
    dags = sorted((ROOT / "dags").glob("*.py"))
    if dags:
        script = (
            "import time, json, sys, importlib.util\n"
            "import airflow.sdk  # the scheduler has Airflow loaded already\n"
            "out = {}\n"
            "for path in sys.argv[1:]:\n"
            "    t0 = time.perf_counter()\n"
            "    name = 'dag_' + str(len(out))\n"
            "    spec = importlib.util.spec_from_file_location(name, path)\n"
            "    mod = importlib.util.module_from_spec(spec)\n"
            "    spec.loader.exec_module(mod)\n"
            "    out[path.rsplit('/', 1)[-1]] = round(time.perf_counter() - t0, 4)\n"
            "print(json.dumps(out))\n"
        )
        proc = subprocess.run(
            [py, "-c", script, *map(str, dags)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        if proc.returncode == 0:
            res["dag_parse_s"] = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            res["dag_parse_s"] = {"error": proc.stderr[-500:]}
    return res


def cold_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    helps = res["feature-platform --help"]["median_s"]
    out = [target("feature-platform --help < 1 s", f"{helps} s", helps < 1.0)]
    dags = res.get("dag_parse_s")
    if isinstance(dags, dict) and "error" not in dags:
        worst = max(dags.values())
        out.append(
            target(
                "DAG parse < 0.5 s",
                f"slowest {worst} s ({len(dags)} files)",
                worst < 0.5,
            )
        )
    return out


def cold_summary(res: dict[str, Any]) -> list[str]:
    lines = [
        "Process start (median wall time):",
        "",
        "| what | seconds |",
        "|---|---|",
    ]
    for name, r in res.items():
        if name in ("targets", "wall_s"):
            continue
        if name == "dag_parse_s":
            if "error" not in r:
                for dag, s in r.items():
                    lines.append(f"| parse dags/{dag} (Airflow imported) | {s} |")
        else:
            lines.append(f"| {name} | {r['median_s']} |")
    lines.append("")
    return lines


BENCHMARK = Benchmark("cold_start", bench_cold_start, cold_targets, cold_summary)
