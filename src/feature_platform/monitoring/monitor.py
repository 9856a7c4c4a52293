"""``run_monitor``: freshness, drift, online null rate and latency in one report."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc, utc_now
from feature_platform.monitoring.collect import freshness, online_health
from feature_platform.monitoring.drift import (
    MAX_ROWS_PER_WINDOW,
    PSI_THRESHOLD,
    drift,
)
from feature_platform.monitoring.window import Window, default_windows

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["run_monitor"]


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
    from feature_platform.offline import online_views

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
