"""Monitoring: freshness, served null rate, drift (PSI) and read latency.

``run_monitor(store)`` (``monitor``) returns a JSON-able report;
``write_report`` (``report``) writes it as ``monitor.json`` plus a
self-contained ``monitor.html``. The parts:

* ``window``: the reference and current windows (``Window``,
  ``default_windows``: the model's training window, or the 30 days before the
  current day);
* ``drift``: PSI per feature on Feast's own per-window statistics
  (``MetricsCalculator``, the code behind ``feast monitor run``), which has no
  drift metric of its own;
* ``collect``: freshness (Feast's ``feast_feature_freshness_seconds`` plus the
  ttl/3 flag and the source's newest event), online null and expired rates (the
  platform's online-vs-offline sampler) and read latency;
* ``traffic``: null rates and p50/p95/p99 latency of the feature server's real
  traffic, from its ``GET /metrics`` (``feature_platform.serving.metrics``);
  probe reads (``collect.online_health``) only when no server is configured;
* ``thresholds``: the alert thresholds of ``feature_repo/operations.py``;
* ``report``: the JSON and HTML files; ``publish``: a scheduled run (latest +
  timestamped report, one alert message through ``feature_platform.notify``).

``pii``-tagged features are never profiled (their distributions would leak).
"""

from __future__ import annotations

from feature_platform.monitoring.collect import (
    FRESHNESS_FRACTION,
    freshness,
    latency_percentiles,
    online_health,
)
from feature_platform.monitoring.drift import (
    MAX_ROWS_PER_WINDOW,
    PSI_THRESHOLD,
    drift,
    psi_categorical,
    psi_numeric,
)
from feature_platform.monitoring.monitor import alerts, run_monitor
from feature_platform.monitoring.publish import (
    alert_message,
    monitor_and_publish,
    previous_counters,
    publish_report,
    send_alerts,
)
from feature_platform.monitoring.report import render_html, write_report
from feature_platform.monitoring.thresholds import Policy, ViewThresholds, load_policy
from feature_platform.monitoring.traffic import (
    ServerCounters,
    histogram_quantile,
    parse_metrics,
    scrape,
    served_traffic,
)
from feature_platform.monitoring.window import Window, default_windows

__all__ = [
    "FRESHNESS_FRACTION",
    "MAX_ROWS_PER_WINDOW",
    "PSI_THRESHOLD",
    "Policy",
    "ServerCounters",
    "ViewThresholds",
    "Window",
    "alert_message",
    "alerts",
    "default_windows",
    "drift",
    "freshness",
    "histogram_quantile",
    "latency_percentiles",
    "load_policy",
    "monitor_and_publish",
    "online_health",
    "parse_metrics",
    "previous_counters",
    "psi_categorical",
    "psi_numeric",
    "publish_report",
    "render_html",
    "run_monitor",
    "scrape",
    "send_alerts",
    "served_traffic",
    "write_report",
]
