"""Monitoring: PSI drift, freshness, online null rate, latency, the HTML report."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform.config import NaiveTimestampError
from feature_platform.materialize import materialize_window
from feature_platform.monitoring import (
    PSI_THRESHOLD,
    Window,
    latency_percentiles,
    psi_categorical,
    psi_numeric,
    run_monitor,
    write_report,
)
from tests.conftest import TEST_END

RNG = np.random.default_rng(0)
BASE = RNG.normal(40.0, 10.0, 20_000)


@pytest.mark.parametrize(
    ("current", "low", "high"),
    [
        (RNG.normal(40.0, 10.0, 5_000), 0.0, 0.02),  # same distribution
        (RNG.normal(42.5, 10.0, 5_000), 0.03, 0.12),  # quarter sd: PSI ~ d^2
        (RNG.normal(50.0, 10.0, 5_000), 0.2, 10.0),  # one sd: drift
        (RNG.normal(40.0, 25.0, 5_000), 0.2, 10.0),  # wider spread: drift
    ],
)
def test_psi_numeric_on_shifted_data(current, low, high) -> None:
    result = psi_numeric(BASE, current)
    assert low <= result["psi"] < high
    assert len(result["bins"]) == 10 and sum(result["reference"]) == pytest.approx(1)


def test_psi_numeric_nulls_get_their_own_bin() -> None:
    ref = np.append(BASE, [np.nan] * 200)  # 1 % nulls
    cur = np.append(RNG.normal(40.0, 10.0, 4_000), [np.nan] * 1_000)  # 20 % nulls
    result = psi_numeric(ref, cur)
    assert result["bins"][-1] == "(null)"
    assert result["current"][-1] == pytest.approx(0.2)
    assert result["psi"] > PSI_THRESHOLD  # only the null share moved


def test_psi_numeric_discrete_values_dedupe_edges() -> None:
    ref = RNG.poisson(2, 10_000)
    result = psi_numeric(ref, RNG.poisson(2, 3_000))
    assert len(result["edges"]) == len(set(result["edges"])) < 9
    assert result["psi"] < 0.02


@pytest.mark.parametrize(
    ("current", "drifted"),
    [
        (["home"] * 500 + ["sports"] * 500, False),
        (["home"] * 900 + ["sports"] * 100, True),
        (["home"] * 500 + ["garden"] * 500, True),  # unseen value -> (other)
        (["home"] * 400 + [None] * 600, True),
    ],
)
def test_psi_categorical(current, drifted) -> None:
    result = psi_categorical(["home"] * 5_000 + ["sports"] * 5_000, current)
    assert (result["psi"] > PSI_THRESHOLD) is drifted
    if "garden" in current:
        assert "(other)" in result["bins"]


def test_latency_percentiles() -> None:
    got = latency_percentiles([float(x) for x in range(1, 101)])
    assert got["reads"] == 100
    assert got["p50"] == pytest.approx(50.5)
    assert got["p95"] == pytest.approx(95.05)
    assert got["p99"] == pytest.approx(99.01)
    assert latency_percentiles([])["p50"] is None


def test_windows_are_utc() -> None:
    with pytest.raises(NaiveTimestampError):
        Window(TEST_END.replace(tzinfo=None) - timedelta(days=1), TEST_END)
    with pytest.raises(ValueError, match="empty window"):
        Window(TEST_END, TEST_END)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, bytes]] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert a["src"].startswith(prefix)
            self.images.append((a["alt"], base64.b64decode(a["src"][len(prefix) :])))
        self._in_h2 = tag == "h2"

    def handle_data(self, data) -> None:
        if self._in_h2:
            self.headings.append(data)

    def handle_endtag(self, tag) -> None:
        self._in_h2 = False


def test_monitor_flags_shifted_data_stale_views_and_renders(
    local_store, local_repo: Path, tmp_path: Path
) -> None:
    store = local_store
    # customer_stats fresh (3 h < 4.5 h), driver_stats stale (3 h > 2.5 h).
    materialize_window(
        store, TEST_END - timedelta(days=3), TEST_END - timedelta(hours=3)
    )
    reference = Window(TEST_END - timedelta(days=15), TEST_END - timedelta(days=1))
    current = Window(TEST_END - timedelta(days=1), TEST_END)
    kwargs = dict(
        now=TEST_END, reference=reference, current=current, sample=100, latency_reads=30
    )
    before = run_monitor(store, **kwargs)

    # Shift the latest day of the source: bigger baskets, one category.
    path = local_repo / "data" / "customer_stats.parquet"
    df = pd.read_parquet(path)
    latest = df["event_timestamp"] >= current.start
    df.loc[latest, "avg_order_amount"] *= 1.8
    df.loc[latest, "preferred_category"] = "electronics"
    df.to_parquet(path, index=False)
    after = run_monitor(store, **kwargs)

    cust_before, cust_after = (
        before["drift"]["customer_stats"],
        after["drift"]["customer_stats"],
    )
    for name in ("avg_order_amount", "preferred_category"):
        assert not cust_before[name]["drifted"], cust_before[name]["psi"]
        assert cust_after[name]["drifted"] and cust_after[name]["psi"] > PSI_THRESHOLD
        assert f"drift: customer_stats:{name} PSI" in " ".join(after["alerts"])
    # Untouched features keep their PSI exactly; pii is never profiled.
    assert (
        cust_after["churn_risk_score"]["psi"] == cust_before["churn_risk_score"]["psi"]
    )
    assert "email" not in cust_after
    stats = cust_after["avg_order_amount"]
    assert stats["current_stats"]["mean"] > 1.5 * stats["reference_stats"]["mean"]

    fresh = after["freshness"]
    assert fresh["driver_stats"]["stale"] and not fresh["customer_stats"]["stale"]
    assert fresh["driver_stats"]["age_seconds"] == pytest.approx(3 * 3600)
    # operations.MONITORING: one 2-hour interval + 30 min
    assert fresh["driver_stats"]["threshold_seconds"] == 2.5 * 3600
    assert any(a.startswith("freshness: driver_stats") for a in after["alerts"])
    assert not after["ok"]

    online = after["online"]["customer_stats"]
    assert online["entities_sampled"] == 100
    assert 0 <= online["null_rate"]["total_orders"] < 0.1
    assert 0 < online["null_rate"]["preferred_category"] < 0.2  # ~3 % null source
    lat = after["latency_ms"]
    assert lat["reads"] == 60 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]

    paths = write_report(after, tmp_path / "report")
    report = json.loads(Path(paths["json"]).read_text())
    assert report["alerts"] == after["alerts"]
    page = Path(paths["html"]).read_text()
    assert "@example.com" not in page and "@example.com" not in json.dumps(report)
    parser = _Images()
    parser.feed(page)
    alts = [alt for alt, _ in parser.images]
    assert "freshness bars" in alts and "latency histogram" in alts
    assert "distribution customer_stats:avg_order_amount" in alts
    assert len([a for a in alts if a.startswith("distribution ")]) == 9
    assert all(
        png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
        for _, png in parser.images
    )
    assert {"Alerts", "Freshness", "Online store: null rate and latency"} <= set(
        parser.headings
    )
    assert "<script" not in page and "http://" not in page and "https://" not in page
