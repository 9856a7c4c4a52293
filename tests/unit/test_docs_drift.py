"""The docs cannot drift from the committed results.

Every figure in README.md and docs/ is rendered by ``benchmarks.report`` from
``benchmarks/results/`` (``make bench-docs``): docs/benchmarks.md as a whole, other
pages between ``<!-- fig:NAME -->`` markers. These tests re-render and compare,
show that a changed results file is caught, and check that every results file
names its command and commit.
"""

from __future__ import annotations

import json
import re
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


# A measured quantity: a number with a unit of throughput, time, size or a
# decimal ratio. Outside <!-- fig --> blocks a page may state such a number only
# when it is a setting or a bound the code or a test fixes (listed below, each
# phrase as the page has it), never a measurement typed by hand.
MEASURED = re.compile(
    r"(?<![\w.\-/:])~?\d[\d,]*(?:\.\d+)?\s?"
    r"(?:rows/s|req/s|ms|MB|GB|KB|MiB|GiB|s|seconds?|min|minutes?)(?![\w/])"
    r"|(?<![\w.])\d+\.\d+\s?(?:x|×)(?!\w)"
)
SETTINGS = {
    "docs/catalog.md": [
        "(3 min ago)",  # sample output of `catalog`: an age, not a measurement
        "probed for at most 3 s",
    ],
    "docs/monitoring.md": [
        "every 4 h + 30 min",
        "every 2 h + 30 min",
        "| 50 ms | 50 ms |",
        "plus 30 minutes for the run",
        "buckets 0.25 ms to 10 s, 0.25-2.5 ms apart below 10 ms",
        "stopped after 10 s",
    ],
    "docs/operations.md": [
        "default 60 s",
        "pause 50 ms after each registry object read",
        "259200 s (3 days)",
        "shortened to 4 s",
        "registry refresh 1 s",
        "growth at 100 MiB",
        "a 0.25 s connect timeout",
        "2 s read timeout",
        "(0.5 s)",
        "p99 < 250 ms and recovery within 2 s",
    ],
    "docs/running/airflow.md": ["`retry_delay` 5 minutes"],
    "docs/running/production.md": [
        "(expiring after 30 minutes)",  # Feast's entity-table expiry
        "(Feast sets them to expire after 30 minutes)",
        "bills regardless: 10 MB per source table",  # BigQuery's pricing minimum
        "the 10 MB floor",
    ],
    "docs/security.md": ["cached 300 s", "(10 s leeway)"],
    "docs/serving.md": ["(5 s).", "body over 1 MiB", "after 10 s"],
}
# A directory of the machine a page was written on (a container's or a cluster's
# path in an example, such as /app or /mnt, is not one).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|root|Users)/|[A-Z]:\\[A-Za-z]")


def _pages() -> list[tuple[str, str]]:
    return [(str(p.relative_to(ROOT)), p.read_text()) for p in report.pages()]


def test_no_measured_number_is_typed_by_hand() -> None:
    found = []
    for name, text in _pages():
        text = report.FIG.sub("", text)
        for phrase in SETTINGS.get(name, []):
            assert phrase in text, f"{name}: allowed phrase {phrase!r} is gone"
            text = text.replace(phrase, " ")
        for n, line in enumerate(text.splitlines(), 1):
            found += [f"{name}:{n}: {m[0]!r}" for m in MEASURED.finditer(line)]
    assert found == [], "render these from benchmarks/results/ (see docs/benchmarks.md)"


def test_the_number_check_sees_a_typed_number() -> None:
    text = "at 182,548 rows/s, p99 0.334 ms, 6.2 GB, 2.31x Feast, took 38 s"
    assert [m[0] for m in MEASURED.finditer(text)] == [
        "182,548 rows/s",
        "0.334 ms",
        "6.2 GB",
        "2.31x",
        "38 s",
    ]
    fig = "<!-- fig:why_http -->4088.2 req/s<!-- /fig -->"
    assert not MEASURED.search(report.FIG.sub("", fig))


def test_no_absolute_machine_path() -> None:
    found = [
        f"{name}: {m[0]}"
        for name, text in _pages()
        for m in ABSOLUTE_PATH.finditer(text)
    ]
    assert found == []
    assert ABSOLUTE_PATH.search("sqlite:////work/main/feature_repo/data/mlflow.db")
    assert ABSOLUTE_PATH.search("in C:\\Users\\me\\repo")
    assert not ABSOLUTE_PATH.search("/app/dags, /tmp/scale_data, ~/work/x")
