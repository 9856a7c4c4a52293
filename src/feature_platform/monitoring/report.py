"""The monitor's report on disk: ``monitor.json`` and a self-contained
``monitor.html`` (inline CSS, plots embedded as base64 PNGs: reference vs
current distributions, freshness bars, latency histogram; no scripts)."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from feature_platform.config import artifacts_dir
from feature_platform.monitoring.drift import PSI_THRESHOLD

__all__ = ["render_html", "write_report"]


def write_report(report: dict[str, Any], out_dir: Path | str | None = None) -> dict:
    """Write ``monitor.json`` and ``monitor.html``; returns their paths."""
    out = Path(out_dir) if out_dir else artifacts_dir() / "monitoring"
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "monitor.json", out / "monitor.html"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    html_path.write_text(render_html(report))
    return {"json": str(json_path), "html": str(html_path)}


# ------------------------------------------------------------------------- HTML


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return (
        f'<img class="plot" alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{data}">'
    )


def _plot_distribution(view: str, name: str, d: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    x = np.arange(len(d["bins"]))
    ax.bar(x - 0.2, d["reference"], width=0.4, label="reference", color="#4C72B0")
    ax.bar(x + 0.2, d["current"], width=0.4, label="current", color="#DD8452")
    ax.set_xticks(x, d["bins"], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    colour = "#C44E52" if d["drifted"] else "#333333"
    psi = "n/a" if d["psi"] is None else f"{d['psi']:.3f}"
    ax.set_title(f"{view}:{name}  PSI {psi}", fontsize=10, color=colour, pad=20)
    ax.legend(
        fontsize=8,
        ncol=2,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    return _img(_png(fig), f"distribution {view}:{name}")


def _plot_freshness(fresh: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(fresh)
    fig, ax = plt.subplots(figsize=(6.5, 0.6 + 0.7 * max(len(names), 1)))
    for i, name in enumerate(names):
        f = fresh[name]
        age = (f["age_seconds"] or 0) / 3600
        colour = "#C44E52" if f["stale"] else "#55A868"
        ax.barh(i, age, color=colour, height=0.5)
        if f["threshold_seconds"]:
            ax.plot([f["threshold_seconds"] / 3600] * 2, [i - 0.35, i + 0.35], "k--")
        if f["ttl_seconds"]:
            ax.plot([f["ttl_seconds"] / 3600] * 2, [i - 0.35, i + 0.35], "k-")
        label = "never materialized" if f["age_seconds"] is None else f"{age:.1f} h"
        ax.text(age, i, f"  {label}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("hours since last materialized end (dashed: max_age, solid: ttl)")
    ax.set_title("Freshness", fontsize=10)
    return _img(_png(fig), "freshness bars")


def _plot_latency(online: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    for name, entry in online.items():
        samples = entry.get("latency_samples_ms") or []
        if samples:
            ax.hist(samples, bins=30, alpha=0.6, label=name)
    ax.set_xlabel("online read latency (ms)")
    ax.set_ylabel("reads")
    ax.set_title("Online read latency", fontsize=10)
    if online:
        ax.legend(fontsize=8)
    return _img(_png(fig), "latency histogram")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;
color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f4f4f4}
.bad{color:#b00020;font-weight:600}.good{color:#2e7d32}
.grid{display:flex;flex-wrap:wrap;gap:12px}.plot{max-width:100%}
.alerts li{color:#b00020}
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flag(bad: bool, text: str) -> str:
    return f'<span class="{"bad" if bad else "good"}">{html.escape(text)}</span>'


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, base64 PNG plots, no scripts)."""
    e = html.escape
    w = report["windows"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Feature monitoring: {e(report['project'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Feature monitoring: {e(report['project'])}</h1>",
        f"<p>Generated {e(report['generated_at'])}. Reference window "
        f"{e(w['reference']['start'])} → {e(w['reference']['end'])} "
        f"({e(w['reference']['source'])}); current window "
        f"{e(w['current']['start'])} → {e(w['current']['end'])}.</p>",
    ]
    if report["alerts"]:
        items = "".join(f"<li>{e(a)}</li>" for a in report["alerts"])
        parts.append(f"<h2>Alerts</h2><ul class='alerts'>{items}</ul>")
    else:
        parts.append("<h2>Alerts</h2><p class='good'>No alerts.</p>")

    fresh = report["freshness"]
    parts.append("<h2 id='freshness'>Freshness</h2>")
    parts.append(
        _table(
            [
                "view",
                "last materialized end",
                "age (h)",
                "ttl/3 (h)",
                "ttl (h)",
                "newest source event",
                "status",
            ],
            [
                [
                    e(name),
                    _fmt(f["last_materialized_end"]),
                    _fmt(f["age_seconds"] / 3600 if f["age_seconds"] else None, 2),
                    _fmt(
                        f["threshold_seconds"] / 3600
                        if f["threshold_seconds"]
                        else None,
                        2,
                    ),
                    _fmt(f["ttl_seconds"] / 3600, 1),
                    _fmt(f["source_newest_event"]),
                    _flag(f["stale"], "stale" if f["stale"] else "fresh"),
                ]
                for name, f in fresh.items()
            ],
        )
    )
    parts.append(_plot_freshness(fresh))

    parts.append(f"<h2 id='drift'>Drift (PSI, flagged above {PSI_THRESHOLD})</h2>")
    rows, plots = [], []
    for view, feats in report["drift"].items():
        for name, d in feats.items():
            rs, cs = d["reference_stats"], d["current_stats"]
            rows.append(
                [
                    e(f"{view}:{name}"),
                    e(d["kind"]),
                    _fmt(d["psi"]),
                    _flag(d["drifted"], "drift" if d["drifted"] else "ok"),
                    _fmt(rs.get("mean")),
                    _fmt(cs.get("mean")),
                    _fmt(rs.get("null_rate")),
                    _fmt(cs.get("null_rate")),
                    f"{d['rows']['reference']} / {d['rows']['current']}",
                ]
            )
            if d["bins"]:
                plots.append(_plot_distribution(view, name, d))
    parts.append(
        _table(
            [
                "feature",
                "kind",
                "PSI",
                "status",
                "mean ref",
                "mean cur",
                "null ref",
                "null cur",
                "rows ref / cur",
            ],
            rows,
        )
    )
    parts.append(f"<div class='grid'>{''.join(plots)}</div>")

    parts.append("<h2 id='online'>Online store: null rate and latency</h2>")
    source = report.get("online_source") or {"kind": "probes", "note": ""}
    parts.append(
        f"<p>Source: <b>{e(source['kind'])}</b>. {e(source.get('note', ''))}</p>"
    )
    served = source["kind"] == "server"
    rows = []
    for view, entry in report["online"].items():
        lat = entry.get("latency_ms") or {"reads": "", "p50": None, "p95": None}
        lat.setdefault("p99", None)
        nulls = entry.get("null_rate", {})
        expired = entry.get("expired_rate")
        if isinstance(expired, dict):
            expired_text = (
                ", ".join(f"{e(k)} {v:.1%}" for k, v in expired.items() if v) or "0"
            )
        else:
            expired_text = "–" if expired is None else f"{expired:.1%}"
        rows.append(
            [
                e(view),
                entry["rows"] if served else entry["entities_sampled"],
                ", ".join(
                    f"{e(k)} {'–' if v is None else f'{v:.1%}'}"
                    for k, v in nulls.items()
                )
                or "–",
                expired_text,
                lat["reads"],
                _fmt(lat["p50"]),
                _fmt(lat["p95"]),
                _fmt(lat["p99"]),
            ]
        )
    overall = report["latency_ms"]
    rows.append(
        [
            "<b>all</b>",
            "",
            "",
            "",
            overall["reads"],
            _fmt(overall["p50"]),
            _fmt(overall["p95"]),
            _fmt(overall["p99"]),
        ]
    )
    parts.append(
        _table(
            [
                "view",
                "rows served" if served else "entities",
                "null rate",
                "expired (older than ttl)",
                "reads",
                "p50 ms",
                "p95 ms",
                "p99 ms",
            ],
            rows,
        )
    )
    if served:
        requests = report["served"]["requests"]
        parts.append(
            "<p>POST /get-online-features by HTTP status: "
            + (", ".join(f"{e(k)}: {v}" for k, v in requests.items()) or "none")
            + f"; latency {e(report['latency_ms']['method'])}.</p>"
        )
    else:
        parts.append(_plot_latency(report["online"]))
    parts.append("</body></html>")
    return "\n".join(parts)
