"""``run_monitor``: freshness, drift, served null rate and latency in one report,
with the alerts of ``operations.MONITORING``'s thresholds."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from feature_platform.monitoring.collect import (
    Latency,
    ViewFreshness,
    ViewHealth,
    freshness,
    online_health,
)
from feature_platform.monitoring.drift import (
    MAX_ROWS_PER_WINDOW,
    PSI_THRESHOLD,
    FeatureDrift,
    drift,
    on_demand_drift,
    reference_outputs,
)
from feature_platform.monitoring.thresholds import Policy, load_policy
from feature_platform.monitoring.traffic import (
    ServedLatency,
    ServedTraffic,
    ServedView,
    ServerCounters,
    parse_metrics,
    scrape,
    served_traffic,
)
from feature_platform.monitoring.window import Window, WindowDict, default_windows
from feature_platform.utc import ensure_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView, OnDemandFeatureView

__all__ = ["MonitorReport", "OnlineSource", "alerts", "run_monitor"]

log = logging.getLogger(__name__)


class OnlineSource(TypedDict):
    """Where the report's null rates and latency come from."""

    kind: Literal["server", "probes"]
    note: str


class MonitorReport(TypedDict):
    """What ``run_monitor`` returns (JSON-able; ``monitor.json`` holds it)."""

    generated_at: str  # ISO-8601 UTC
    project: str
    psi_threshold: float
    windows: dict[str, WindowDict]  # reference, current
    freshness: dict[str, ViewFreshness]
    drift: dict[str, dict[str, FeatureDrift]]  # view -> feature -> drift
    online_source: OnlineSource
    # view -> null rate, ...: served traffic (kind server), else probe reads
    online: dict[str, ServedView] | dict[str, ViewHealth]
    latency_ms: ServedLatency | Latency
    served: NotRequired[ServedTraffic]  # kind server: with the server's counters
    alerts: list[str]
    ok: bool


_NO_SERVER = (
    "no feature server configured (FP_MONITOR_SERVER_URL): null rates and "
    "latency come from probe reads by the monitor, not from served traffic"
)


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
    server_url: str | None = None,
    previous: ServerCounters | None = None,
    policy: Policy | None = None,
) -> MonitorReport:
    """Freshness, drift, served null rate and latency of the online views.

    Null rates and latency come from the feature server's ``/metrics`` at
    ``server_url`` (default ``FP_MONITOR_SERVER_URL``): the traffic since
    ``previous`` (the last run's counters) or since the server started. With
    no server, from probe reads (``online_health``), and the report says so.

    ``views`` names stored and on-demand views. An on-demand view's outputs
    are monitored from served traffic only: their null rate, and their drift
    (``drift.on_demand_drift``: the served values' bins against the outputs of
    its reference requests in the reference window).
    """
    from feature_platform.offline import online_views
    from feature_platform.settings import settings

    now = ensure_utc(now, "now") if now else utc_now()
    policy = policy or load_policy()
    server_url = server_url or settings().monitor_server_url
    store.refresh_registry()
    wanted = None if views is None else set(views)
    on_demand = [
        v
        for v in store.list_on_demand_feature_views()
        if wanted is None or v.name in wanted
    ]
    selected = online_views(
        store, None if wanted is None else wanted - {v.name for v in on_demand}
    )
    if reference is None or current is None:
        ref_default, cur_default = default_windows(now=now, store=store)
        reference = reference or ref_default
        current = current or cur_default
    fresh = freshness(
        store,
        selected,
        now=now,
        max_age={v.name: policy.view(v.name).max_age for v in selected},
    )
    newest: dict[str, datetime | None] = {}
    drifts = drift(
        store,
        selected,
        reference=reference,
        current=current,
        max_rows=max_rows,
        seed=seed,
        newest=newest,
    )
    for name, entry in fresh.items():
        # Feast's DuckDB hook needs file_format=ParquetFormat() on the source;
        # otherwise the newest event of the current window stands in.
        if entry["source_newest_event"] is None and newest.get(name):
            ts = newest[name]
            assert ts is not None
            entry["source_newest_event"] = ts.isoformat()
            entry["source_lag_seconds"] = round((now - ts).total_seconds(), 1)
    served: ServedTraffic | None = None
    online: dict[str, ServedView] | dict[str, ViewHealth]
    latency: ServedLatency | Latency
    online_source: OnlineSource
    if server_url:
        # On-demand views too: their outputs' nulls and values are counted as
        # served.
        served = _served_from_server([*selected, *on_demand], server_url, previous)
        for odfv in on_demand:
            drifts[odfv.name] = _on_demand_drift(
                store,
                odfv,
                served["views"].get(odfv.name),
                reference,
                policy,
                max_rows=max_rows,
                seed=seed,
            )
        online_source = {
            "kind": "server",
            "note": f"served traffic of {served['url']} since {served['since']}",
        }
        online, latency = served["views"], served["latency_ms"]
    else:
        probes = online_health(
            store,
            selected,
            now=now,
            sample=sample,
            latency_reads=latency_reads,
            seed=seed,
        )
        online_source = {"kind": "probes", "note": _NO_SERVER}
        online, latency = probes["views"], probes["latency_ms"]
    for view, feats in drifts.items():
        for name, d in feats.items():
            ceiling = policy.view(view).psi_ceiling(name)
            d["threshold"] = ceiling
            d["drifted"] = bool(
                ceiling is not None and d["psi"] is not None and d["psi"] > ceiling
            )
    report: MonitorReport = {
        "generated_at": now.isoformat(),
        "project": store.project,
        "psi_threshold": PSI_THRESHOLD,
        "windows": {"reference": reference.as_dict(), "current": current.as_dict()},
        "freshness": fresh,
        "drift": drifts,
        "online_source": online_source,
        "online": online,
        "latency_ms": latency,
        "alerts": [],
        "ok": True,
    }
    if served is not None:
        report["served"] = served
    report["alerts"] = alerts(report, policy)
    report["ok"] = not report["alerts"]
    return report


def _profiled(view: FeatureView | OnDemandFeatureView) -> list[str]:
    from feature_platform.pii import pii_fields

    pii = set(pii_fields(view))
    return [f.name for f in view.features if f.name not in pii]


def _on_demand_drift(
    store: FeatureStore,
    view: OnDemandFeatureView,
    served: ServedView | None,
    reference: Window,
    policy: Policy,
    *,
    max_rows: int,
    seed: int,
) -> dict[str, FeatureDrift]:
    """Drift of an on-demand view's numeric outputs from served traffic; none
    without reference requests (``operations.MONITORING``)."""
    import pandas as pd
    from feast.monitoring.metrics_calculator import MetricsCalculator

    from feature_platform.profiles import data_dir

    source = policy.view(view.name).reference_requests
    if source is None:
        return {}
    profiled = set(_profiled(view))
    names = [
        f.name
        for f in view.features
        if f.name in profiled
        and MetricsCalculator.classify_feature(f.dtype) == "numeric"
    ]
    path = data_dir() / source
    if not path.is_file():  # reported (no PSI), not a failed monitor run
        log.warning("%s: reference requests %s not found", view.name, path)
        return on_demand_drift(
            pd.DataFrame(), served, names, note=f"reference requests {path} not found"
        )
    outputs = reference_outputs(
        store, view, pd.read_parquet(path), reference, max_rows=max_rows, seed=seed
    )
    return on_demand_drift(outputs, served, names)


def _served_from_server(
    views: list[FeatureView | OnDemandFeatureView],
    url: str,
    previous: ServerCounters | None,
) -> ServedTraffic:
    counters = parse_metrics(scrape(url))
    return served_traffic(
        counters,
        previous=previous,
        features={v.name: _profiled(v) for v in views},
        url=url,
    )


def alerts(report: MonitorReport, policy: Policy) -> list[str]:
    """One line per crossed threshold (freshness, null rate, drift, latency)."""
    out = []
    for view, f in report["freshness"].items():
        age, limit = f["age_seconds"], f["threshold_seconds"]
        if f["last_materialized_end"] is None or age is None:
            out.append(f"freshness: {view} was never materialized")
        elif f["stale"] and limit is not None:  # stale with an age: a limit
            out.append(
                f"freshness: {view} last materialized {age / 3600:.1f} h "
                f"ago, more than {limit / 3600:.1f} h"
            )
    source = report["online_source"]["kind"]
    for view, entry in report["online"].items():
        rates: Mapping[str, float | None] = entry.get("null_rate") or {}
        for name, rate in rates.items():
            # served values of this feature (server), else entities probed
            if "values" in entry:
                seen = entry["values"].get(name, 0)
            else:
                seen = entry.get("entities_sampled", 0)
            ceiling = policy.view(view).null_ceiling(name)
            if seen < policy.min_reads:
                continue
            if ceiling is not None and rate is not None and rate > ceiling:
                out.append(
                    f"null rate: {view}:{name} {rate:.1%} of {seen} "
                    f"{'served' if source == 'server' else 'probed'} values "
                    f"> {ceiling:.1%}"
                )
    for view, feats in report["drift"].items():
        for name, d in feats.items():
            if d["drifted"]:
                out.append(
                    f"drift: {view}:{name} PSI {d['psi']:.3f} > {d['threshold']}"
                )
    lat = report["latency_ms"]
    if (
        source == "server"
        and policy.latency_p99_ms is not None
        and lat["reads"] >= policy.min_reads
        and lat["p99"] is not None
        and lat["p99"] > policy.latency_p99_ms
    ):
        out.append(
            f"latency: p99 {lat['p99']:.1f} ms over {lat['reads']} served reads "
            f"> {policy.latency_p99_ms:.1f} ms"
        )
    return out
