"""Monitoring: freshness, online null rate, drift (PSI) and online read latency.

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
* ``report``: the JSON and HTML files.

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
from feature_platform.monitoring.monitor import run_monitor
from feature_platform.monitoring.report import render_html, write_report
from feature_platform.monitoring.window import Window, default_windows

__all__ = [
    "FRESHNESS_FRACTION",
    "MAX_ROWS_PER_WINDOW",
    "PSI_THRESHOLD",
    "Window",
    "default_windows",
    "drift",
    "freshness",
    "latency_percentiles",
    "online_health",
    "psi_categorical",
    "psi_numeric",
    "render_html",
    "run_monitor",
    "write_report",
]
