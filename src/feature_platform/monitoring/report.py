"""The monitor's report on disk: ``monitor.json`` and a self-contained
``monitor.html`` (inline CSS, plots embedded as base64 PNGs: reference vs
current distributions, freshness bars, latency histogram; no scripts)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.monitoring.drift import PSI_THRESHOLD
from feature_platform.profiles import artifacts_dir

if TYPE_CHECKING:
    from feature_platform.monitoring.collect import ViewFreshness, ViewHealth
    from feature_platform.monitoring.drift import FeatureDrift
    from feature_platform.monitoring.monitor import MonitorReport
    from feature_platform.monitoring.traffic import ServedView

__all__ = ["render_html", "write_report"]


def write_report(
    report: MonitorReport, out_dir: Path | str | None = None
) -> dict[str, str]:
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


def _img(data: str, alt: str) -> Any:
    from markupsafe import Markup

    return Markup('<img class="plot" alt="{}" src="data:image/png;base64,{}">').format(
        alt, data
    )


def _plot_distribution(view: str, name: str, d: FeatureDrift) -> str:
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


def _plot_freshness(fresh: Mapping[str, ViewFreshness]) -> str:
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


def _plot_latency(online: Mapping[str, ServedView | ViewHealth]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    for name, entry in online.items():
        samples = [] if "values" in entry else entry["latency_samples_ms"]
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


def _flag(bad: bool, text: str) -> Any:
    from markupsafe import Markup

    return Markup('<span class="{}">{}</span>').format("bad" if bad else "good", text)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def render_html(report: MonitorReport) -> str:
    """A self-contained HTML page (inline CSS, base64 PNG plots, no scripts).

    Rendered by Jinja2 with autoescape: every value from the report (names,
    alerts, categories, notes) is HTML-escaped, so source data cannot inject
    markup or scripts into whoever opens the page.
    """
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("feature_platform.monitoring", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    fresh = report["freshness"]
    freshness_rows = [
        [
            name,
            _fmt(f["last_materialized_end"]),
            _fmt(f["age_seconds"] / 3600 if f["age_seconds"] else None, 2),
            _fmt(f["threshold_seconds"] / 3600 if f["threshold_seconds"] else None, 2),
            _fmt(f["ttl_seconds"] / 3600, 1),
            _fmt(f["source_newest_event"]),
            _flag(f["stale"], "stale" if f["stale"] else "fresh"),
        ]
        for name, f in fresh.items()
    ]
    drift_rows, drift_plots = [], []
    for view, feats in report["drift"].items():
        for name, d in feats.items():
            rs, cs = d["reference_stats"], d["current_stats"]
            drift_rows.append(
                [
                    f"{view}:{name}",
                    d["kind"],
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
                drift_plots.append(
                    {
                        "img": _plot_distribution(view, name, d),
                        "feature": f"{view}:{name}",
                        "bins": [str(b) for b in d["bins"]],
                    }
                )
    source = report.get("online_source") or {"kind": "probes", "note": ""}
    served = source["kind"] == "server"
    online_rows: list[list[Any]] = []
    for view, entry in report["online"].items():
        nulls: Mapping[str, float | None] = entry.get("null_rate", {})
        latency: list[Any]
        if "values" in entry:  # served traffic: latency over all views only
            count, latency = entry["rows"], ["", "–", "–", "–"]
            expired_text = _pct(entry["expired_rate"])
        else:  # probe reads
            lat = entry["latency_ms"]
            count = entry["entities_sampled"]
            latency = [lat["reads"], _fmt(lat["p50"]), _fmt(lat["p95"])]
            latency.append(_fmt(lat["p99"]))
            expired = entry.get("expired_rate", {})
            expired_text = (
                ", ".join(f"{k} {v:.1%}" for k, v in expired.items() if v) or "0"
            )
        online_rows.append(
            [
                view,
                count,
                ", ".join(f"{k} {_pct(v)}" for k, v in nulls.items()) or "–",
                expired_text,
                *latency,
            ]
        )
    overall = report["latency_ms"]
    online_rows.append(
        [
            Markup("<b>all</b>"),
            "",
            "",
            "",
            overall["reads"],
            _fmt(overall["p50"]),
            _fmt(overall["p95"]),
            _fmt(overall["p99"]),
        ]
    )
    return env.get_template("monitor.html.j2").render(
        r=report,
        w=report["windows"],
        css=Markup(_CSS),
        psi_threshold=PSI_THRESHOLD,
        freshness_rows=freshness_rows,
        freshness_plot=_plot_freshness(fresh),
        drift_rows=drift_rows,
        drift_plots=drift_plots,
        source=source,
        served=served,
        online_rows=online_rows,
        requests=report["served"]["requests"] if served else {},
        latency_plot=None if served else _plot_latency(report["online"]),
    )
