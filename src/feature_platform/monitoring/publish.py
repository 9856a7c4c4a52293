"""A scheduled monitor run: run, publish the report, alert through the notifier.

``monitor_and_publish`` is what the ``feast_monitoring`` DAG and
``feature-platform monitor`` call. The report is published under the
artifacts dir (``artifacts/monitoring/`` by default):

* ``monitor.json`` / ``monitor.html``: the latest run (a stable path to link
  or serve);
* ``history/<UTC timestamp>/monitor.{json,html}``: a copy per run.

The served-traffic counters of each run are kept in its JSON; the next run
reads them from the latest report and reports the traffic in between.
Alerts (``report["alerts"]``) go out as one message through
``feature_platform.notify.post_message`` (the webhook the DAGs' failure alerts
use); a run without alerts sends nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from feature_platform.monitoring.report import write_report
from feature_platform.monitoring.traffic import ServerCounters

if TYPE_CHECKING:
    from feature_platform.monitoring.collect import Latency
    from feature_platform.monitoring.monitor import MonitorReport, OnlineSource
    from feature_platform.monitoring.traffic import ServedLatency
    from feature_platform.monitoring.window import WindowDict
    from feature_platform.notify import Delivery, Message

__all__ = [
    "FreshnessBrief",
    "MonitorSummary",
    "alert_message",
    "monitor_and_publish",
    "previous_counters",
    "publish_report",
    "send_alerts",
]

log = logging.getLogger(__name__)
MAX_LINES = 30  # a chat message stays readable; the report has everything


class FreshnessBrief(TypedDict):
    """A view's freshness in a summary (``collect.ViewFreshness`` has it all)."""

    age_seconds: float | None
    threshold_seconds: float | None
    stale: bool


class MonitorSummary(TypedDict):
    """A monitor run in brief: what ``feature-platform monitor`` prints, the DAG
    passes by XCom and the alert message is built from (the full report is in
    ``report``'s files)."""

    project: str
    generated_at: str
    ok: bool
    alerts: list[str]
    notified: bool
    online_source: OnlineSource
    windows: dict[str, WindowDict]
    freshness: dict[str, FreshnessBrief]
    psi: dict[str, float | None]  # "view:feature" -> PSI
    # view -> feature -> rate (None: the feature was not served)
    online_null_rate: dict[str, dict[str, float | None]]
    latency_ms: ServedLatency | Latency
    report: dict[str, str]  # json, html, history_json, history_html


def summarize(report: MonitorReport, paths: dict[str, str]) -> MonitorSummary:
    """The brief of ``report`` published at ``paths`` (not yet notified)."""
    return {
        "project": report["project"],
        "generated_at": report["generated_at"],
        "ok": report["ok"],
        "alerts": report["alerts"],
        "notified": False,
        "online_source": report["online_source"],
        "windows": report["windows"],
        "freshness": {
            v: {
                "age_seconds": f["age_seconds"],
                "threshold_seconds": f["threshold_seconds"],
                "stale": f["stale"],
            }
            for v, f in report["freshness"].items()
        },
        "psi": {
            f"{v}:{n}": d["psi"]
            for v, feats in report["drift"].items()
            for n, d in feats.items()
        },
        "online_null_rate": {
            v: dict(e.get("null_rate", {}).items()) for v, e in report["online"].items()
        },
        "latency_ms": report["latency_ms"],
        "report": paths,
    }


def _out(out_dir: Path | str | None) -> Path:
    from feature_platform.profiles import artifacts_dir

    return Path(out_dir) if out_dir else artifacts_dir() / "monitoring"


def publish_report(
    report: MonitorReport, out_dir: Path | str | None = None
) -> dict[str, str]:
    """Write the latest report and its timestamped copy; returns the paths."""
    out = _out(out_dir)
    stamp = report["generated_at"].replace("+00:00", "Z").replace(":", "")
    stamp = stamp.replace("-", "")
    latest = write_report(report, out)
    history = write_report(report, out / "history" / stamp)
    return {
        "json": latest["json"],
        "html": latest["html"],
        "history_json": history["json"],
        "history_html": history["html"],
    }


def previous_counters(out_dir: Path | str | None = None) -> ServerCounters | None:
    """The served-traffic counters of the latest published report, if any."""
    path = _out(out_dir) / "monitor.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())["served"]["counters"]
    except (KeyError, TypeError, ValueError):
        return None  # a probe-only report, or unreadable: count from server start
    return ServerCounters.from_dict(raw)


def alert_message(summary: MonitorSummary) -> Message:
    """One notifier message listing every alert of a run (its summary)."""
    lines = [
        f":warning: feature monitoring ({summary['project']}): "
        f"{len(summary['alerts'])} alert(s) at {summary['generated_at']}",
        *[f"• {a}" for a in summary["alerts"]],
    ]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… {len(lines) - MAX_LINES} more"]
    lines.append(f"report: {summary['report']['html']}")
    return {
        "text": "\n".join(lines),
        "feature_platform": {"event": "monitor_alert", **summary},
    }


def monitor_and_publish(
    store: Any, *, out_dir: Path | str | None = None, notify: bool = True, **kwargs: Any
) -> MonitorSummary:
    """Run the monitor (``run_monitor`` keywords), publish, alert; returns the
    run's brief (what the CLI prints and the DAG passes by XCom)."""
    from feature_platform.monitoring.monitor import run_monitor

    kwargs.setdefault("previous", previous_counters(out_dir))
    report = run_monitor(store, **kwargs)
    summary = summarize(report, publish_report(report, out_dir))
    if notify:
        summary["notified"] = send_alerts(summary)["sent"]
    return summary


def send_alerts(summary: MonitorSummary) -> Delivery:
    """Post the run's alerts through the notifier; nothing when there are none."""
    from feature_platform.notify import post_message

    if not summary["alerts"]:
        return {"sent": False, "target": None}
    return post_message(alert_message(summary))
