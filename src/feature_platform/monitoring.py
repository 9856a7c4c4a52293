"""Monitoring: freshness, online null rate, drift (PSI) and online read latency.

``run_monitor(store)`` returns a JSON-able report; ``write_report`` writes it as
``monitor.json`` plus a self-contained ``monitor.html`` (plots embedded as
base64 PNGs: reference vs current distributions, freshness bars, latency
histogram). What comes from Feast 0.67 and what is added here:

* per-window feature statistics use Feast's own ``MetricsCalculator`` (the code
  behind ``feast monitor run``: row/null counts, mean, p50..p99, top values), on
  rows read with the offline store's ``pull_all_from_table_or_query`` (works on
  DuckDB and BigQuery alike). ``feast monitor`` itself has no drift metric and
  persists per-day metrics tables, so drift is computed here: PSI on shared bins
  (deciles of the reference window; categories as bins; nulls as their own bin),
  flagged above ``PSI_THRESHOLD`` (0.2).
* freshness follows Feast's ``feast_feature_freshness_seconds`` gauge
  (``now - most_recent_end_time`` of the view's materialization intervals) and
  adds the flag rule (older than ttl/3: at ttl = 3 x interval that is one missed
  run) plus the source's newest event time (``get_monitoring_max_timestamp``).
* online null rates and p50/p95/p99 read latency come from a bounded sample of
  real reads of the online store (no Feast API reports them offline).

``pii``-tagged features are never profiled (their distributions would leak).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.config import artifacts_dir, ensure_utc, utc_now
from feature_platform.governance import batch_source

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from feast import FeatureStore, FeatureView

__all__ = [
    "PSI_THRESHOLD",
    "Window",
    "freshness",
    "latency_percentiles",
    "psi_categorical",
    "psi_numeric",
    "render_html",
    "run_monitor",
    "write_report",
]

log = logging.getLogger(__name__)
PSI_THRESHOLD = 0.2
PSI_BINS = 10
PSI_EPSILON = 1e-4  # floor of a bin's share, so empty bins do not give infinity
FRESHNESS_FRACTION = 3  # flag when older than ttl / 3
MAX_ROWS_PER_WINDOW = 200_000
NULL_BIN = "(null)"
OTHER_BIN = "(other)"
MAX_CATEGORIES = 20


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    label: str = ""

    def __post_init__(self) -> None:
        start = ensure_utc(self.start, "window start")
        end = ensure_utc(self.end, "window end")
        if start >= end:
            raise ValueError(f"empty window {start.isoformat()} >= {end.isoformat()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def as_dict(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.label,
        }


# --------------------------------------------------------------------------- PSI


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    import numpy as np

    r = np.clip(ref_share, PSI_EPSILON, None)
    c = np.clip(cur_share, PSI_EPSILON, None)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    *,
    bins: int = PSI_BINS,
) -> dict[str, Any]:
    """PSI of a numeric feature on the reference window's quantile bins.

    Bin edges are the reference deciles (deduplicated for discrete values),
    open at both ends; nulls form their own bin when either window has any.
    """
    import numpy as np

    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref_ok, cur_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref_ok.size == 0 or cur.size == 0:
        return {"psi": None, "bins": [], "reference": [], "current": []}
    qs = np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(qs)
    labels = []
    bounds = [-math.inf, *edges.tolist(), math.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        labels.append(f"[{_num(lo)}, {_num(hi)})")

    def shares(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        counts = np.bincount(
            np.searchsorted(edges, ok, side="right"), minlength=len(edges) + 1
        ).astype("float64")
        nulls = float(values.size - ok.size)
        return np.append(counts, nulls) / max(values.size, 1)

    r, c = shares(ref, ref_ok), shares(cur, cur_ok)
    if r[-1] == 0 and c[-1] == 0:
        r, c = r[:-1], c[:-1]
    else:
        labels.append(NULL_BIN)
    return {
        "psi": round(_psi(r, c), 6),
        "bins": labels,
        "edges": [float(e) for e in edges],
        "reference": [round(float(x), 6) for x in r],
        "current": [round(float(x), 6) for x in c],
    }


def psi_categorical(
    reference: Sequence[Any], current: Sequence[Any], *, max_categories: int = 20
) -> dict[str, Any]:
    """PSI of a categorical feature: one bin per reference category (top N), plus
    ``(other)`` for unseen/rare values and ``(null)``."""
    import numpy as np
    import pandas as pd

    ref = pd.Series(list(reference), dtype="object")
    cur = pd.Series(list(current), dtype="object")
    if ref.empty or cur.empty:
        return {"psi": None, "bins": [], "reference": [], "current": []}
    top = ref.dropna().astype(str).value_counts().index[:max_categories].tolist()

    def bucket(s: pd.Series) -> pd.Series:
        b = s.astype(str).where(s.notna(), NULL_BIN)
        return b.where(b.isin([*top, NULL_BIN]), OTHER_BIN)

    labels = [*top, OTHER_BIN, NULL_BIN]
    r = bucket(ref).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    c = bucket(cur).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    keep = (r > 0) | (c > 0)
    r, c = r[keep], c[keep]
    return {
        "psi": round(_psi(np.asarray(r), np.asarray(c)), 6),
        "bins": [str(x) for x in r.index],
        "reference": [round(float(x), 6) for x in r],
        "current": [round(float(x), 6) for x in c],
    }


def _num(x: float) -> str:
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:.4g}"


# ---------------------------------------------------------------------- freshness


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def freshness(
    store: FeatureStore, views: Sequence[FeatureView], *, now: datetime
) -> dict[str, Any]:
    """Per view: last materialized end, its age, ttl, and the ttl/3 flag."""
    offline = store._get_provider().offline_store
    out: dict[str, Any] = {}
    for view in views:
        ttl = view.ttl or timedelta(0)
        threshold = ttl / FRESHNESS_FRACTION if ttl else None
        end = _aware(view.most_recent_end_time)
        age = (now - end).total_seconds() if end else None
        stale = age is None or (
            threshold is not None and age > threshold.total_seconds()
        )
        entry: dict[str, Any] = {
            "last_materialized_end": end.isoformat() if end else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "ttl_seconds": ttl.total_seconds(),
            "threshold_seconds": threshold.total_seconds() if threshold else None,
            "stale": bool(stale),
        }
        try:  # Feast's monitoring hook; not every offline store implements it
            newest = _aware(
                offline.get_monitoring_max_timestamp(
                    store.config,
                    batch_source(view),
                    batch_source(view).timestamp_field,
                )
            )
        except Exception as exc:  # noqa: BLE001 - NotImplementedError, assertions
            log.debug("no source max timestamp for %s: %s", view.name, exc)
            newest = None
        entry["source_newest_event"] = newest.isoformat() if newest else None
        entry["source_lag_seconds"] = (
            round((now - newest).total_seconds(), 1) if newest else None
        )
        out[view.name] = entry
    return out


# -------------------------------------------------------------------------- drift


def _profiled_features(view: FeatureView) -> list[tuple[str, str]]:
    """(name, numeric|categorical) of the view's features, pii excluded."""
    from feast.monitoring.metrics_calculator import MetricsCalculator

    from feature_platform.governance import pii_fields

    pii = set(pii_fields(view))
    out = []
    for f in view.features:
        kind = MetricsCalculator.classify_feature(f.dtype)
        if kind and f.name not in pii:
            out.append((f.name, kind))
    return out


def _window_rows(
    store: FeatureStore,
    view: FeatureView,
    features: list[str],
    window: Window,
    *,
    max_rows: int,
    seed: int,
) -> pd.DataFrame:
    source = batch_source(view)
    keys = [c.name for c in view.entity_columns]
    job = store._get_provider().offline_store.pull_all_from_table_or_query(
        config=store.config,
        data_source=source,
        join_key_columns=keys,
        feature_name_columns=features,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        start_date=window.start,
        end_date=window.end,
    )
    df = job.to_df()
    if len(df) > max_rows:
        df = df.sample(max_rows, random_state=seed)
    return df


def _stats(df: pd.DataFrame, name: str, kind: str) -> dict[str, Any]:
    """Feast's own per-window metrics (the ``feast monitor`` calculator)."""
    import pyarrow as pa
    from feast.monitoring.metrics_calculator import MetricsCalculator

    calc = MetricsCalculator()
    column = pa.array(df[name].tolist(), from_pandas=True)
    if kind == "numeric":
        column = column.cast(pa.float64())
        metrics = calc.compute_numeric(column)
    else:
        metrics = calc.compute_categorical(column.cast(pa.string()))
    metrics.pop("histogram", None)
    metrics.pop("feature_type", None)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}


def drift(
    store: FeatureStore,
    views: Sequence[FeatureView],
    *,
    reference: Window,
    current: Window,
    max_rows: int = MAX_ROWS_PER_WINDOW,
    seed: int = 0,
    newest: dict[str, datetime | None] | None = None,
) -> dict[str, Any]:
    """PSI per feature between the reference and the current window (source rows).

    ``newest`` (if given) receives each view's newest event in the current window.
    """
    out: dict[str, Any] = {}
    newest = newest if newest is not None else {}
    for view in views:
        feats = _profiled_features(view)
        if not feats:
            continue
        names = [n for n, _ in feats]
        ref = _window_rows(store, view, names, reference, max_rows=max_rows, seed=seed)
        cur = _window_rows(store, view, names, current, max_rows=max_rows, seed=seed)
        ts = batch_source(view).timestamp_field
        if len(cur) and ts in cur.columns:
            newest[view.name] = _aware(cur[ts].max().to_pydatetime())
        per: dict[str, Any] = {}
        for name, kind in feats:
            if kind == "numeric":
                result = psi_numeric(
                    ref[name].astype("float64"), cur[name].astype("float64")
                )
            else:
                result = psi_categorical(ref[name], cur[name])
            psi = result["psi"]
            per[name] = {
                "kind": kind,
                **result,
                "drifted": psi is not None and psi > PSI_THRESHOLD,
                "rows": {"reference": len(ref), "current": len(cur)},
                "reference_stats": _stats(ref, name, kind) if len(ref) else {},
                "current_stats": _stats(cur, name, kind) if len(cur) else {},
            }
        out[view.name] = per
    return out


# ------------------------------------------------------------ online null/latency


def latency_percentiles(samples_ms: Sequence[float]) -> dict[str, Any]:
    import numpy as np

    if not samples_ms:
        return {"reads": 0, "p50": None, "p95": None, "p99": None}
    arr = np.asarray(samples_ms, dtype="float64")
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "reads": int(arr.size),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(arr.max()), 3),
    }


def _entity_sample(
    store: FeatureStore, view: FeatureView, *, now: datetime, limit: int, seed: int
) -> list[dict[str, Any]]:
    from feature_platform.governance import recent_entity_rows

    rows = recent_entity_rows(store, view, now=now, limit=limit)
    import random

    random.Random(seed).shuffle(rows)
    return rows


def online_health(
    store: FeatureStore,
    views: Sequence[FeatureView],
    *,
    now: datetime,
    sample: int = 200,
    latency_reads: int = 100,
    time_budget_s: float = 10.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Null and expired rates of a sample of online values, and read latency.

    The sample is the entities with a source row within the view's ttl (what
    the online store should serve). A value is *expired* when its event time is
    older than the ttl (Feast still returns it, feast#6821; the platform's read
    path nulls it). Latency is measured on ``latency_reads`` single-entity reads
    through the platform's read path, stopped early after ``time_budget_s``.
    """
    from feature_platform.online import read_online

    out: dict[str, Any] = {}
    all_ms: list[float] = []
    for view in views:
        keys = _entity_sample(store, view, now=now, limit=sample, seed=seed)
        names = [f.name for f in view.features]
        refs = [f"{view.name}:{n}" for n in names]
        entry: dict[str, Any] = {"entities_sampled": len(keys)}
        if keys:
            got = store.get_online_features(features=refs, entity_rows=keys).to_dict(
                include_event_timestamps=True
            )
            ttl_s = (view.ttl or timedelta(0)).total_seconds()
            null_rate, expired_rate = {}, {}
            for n in names:
                values, stamps = got[n], got.get(f"{n}__ts", [0] * len(keys))
                missing = sum(v is None for v in values)
                expired = sum(
                    1
                    for v, ts in zip(values, stamps, strict=True)
                    if v is not None and ttl_s and ts and now.timestamp() - ts > ttl_s
                )
                null_rate[n] = round(missing / len(keys), 4)
                expired_rate[n] = round(expired / len(keys), 4)
            entry["null_rate"] = null_rate
            entry["expired_rate"] = expired_rate
        samples: list[float] = []
        deadline = time.perf_counter() + time_budget_s
        for row in keys[:latency_reads]:
            t0 = time.perf_counter()
            read_online(store, [row], features=refs)
            samples.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() > deadline:
                break
        entry["latency_ms"] = latency_percentiles(samples)
        entry["latency_samples_ms"] = [round(s, 3) for s in samples]
        all_ms += samples
        out[view.name] = entry
    return {"views": out, "latency_ms": latency_percentiles(all_ms)}


# --------------------------------------------------------------------- the report


def default_windows(
    *, now: datetime, model_dir: Path | None = None, current: timedelta | None = None
) -> tuple[Window, Window]:
    """Reference = the model's training window (metadata.json) or the 30 days
    before the current window; current = the last day. They never overlap."""
    current_len = current or timedelta(days=1)
    cur = Window(now - current_len, now, "latest")
    meta_path = (model_dir or artifacts_dir() / "churn_model") / "metadata.json"
    ref: Window | None = None
    if meta_path.is_file():
        try:
            tw = json.loads(meta_path.read_text())["training_window"]
            start = datetime.fromisoformat(tw["start"])
            end = min(datetime.fromisoformat(tw["end"]), cur.start)
            if start < end:
                ref = Window(start, end, f"training window ({meta_path})")
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignoring training window in %s: %s", meta_path, exc)
    if ref is None:
        ref = Window(cur.start - timedelta(days=30), cur.start, "30 days before latest")
    return ref, cur


def run_monitor(
    store: FeatureStore,
    *,
    now: datetime | None = None,
    reference: Window | None = None,
    current: Window | None = None,
    views: Iterable[str] | None = None,
    sample: int = 200,
    latency_reads: int = 100,
    max_rows: int = MAX_ROWS_PER_WINDOW,
    seed: int = 0,
) -> dict[str, Any]:
    """Freshness, drift, online null rate and latency of the online views."""
    from feature_platform.materialize import online_views

    now = ensure_utc(now, "now") if now else utc_now()
    store.refresh_registry()
    selected = online_views(store, views)
    if reference is None or current is None:
        ref_default, cur_default = default_windows(now=now)
        reference = reference or ref_default
        current = current or cur_default
    report: dict[str, Any] = {
        "generated_at": now.isoformat(),
        "project": store.project,
        "psi_threshold": PSI_THRESHOLD,
        "windows": {"reference": reference.as_dict(), "current": current.as_dict()},
        "freshness": freshness(store, selected, now=now),
    }
    newest: dict[str, datetime | None] = {}
    report["drift"] = drift(
        store,
        selected,
        reference=reference,
        current=current,
        max_rows=max_rows,
        seed=seed,
        newest=newest,
    )
    for name, entry in report["freshness"].items():
        # Feast's DuckDB hook needs file_format=ParquetFormat() on the source;
        # otherwise the newest event of the current window stands in.
        if entry["source_newest_event"] is None and newest.get(name):
            ts = newest[name]
            assert ts is not None
            entry["source_newest_event"] = ts.isoformat()
            entry["source_lag_seconds"] = round((now - ts).total_seconds(), 1)
    online = online_health(
        store, selected, now=now, sample=sample, latency_reads=latency_reads, seed=seed
    )
    report["online"] = online["views"]
    report["latency_ms"] = online["latency_ms"]
    report["alerts"] = _alerts(report)
    report["ok"] = not report["alerts"]
    return report


def _alerts(report: dict[str, Any]) -> list[str]:
    alerts = []
    for view, f in report["freshness"].items():
        if f["last_materialized_end"] is None:
            alerts.append(f"freshness: {view} was never materialized")
        elif f["stale"]:
            alerts.append(
                f"freshness: {view} last materialized {f['age_seconds'] / 3600:.1f} h "
                f"ago, more than ttl/3 = {f['threshold_seconds'] / 3600:.1f} h"
            )
    for view, feats in report["drift"].items():
        for name, d in feats.items():
            if d["drifted"]:
                alerts.append(
                    f"drift: {view}:{name} PSI {d['psi']:.3f} > {PSI_THRESHOLD}"
                )
    return alerts


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
    ax.set_xlabel("hours since last materialized end (dashed: ttl/3, solid: ttl)")
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
    rows = []
    for view, entry in report["online"].items():
        lat = entry["latency_ms"]
        nulls = entry.get("null_rate", {})
        expired = entry.get("expired_rate", {})
        rows.append(
            [
                e(view),
                entry["entities_sampled"],
                ", ".join(f"{e(k)} {v:.1%}" for k, v in nulls.items()) or "–",
                ", ".join(f"{e(k)} {v:.1%}" for k, v in expired.items() if v) or "0",
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
                "entities",
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
    parts.append(_plot_latency(report["online"]))
    parts.append("</body></html>")
    return "\n".join(parts)
