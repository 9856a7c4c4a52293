"""Record ``make demo`` on a fresh checkout: ``benchmarks/results/demo.json``.

    python -m benchmarks.demo

Runs ``feature-platform --profile local demo`` twice in a temporary copy of
``feature_repo/`` without its data (a first run: sample data, apply, materialize,
train, serve; then the incremental one), from the copy's parent directory so the
printed paths are relative, and records each run's output (stdout and stderr, as
a terminal shows them, with this checkout's directory removed from the paths of
library warnings so they read relative to it) and wall time with the commit and
command. README.md shows
the first run's output and both times from this file (``make bench-docs``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_SRC, RESULTS, ROOT, machine, provenance

COMMAND = "python -m benchmarks.demo"


def record_demo() -> dict[str, Any]:
    cli = str(Path(sys.executable).parent / "feature-platform")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load = machine()["load_average_1m"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="fp_demo_") as tmp:
        repo = Path(tmp) / "feature_repo"
        shutil.copytree(
            REPO_SRC, repo, ignore=shutil.ignore_patterns("data", "__pycache__")
        )
        env = {**os.environ, "FEATURE_PLATFORM_REPO": str(repo)}
        for name in ("FEATURE_PLATFORM_DATA_DIR", "FEATURE_PLATFORM_PROFILE"):
            env.pop(name, None)
        for kind in ("first", "incremental"):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [cli, "--profile", "local", "demo"],
                cwd=tmp,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=1800,
                check=True,
            )
            runs.append(
                {
                    "run": kind,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    # Paths relative to the demo's directory and the checkout
                    # (a warning names its file): no machine's directories.
                    "output": proc.stdout.replace(f"{tmp}/", "").replace(
                        f"{ROOT}/", ""
                    ),
                }
            )
    return {
        "name": "demo",
        **provenance(COMMAND),
        "started": started,
        "load_average_1m": load,
        "argv": "feature-platform --profile local demo",
        "runs": runs,
    }


def main() -> int:
    record = record_demo()
    out = RESULTS / "demo.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    for r in record["runs"]:
        print(f"{r['run']}: {r['wall_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
