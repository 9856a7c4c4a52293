"""Render the docs from the committed results: ``docs/benchmarks.md`` and every
figure quoted in README.md and ``docs/``.

    python -m benchmarks.report [--results benchmarks/results] [--check]

(``make bench-docs``.) The text lives in Jinja templates under
``benchmarks/templates/``: ``benchmarks.md.j2`` plus one template per section of
``docs/benchmarks.md``, and ``figures.md.j2``, one macro per number (or table)
another page quotes. A page keeps each quoted figure between markers,
``<!-- fig:NAME -->...<!-- /fig -->``; rendering replaces what is between them
with macro ``NAME``'s output, so a page cannot drift from the results without
``--check`` (and ``tests/unit/test_docs_drift.py``) failing.

Values from results files are escaped for Markdown by the environment
(autoescape with :func:`md_escape`): a ``|`` cannot break a table and a ``<tag``
cannot become HTML. Every results file names its command and commit
(``benchmarks.harness.provenance``); :func:`commit_text` shows them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEMPLATES = Path(__file__).resolve().parent / "templates"
OUT = ROOT / "docs" / "benchmarks.md"

SUITE = ("online", "materialize", "pit", "http", "cold_start")
SUITE_COMMAND = "python -m benchmarks --only {name} --out benchmarks/results"
SPARK_COMMAND = "make bench-spark"
RELIABILITY_COMMAND = (
    "FP_BENCH_RESULTS=benchmarks/results .venv/bin/python -m pytest "
    "tests/integration/test_reliability_serving.py"
)

# name -> (heading, command that writes benchmarks/results/<name>.json)
SECTIONS: dict[str, tuple[str, str]] = {
    "online": ("Online reads (SDK)", SUITE_COMMAND.format(name="online")),
    "materialize": (
        "Materialization into Redis",
        SUITE_COMMAND.format(name="materialize"),
    ),
    "pit": ("Point-in-time join", SUITE_COMMAND.format(name="pit")),
    "http": ("HTTP feature server", SUITE_COMMAND.format(name="http")),
    "cold_start": ("Process start", SUITE_COMMAND.format(name="cold_start")),
    "spark": ("Spark (scale profile) vs DuckDB (single machine)", SPARK_COMMAND),
    "reliability": ("Serving under load (reliability test)", RELIABILITY_COMMAND),
}

# Pages whose figures are rendered between markers (docs/benchmarks.md is whole).
FIG = re.compile(r"<!-- fig:([A-Za-z_][A-Za-z0-9_]*) -->(.*?)<!-- /fig -->", re.S)


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/ (the generated one apart)."""
    docs = sorted((root / "docs").rglob("*.md"))
    return [root / "README.md", *(p for p in docs if p != root / OUT.relative_to(ROOT))]


# ---------------------------------------------------------------- escaping

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def md_escape(value: Any) -> str:
    """A value from a results file as Markdown text: ``|`` escaped (tables, code
    spans inside tables included), ``<`` that could open an HTML tag, comment or
    autolink as ``&lt;``, newlines as spaces."""
    text = str(value)
    return _TAG_START.sub("&lt;", text.replace("|", "\\|")).replace("\n", " ")


# ---------------------------------------------------------------- helpers


def load(results: Path, name: str) -> dict[str, Any] | None:
    """The parsed ``<name>.json``, or None when it is missing or unreadable."""
    path = results / f"{name}.json"
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def num(value: Any) -> str:
    """A number as the results file has it: thousands separators for integers."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,}" if value >= 1_000 else f"{value}"
    return str(value)


def ratio(a: float, b: float, digits: int = 1) -> str:
    return f"{a / b:.{digits}f}x" if b else "n/a"


def lat(r: dict[str, Any]) -> str:
    """p50 / p99 / max of a latency record."""
    return f"{r['p50_ms']} / {r['p99_ms']} / {r['max_ms']}"


def status(targets: Iterable[dict[str, Any]]) -> str:
    targets = list(targets)
    met = sum(bool(t.get("met")) for t in targets)
    if not targets:
        return "no targets recorded"
    if met == len(targets):
        return {1: "met", 2: "both met"}.get(met, f"all {met} met")
    if met == 0:
        return "missed"
    return f"{met} of {len(targets)} met"


def run(runs: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """The first run without an error whose fields equal ``match``."""
    for r in runs:
        if "error" not in r and all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def target(payload: dict[str, Any], contains: str) -> dict[str, Any]:
    """The first target of a results file whose name contains ``contains``."""
    for t in payload["results"]["targets"]:
        if contains in t["target"]:
            return dict(t)
    raise KeyError(f"no target containing {contains!r}")


def commit_text(record: dict[str, Any]) -> str:
    """Which commit a result measured, as the file records it."""
    sha = record.get("commit")
    if not sha:
        return "commit not recorded"
    if record.get("commit_source") == "run":
        dirty = " + uncommitted changes" if record.get("commit_dirty") else ""
        return f"commit `{sha[:10]}`{dirty}"
    return f"commit unknown (file last changed in `{sha[:10]}`, per git log)"


def spark_command(size: dict[str, Any], first: bool) -> str:
    """The command that wrote a size of spark.json, from what the file records."""
    run_ = size.get("run", {})
    memory = run_.get("spark_driver_memory")
    only = "" if size.get("materialize") else " --only pit"
    if first and memory == "2g" and size["rows"] == 1_000_000 and not only:
        return SPARK_COMMAND
    env = f"FP_SPARK_DRIVER_MEMORY={memory} " if memory and memory != "2g" else ""
    append = "" if first else " --append"
    script = ".venv/bin/python benchmarks/spark_bench.py"
    return f"{env}{script} --rows {size['rows']}{only}{append}"


def engine_pairs(
    sizes: list[dict[str, Any]], kind: str
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(rows, duckdb run, spark run) for each size that ran ``kind`` on both."""
    out = []
    for size in sizes:
        by = {r["engine"]: r for r in size.get(kind, [])}
        if "duckdb" in by and "spark" in by:
            out.append((size["rows"], by["duckdb"], by["spark"]))
    return out


def _dict_with(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if isinstance(v, dict) and key in v}


def _first_key_containing(mapping: dict[str, Any], part: str) -> Any:
    return next((v for k, v in mapping.items() if part in k), None)


def fenced(text: str, lang: str = "text") -> Any:
    """``text`` as a fenced code block, verbatim (no Markdown escaping inside;
    a run of backticks in it is shortened so it cannot close the fence)."""
    from markupsafe import Markup

    body = str(text).rstrip("\n")
    while "```" in body:
        body = body.replace("```", "``")
    return Markup(f"```{lang}\n{body}\n```")


def repo_file(path: str) -> str:
    """A committed file of this repository (a figure may quote one verbatim)."""
    return (ROOT / path).read_text()


def env_file(path: str) -> dict[str, str]:
    """``KEY=value`` lines of a committed env file, in order."""
    out = {}
    for line in repo_file(path).splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _join(items: Iterable[Any], sep: str = "") -> str:
    # Jinja's own join HTML-escapes items under autoescape; the output goes
    # through md_escape when printed instead.
    return sep.join(str(i) for i in items)


def environment() -> Any:
    """The Jinja environment: Markdown autoescape, strict undefined values."""
    import jinja2
    from markupsafe import Markup

    def finalize(value: Any) -> Any:
        return value if hasattr(value, "__html__") else Markup(md_escape(value))

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters |= {
        "num": num,
        "join": _join,
        "fenced": fenced,
        "dict_with": _dict_with,
        "first_key_containing": _first_key_containing,
    }
    env.tests |= {
        "all_true": lambda xs: all(xs),
        "none_true": lambda xs: not any(xs),
        "search": lambda text, pattern: re.search(pattern, text) is not None,
    }
    env.globals |= {
        "num": num,
        "ratio": ratio,
        "lat": lat,
        "status": status,
        "run": run,
        "target": target,
        "commit_text": commit_text,
        "spark_command": spark_command,
        "engine_pairs": engine_pairs,
        "repo_file": repo_file,
        "env_file": env_file,
    }
    return env


def _collapse(text: str) -> str:
    text = text.rstrip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


# ---------------------------------------------------------------- the page


def results_data(results: Path = RESULTS) -> dict[str, dict[str, Any] | None]:
    """Every results file this page or a figure reads, by name."""
    names = {*SECTIONS, "redis_write_shapes"}
    names |= {p.stem for p in results.glob("*.json")}
    return {name: load(results, name) for name in sorted(names)}


def section(env: Any, name: str, payload: dict[str, Any] | None) -> str:
    """A section: its heading, then its template, or a note when it cannot be."""
    heading, command = SECTIONS[name]
    head = f"## {heading}\n\n"
    if payload is None:
        note = env.get_template("macros.md.j2").module.missing(name, command)
        return head + str(note) + "\n"
    import jinja2

    try:
        body = env.get_template(f"{name}.md.j2").render(p=payload, command=command)
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        ZeroDivisionError,
        jinja2.UndefinedError,
    ) as exc:
        body = (
            f"_`benchmarks/results/{name}.json` does not have the structure this "
            f"page expects ({type(exc).__name__}: {md_escape(exc)}); re-run "
            f"`{command}`, or update `benchmarks/templates/{name}.md.j2`._\n"
        )
    return head + body


def render(results: Path = RESULTS) -> str:
    """The whole of docs/benchmarks.md, from the JSON files in ``results``."""
    env = environment()
    data = results_data(results)
    if data["materialize"] is not None:  # read by the materialization section
        data["materialize"]["redis_write_shapes"] = data["redis_write_shapes"]
    machine = next(
        (p["machine"] for n in SUITE if (p := data.get(n)) and "machine" in p), None
    )
    all_targets = [
        t
        for n in SUITE
        for t in (((data.get(n) or {}).get("results") or {}).get("targets") or [])
        if isinstance(t, dict) and "target" in t
    ]
    sections = [section(env, name, data[name]) for name in SECTIONS]
    text = env.get_template("benchmarks.md.j2").render(
        data=data,
        suite=SUITE,
        machine=machine,
        all_targets=all_targets,
        sections=[_markup(s) for s in sections],
    )
    return _collapse(text)


def _markup(text: str) -> Any:
    from markupsafe import Markup

    return Markup(text)


# ---------------------------------------------------------------- other pages


class FigureError(ValueError):
    """A figure's macro failed on the results it was given."""


@dataclass(frozen=True)
class Figures:
    """The macros of ``figures.md.j2``, bound to one set of results."""

    module: Any

    def render(self, name: str) -> str:
        macro = getattr(self.module, name, None)
        if macro is None:
            raise KeyError(f"no figure {name!r} in benchmarks/templates/figures.md.j2")
        try:
            out = str(macro()).strip()
        except Exception as exc:  # any template error: name the figure, keep cause
            raise FigureError(
                f"figure {name!r} cannot be rendered from the results "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        return f"\n\n{out}\n\n" if "\n" in out else out


def figures(results: Path = RESULTS) -> Figures:
    env = environment()
    data = results_data(results)
    return Figures(env.get_template("figures.md.j2").make_module({"r": data}))


def render_page(text: str, figs: Figures) -> str:
    """``text`` with every ``<!-- fig:NAME -->`` block re-rendered."""
    return FIG.sub(
        lambda m: f"<!-- fig:{m[1]} -->{figs.render(m[1])}<!-- /fig -->", text
    )


def stale(results: Path = RESULTS, root: Path = ROOT) -> list[str]:
    """Pages (relative to ``root``) whose rendered content differs from what
    ``results`` says."""
    out = []
    if (root / OUT.relative_to(ROOT)).read_text() != render(results):
        out.append(str(OUT.relative_to(ROOT)))
    figs = figures(results)
    for page in pages(root):
        text = page.read_text()
        if render_page(text, figs) != text:
            out.append(str(page.relative_to(root)))
    return out


def write_all(results: Path = RESULTS, root: Path = ROOT) -> list[Path]:
    """Render docs/benchmarks.md and every page's figure blocks; the changed files."""
    changed = []
    out = root / OUT.relative_to(ROOT)
    text = render(results)
    if not out.is_file() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        changed.append(out)
    figs = figures(results)
    for page in pages(root):
        old = page.read_text()
        new = render_page(old, figs)
        if new != old:
            page.write_text(new)
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="results directory"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a page differs from the results",
    )
    args = parser.parse_args(argv)
    if args.check:
        drifted = stale(args.results)
        for page in drifted:
            print(f"{page}: differs from {args.results} (run make bench-docs)")
        return 1 if drifted else 0
    for path in write_all(args.results):
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
