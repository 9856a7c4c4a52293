"""``python -m benchmarks [--quick] [--only NAME ...] [--out DIR] [--render]``.

The CLI of ``benchmarks.suite``; ``python -m benchmarks _child TASK`` is the
fresh process in which ``benchmarks.harness.run_child`` measures one workload.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import suite
from benchmarks.harness import RESULTS


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        print(json.dumps(suite.child_main(json.loads(argv[1]))))
        return 0
    import signal

    # SIGTERM (e.g. a CI timeout) unwinds normally, so the private redis-server,
    # database and temp directory are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=suite.__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--only", nargs="+", choices=suite.NAMES, help="run only these")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--render", action="store_true", help="only rebuild summary.md from --out"
    )
    args = parser.parse_args(argv)
    if args.render:
        print(suite.render(args.out))
        return 0
    result = suite.run(quick=args.quick, only=args.only, out=args.out)
    print((args.out / "summary.md").read_text())
    missed = [
        t["target"]
        for r in result["results"].values()
        for t in r["targets"]
        if not t["met"]
    ]
    print(f"targets missed: {missed}" if missed else "all targets met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
