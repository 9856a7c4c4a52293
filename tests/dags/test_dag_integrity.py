"""Every DAG file imports cleanly, fast, and without heavy imports at top level."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dags.conftest import DAGS

DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("feast", "great_expectations", "sklearn", "kfp", "pyarrow", "duckdb", "redis")
EXPECTED_DAGS = {
    "feast_materialization_pipeline",
    "feast_materialization_pipeline_every_2_hours",
    "feast_backfill",
    "feast_training",
    "feast_monitoring",
}

# Imports airflow.sdk first (the DAG processor has it loaded already), then
# times executing the DAG file and lists the heavy modules it pulled in.
_PROBE = """
import importlib.util, json, sys, time
import airflow.sdk, pendulum
before = set(sys.modules)
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - t0
heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before
                if m.split(".")[0] in sys.argv[2].split(",")})
print(json.dumps({"seconds": seconds, "heavy": heavy}))
"""


def test_dagbag_has_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAGS


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_parses_fast_without_heavy_imports(path: Path, airflow_db) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{path.name} imports {result['heavy']} at parse time"
    assert result["seconds"] < 1.0, (
        f"{path.name} took {result['seconds']:.2f}s to parse"
    )
