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
from typing import Any

from feature_platform.monitoring.report import write_report
from feature_platform.monitoring.traffic import ServerCounters

__all__ = [
    "alert_message",
    "monitor_and_publish",
    "previous_counters",
    "publish_report",
]

log = logging.getLogger(__name__)
MAX_LINES = 30  # a chat message stays readable; the report has everything


def _out(out_dir: Path | str | None) -> Path:
    from feature_platform.config import artifacts_dir

    return Path(out_dir) if out_dir else artifacts_dir() / "monitoring"


def publish_report(
    report: dict[str, Any], out_dir: Path | str | None = None
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


def alert_message(report: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """One notifier message listing every alert of the run."""
    lines = [
        f":warning: feature monitoring ({report['project']}): "
        f"{len(report['alerts'])} alert(s) at {report['generated_at']}",
        *[f"• {a}" for a in report["alerts"]],
        f"report: {paths['html']}",
    ]
    return {
        "text": "\n".join(lines[:MAX_LINES])
        + (f"\n… {len(lines) - MAX_LINES} more" if len(lines) > MAX_LINES else ""),
        "feature_platform": {
            "event": "monitor_alert",
            "project": report["project"],
            "generated_at": report["generated_at"],
            "alerts": report["alerts"],
            "online_source": report.get("online_source", {}).get("kind"),
            "report": paths,
        },
    }


def monitor_and_publish(
    store: Any, *, out_dir: Path | str | None = None, notify: bool = True, **kwargs: Any
) -> dict[str, Any]:
    """Run the monitor (``run_monitor`` keywords), publish, alert; returns a
    small JSON-able summary (what the DAG passes by XCom)."""
    from feature_platform.monitoring.monitor import run_monitor
    from feature_platform.notify import post_message

    kwargs.setdefault("previous", previous_counters(out_dir))
    report = run_monitor(store, **kwargs)
    paths = publish_report(report, out_dir)
    sent: dict[str, Any] = {"sent": False}
    if report["alerts"] and notify:
        sent = post_message(alert_message(report, paths))
    return {
        "ok": report["ok"],
        "alerts": report["alerts"],
        "online_source": report["online_source"],
        "latency_ms": report["latency_ms"],
        "report": paths,
        "notified": sent.get("sent", False),
    }
