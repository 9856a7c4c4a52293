"""Subprocess worker for the concurrent-writer test (not collected by pytest).

``python reliability_worker.py '<json>'`` with ``{"role": "apply"|"materialize",
"barrier": dir, "name": str, "parties": n, "phases": [...]}``. Each phase runs
after every party reached the phase's barrier (files in ``barrier``), so the
processes start their registry writes within milliseconds of each other:

* apply phase: ``{"lock": bool, "projects": [p, ...]}`` - apply the definitions
  to each project in turn;
* materialize phase: ``{"lock": bool, "project": p, "windows": [[s, e], ...]}``;
* ``rmw_delay`` (seconds, optional): pause after each registry object read.

Prints one JSON line: per phase, the count of successes and the errors seen.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def _barrier(directory: Path, tag: str, name: str, parties: int) -> None:
    (directory / f"{tag}.{name}").touch()
    deadline = time.monotonic() + 120
    while len(list(directory.glob(f"{tag}.*"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {tag} not reached by {parties} parties")
        time.sleep(0.005)


def main() -> int:
    spec = json.loads(sys.argv[1])
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.profiles import get_store
    from feature_platform.utc import parse_utc

    delay = float(spec.get("rmw_delay", 0))
    if delay:
        # Widen Feast's read-modify-write window (read an object, change it,
        # write it back) the same way in the locked and unlocked phases, so the
        # race without the lock shows up on a quiet machine too, not by luck.
        from feast.infra.registry.sql import SqlRegistry

        read = SqlRegistry._get_object

        def slow_read(self, *args, **kwargs):
            obj = read(self, *args, **kwargs)
            time.sleep(delay)
            return obj

        SqlRegistry._get_object = slow_read  # type: ignore[method-assign]

    barrier = Path(spec["barrier"])
    results = []
    for i, phase in enumerate(spec["phases"]):
        os.environ["FEATURE_PLATFORM_REGISTRY_LOCK"] = "on" if phase["lock"] else "off"
        stores = {}
        projects = phase.get("projects") or [phase["project"]]
        for project in projects:  # connect before the barrier: only writes race
            os.environ["FEATURE_PLATFORM_PROJECT"] = project
            stores[project] = get_store("services")
        _barrier(barrier, f"phase{i}", spec["name"], spec["parties"])
        ok, errors = 0, []
        if spec["role"] == "apply":
            for project in projects:
                os.environ["FEATURE_PLATFORM_PROJECT"] = project
                try:
                    apply_definitions(stores[project])
                    ok += 1
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    errors.append(f"{type(exc).__name__}: {exc}"[:500])
                    traceback.print_exc()
        else:
            store = stores[phase["project"]]
            for start, end in phase["windows"]:
                try:
                    # The registry race is the subject here; the validation
                    # gate (seconds of GE per window) would spread the writes
                    # apart. It is tested in test_feast_entry_points.
                    materialize_window(
                        store, parse_utc(start), parse_utc(end), validate=False
                    )
                    ok += 1
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{type(exc).__name__}: {exc}"[:500])
                    traceback.print_exc()
        results.append({"ok": ok, "errors": errors})
    print(json.dumps({"name": spec["name"], "phases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
