"""The monitoring HTML report escapes every value it shows (Jinja2 autoescape)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from feature_platform.monitoring.report import render_html

EVIL = "<script>alert(1)</script>"


def _report(served: bool) -> dict[str, Any]:
    drift = {
        "kind": "categorical",
        "psi": 0.4,
        "drifted": True,
        "reference_stats": {"mean": None, "null_rate": 0.0},
        "current_stats": {"mean": None, "null_rate": 0.1},
        "rows": {"reference": 10, "current": 12},
        "bins": [EVIL, "grocery", "(null)"],
        "reference": [0.5, 0.4, 0.1],
        "current": [0.2, 0.7, 0.1],
    }
    return {
        "project": EVIL,
        "generated_at": "2026-12-07T20:00:00+00:00",
        "windows": {
            "reference": {"start": "a", "end": "b", "source": EVIL},
            "current": {"start": "c", "end": "d"},
        },
        "alerts": [f"drift: {EVIL}"],
        "freshness": {
            EVIL: {
                "last_materialized_end": None,
                "age_seconds": None,
                "threshold_seconds": 3600.0,
                "ttl_seconds": 10800.0,
                "source_newest_event": EVIL,
                "stale": True,
            }
        },
        "drift": {EVIL: {EVIL: drift}},
        "online_source": {"kind": "server" if served else "probes", "note": EVIL},
        "online": {
            EVIL: {
                # cells the old f-string table printed unescaped
                "rows": EVIL,
                "entities_sampled": EVIL,
                "null_rate": {EVIL: 0.5},
                "expired_rate": {EVIL: 0.25},
                "latency_ms": {"reads": 3, "p50": 1.0, "p95": 2.0, "p99": 3.0},
                "latency_samples_ms": [1.0, 2.0, 3.0],
            }
        },
        "latency_ms": {"reads": 3, "p50": 1.0, "p95": 2.0, "p99": 3.0, "method": EVIL},
        "served": {"requests": {EVIL: 3}},
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_every_value_is_escaped() -> None:
    """Project, view, feature, category, alert, note and status names holding a
    script come out as text: no <script> element, the text visible as written."""
    for served in (True, False):
        page = render_html(_report(served))
        parser = _Tags()
        parser.feed(page)
        assert "script" not in parser.tags
        assert "<script" not in page
        text = "".join(parser.text)
        # each value appears as text: title, h1, windows, alert, freshness row,
        # drift row, the category caption, online row, note (+ status, method)
        assert text.count(EVIL) >= 10
        assert f"{EVIL}, grocery, (null)" in text  # the categories, as text
        assert "&lt;script&gt;" in page
