"""The docs cannot drift from the committed results.

Every figure in README.md and docs/ is rendered by ``benchmarks.report`` from
``benchmarks/results/`` (``make bench-docs``): docs/benchmarks.md as a whole, other
pages between ``<!-- fig:NAME -->`` markers. These tests re-render and compare,
show that a changed results file is caught, and check that every results file
names its command and commit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.harness import ROOT, provenance

RESULTS = ROOT / "benchmarks" / "results"


def test_every_page_matches_the_results() -> None:
    assert report.stale() == [], "run `make bench-docs` and commit the pages"


@pytest.fixture
def results_copy(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(RESULTS, out)
    return out


def _edit(path: Path, change: Any) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def test_a_changed_results_file_is_caught(results_copy: Path) -> None:
    """One number changes in materialize.json: the benchmark page and the page
    quoting it (why-feast.md) are both reported stale."""

    def faster(payload: dict[str, Any]) -> None:
        for run in payload["results"]["runs"]:
            if run["engine"] == "platform":
                run["rows_per_s"] += 1

    _edit(results_copy / "materialize.json", faster)
    stale = report.stale(results_copy)
    assert "docs/benchmarks.md" in stale
    assert "docs/why-feast.md" in stale
    assert report.main(["--results", str(results_copy), "--check"]) == 1
    assert report.main(["--check"]) == 0


def test_a_removed_results_file_is_caught(results_copy: Path) -> None:
    (results_copy / "pit.json").unlink()
    with pytest.raises(report.FigureError, match="why_pit"):
        report.stale(results_copy)


def test_values_from_results_are_escaped(results_copy: Path) -> None:
    """A target name with HTML and a table pipe cannot inject either."""

    def hostile(payload: dict[str, Any]) -> None:
        payload["results"]["targets"][0]["target"] = "<script>alert(1)</script> | x"

    _edit(results_copy / "http.json", hostile)
    page = report.render(results_copy)
    assert "<script>" not in page
    assert "&lt;script>alert(1)&lt;/script> \\| x" in page


def test_an_unknown_figure_is_an_error() -> None:
    with pytest.raises(KeyError, match="no_such_figure"):
        report.render_page("<!-- fig:no_such_figure --><!-- /fig -->", report.figures())


def test_figure_blocks_render_inline_and_as_blocks() -> None:
    figs = report.figures()
    inline = report.render_page("a <!-- fig:why_http -->old<!-- /fig --> b", figs)
    assert "old" not in inline and "req/s" in inline and "\n" not in inline


def _records(name: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a results file that carry command and commit."""
    if name == "spark":
        return [payload["meta"], *(size["run"] for size in payload["sizes"])]
    if name == "reliability":
        return list(payload.values())
    return [payload]


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_every_results_file_names_its_command_and_commit(path: Path) -> None:
    for record in _records(path.stem, json.loads(path.read_text())):
        assert record["command"], path
        assert len(record["commit"]) == 40, path
        # "run": measured at that commit; "git-log": written before commits
        # were recorded, the commit that last changed the file.
        assert record["commit_source"] in ("run", "git-log"), path
        if record["commit_source"] == "git-log":
            last = subprocess.run(
                ["git", "-C", str(ROOT), "log", "--format=%H", "--", str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            assert record["commit"] in last, path


def test_a_run_records_this_checkout() -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    record = provenance("python -m benchmarks --only online")
    assert record == {
        "command": "python -m benchmarks --only online",
        "commit": head,
        "commit_source": "run",
        "commit_dirty": record["commit_dirty"],
    }
    assert isinstance(record["commit_dirty"], bool)
    assert "commit unknown" in report.commit_text(
        {"commit": head, "commit_source": "git-log"}
    )
    assert report.commit_text(record).startswith(f"commit `{head[:10]}`")
