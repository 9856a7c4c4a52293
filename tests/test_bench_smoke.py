"""Smoke test of the benchmark suite in quick mode (no timing assertions).

It checks that every benchmark runs end to end against real services and
writes well-formed results, and that the correctness probes inside the suite
(fast reader equals Feast, every PIT entity row kept) hold. The numbers
themselves are reported by ``make bench``, never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quick_bench_writes_results(
    redis_available, pg_database, tmp_path: Path
) -> None:
    from benchmarks.suite import NAMES, run

    out = tmp_path / "results"
    result = run(quick=True, out=out, command="pytest smoke")
    for name in NAMES:
        payload = json.loads((out / f"{name}.json").read_text())
        assert payload["name"] == name and payload["mode"] == "quick"
        assert payload["machine"]["cores"] >= 1
        for target in payload["results"]["targets"]:
            assert set(target) == {"target", "measured", "met"}
    res = result["results"]
    assert res["online"]["fast_equals_feast_on_50_rows"] is True
    assert res["online"]["plugin_equals_feast_on_50_rows"] is True
    for batch in ("batch_1", "batch_100"):
        lat = res["online"]["latency"][batch]
        for name in (
            "feast_sdk_plain",
            "feast_sdk_plugin",
            "platform_fast_reader",
            "floor_redis_py_hmget",
        ):
            assert lat[name]["n"] > 0
    mats = res["materialize"]["runs"]
    assert {r["engine"] for r in mats} == {
        "feast",
        "feast_api_platform_engine_gate",
        "feast_api_platform_engine_no_gate",
        "platform",
        "floor",
        "floor_all_commands",
    }
    # Every engine (and the floor's replay) wrote one Redis hash per source row.
    assert all("error" not in r and r["redis_keys"] == r["rows"] for r in mats)
    assert all(r["x_floor"] > 0 and r["cpu_s_per_million_rows"] > 0 for r in mats)
    assert all(r["x_floor_all_commands"] > 0 and r["redis_cpu_s"] > 0 for r in mats)
    serving = res["materialize"]["serving"]
    for phase in ("idle", "during", "during_throttled"):
        assert serving[phase]["n"] > 0
    for phase in ("during", "during_throttled"):
        assert "error" not in serving[phase]["materialize"]
    pits = res["pit"]["runs"]
    assert all("error" not in r and r["all_entity_rows_kept"] for r in pits)
    # The platform's join equals Feast's DuckDB store cell for cell.
    agreement = pits[-1]["agreement_with_feast"]
    assert agreement["comparable"] is True and agreement["cells"] > 0
    assert agreement["cells_equal_share"] == 1.0
    # Every HTTP request of every server answered 200 (a 401/5xx counts as an error).
    for name, server in res["http"]["servers"].items():
        assert "error" not in server, name
        for load in ("clients_1", "clients_16"):
            assert server[load]["n"] > 0 and server[load]["errors"] == 0, (name, load)
    # The on-demand view: the pandas twin and plain Feast compute the same
    # numbers as the plugin; every request of the platform's server answered 200.
    on_demand = res["on_demand"]
    assert on_demand["sdk"]["pandas_equals_python_on_200_rows"] is True
    assert on_demand["sdk"]["platform_equals_plain_feast_on_200_rows"] is True
    for batch in ("batch_1", "batch_100"):
        assert all(lat["n"] > 0 for lat in on_demand["sdk"]["latency"][batch].values())
        for name, lat in on_demand["http"][batch].items():
            assert lat["n"] > 0, (batch, name)
            if name.startswith("platform_server"):  # (feast serve recycles workers)
                assert lat["errors"] == 0, (batch, name)
    summary = (out / "summary.md").read_text()
    assert "| target | measured | met |" in summary
