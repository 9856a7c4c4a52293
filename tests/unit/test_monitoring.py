"""Monitoring: PSI drift, freshness, online null rate, latency, the HTML report."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform.errors import NaiveTimestampError
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


# ------------------------------------------------- served traffic and thresholds


def _view_read(name: str, features: tuple[str, ...], columns, stale):
    from feature_platform.online_store.reader import ViewPlan, ViewRead

    plan = ViewPlan(
        name=name,
        join_key="id",
        value_type=0,
        prefix=b"",
        features=features,
        outputs=features,
        value_types=(),
        command_tail=b"",
        nargs=0,
        ttl_s=None,
    )
    return ViewRead(plan=plan, values=columns, raw=[], stamps=[], stale=stale)


@pytest.mark.parametrize(
    ("q", "want"),
    [
        # 10 in (0, 1], 10 in (1, 2], 0 in (2, 5], 0 in (5, +Inf)
        (0.25, 0.5),  # rank 5 of 10 in the first bucket, from 0
        (0.5, 1.0),
        (0.75, 1.5),  # rank 15: halfway through (1, 2]
        (1.0, 2.0),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(q: float, want: float) -> None:
    from feature_platform.monitoring import histogram_quantile

    buckets = [(1.0, 10.0), (2.0, 20.0), (5.0, 20.0), (float("inf"), 20.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(want)


def test_histogram_quantile_edges() -> None:
    from feature_platform.monitoring import histogram_quantile

    assert histogram_quantile(0.99, []) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    # a rank in +Inf answers the highest finite bound (as Prometheus does)
    assert histogram_quantile(0.99, [(1.0, 1.0), (float("inf"), 10.0)]) == 1.0
    with pytest.raises(ValueError, match="quantile 1.5"):
        histogram_quantile(1.5, [(1.0, 1.0)])


def _baseline(metrics, views: dict[str, tuple[str, ...]]):
    """The counters' starting values. With prometheus_client in multiprocess
    mode (``feast.metrics`` turns it on when it is imported first) every metric
    of one name and labels in a process shares one value, so a second app in a
    test process starts where the first left off: measure from there."""
    from feature_platform.monitoring import parse_metrics

    read = "/get-online-features"
    for endpoint, status in ((read, "200"), (read, "404"), (read, "422")):
        metrics.requests.labels(endpoint, status)
    metrics.requests.labels("/push", "200")
    metrics.latency.labels(read)
    metrics.latency.labels("/push")
    for view, features in views.items():
        metrics.rows.labels(view, ",".join(features))
        metrics.expired.labels(view)
        for feature in features:
            metrics.nulls.labels(view, feature)
    return parse_metrics(metrics.exposition()[0].decode())


def test_served_counts_round_trip_through_the_exposition() -> None:
    """ServingMetrics -> Prometheus text -> parse_metrics -> served_traffic."""
    from feature_platform.monitoring import parse_metrics, served_traffic
    from feature_platform.serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    zero = _baseline(metrics, {"v": ("a", "b")})
    for seconds in (0.0008, 0.0012, 0.004, 0.2):
        metrics.observe_request("/get-online-features", 200, seconds)
    metrics.observe_request("/get-online-features", 404, 0.0009)
    metrics.observe_request("/push", 200, 0.003)
    metrics.observe_view(
        _view_read("v", ("a", "b"), [[1, None, None], [None, "x", "y"]], [0, 1, 0])
    )
    metrics.observe_view(_view_read("v", ("a", "b"), [[2], [None]], [False]))
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    counters = parse_metrics(body.decode()).minus(zero)
    assert counters is not None
    assert counters.rows == {"v": {"a,b": 4.0}}
    assert counters.nulls == {"v": {"a": 2.0, "b": 2.0}}
    assert counters.expired == {"v": 1.0}
    report = served_traffic(
        counters, previous=None, features={"v": ["a", "b", "c"]}, url="http://h:1"
    )
    assert report["requests"] == {"200": 4, "404": 1, "422": 0}
    assert report["latency_ms"]["reads"] == 5
    # c was not requested: no served values, no rate (not 0 %)
    assert report["views"]["v"]["values"] == {"a": 4, "b": 4, "c": 0}
    assert report["views"]["v"]["null_rate"] == {"a": 0.5, "b": 0.5, "c": None}
    assert report["views"]["v"]["expired_rate"] == 0.25
    # 5 reads: p50 (rank 2.5) in (1, 1.5] ms: 2 below 1 ms, 1 in the bucket
    assert 1.0 < report["latency_ms"]["p50"] <= 1.5

    # The next run subtracts this run's counters; a restart starts over.
    metrics.observe_view(_view_read("v", ("a", "b"), [[None], [None]], [False]))
    later = parse_metrics(metrics.exposition()[0].decode()).minus(zero)
    assert later is not None
    delta = served_traffic(later, previous=counters, features={"v": ["a"]}, url="x")
    assert delta["since"] == "previous monitor run"
    assert delta["views"]["v"] == {
        "rows": 1,
        "values": {"a": 1},
        "nulls": {"a": 1},
        "null_rate": {"a": 1.0},
        "expired_rate": 0.0,
    }
    assert delta["latency_ms"]["reads"] == 0 and delta["latency_ms"]["p99"] is None
    restarted = served_traffic(counters, previous=later, features={}, url="x")
    assert restarted["since"].startswith("server start (counters went down")


def test_metrics_middleware_times_reads_with_their_status() -> None:
    import asyncio

    import httpx
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from feature_platform.monitoring import parse_metrics
    from feature_platform.serving.metrics import mount_metrics

    api = FastAPI()

    async def read(request: Request) -> JSONResponse:
        return JSONResponse({}, status_code=int(request.headers["x-status"]))

    api.add_route("/get-online-features", read, methods=["POST"])

    metrics = mount_metrics(api)
    zero = _baseline(metrics, {})

    async def go() -> str:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for status in ("200", "200", "422"):
                await c.post("/get-online-features", headers={"x-status": status})
            await c.get("/health")
            return (await c.get("/metrics")).text

    counters = parse_metrics(asyncio.run(go())).minus(zero)
    assert counters is not None
    assert counters.requests["/get-online-features"] == {
        "200": 2.0,
        "404": 0.0,
        "422": 1.0,
    }
    assert counters.latency_buckets["/get-online-features"][-1][1] == 3.0
    assert metrics.multiprocess is False


def _report(**online: dict) -> dict:
    return {
        "freshness": {},
        "drift": {"v": {"x": {"psi": 0.5, "drifted": False, "threshold": None}}},
        "online_source": {"kind": "server"},
        "online": online,
        "latency_ms": {"reads": 40, "p99": 80.0},
    }


def test_alerts_follow_the_policy() -> None:
    from feature_platform.monitoring import Policy, ViewThresholds, alerts

    policy = Policy(
        latency_p99_ms=50.0,
        min_reads=20,
        views={"v": ViewThresholds(max_null_rate={"*": 0.1, "b": None})},
    )
    report = _report(
        v={
            "rows": 40,
            "values": {"a": 40, "b": 40, "c": 40},
            "null_rate": {"a": 0.25, "b": 0.9, "c": 0.05},
        }
    )
    assert alerts(report, policy) == [
        "null rate: v:a 25.0% of 40 served values > 10.0%",
        "latency: p99 80.0 ms over 40 served reads > 50.0 ms",
    ]
    # too few reads: reported, not alerted; probes never alert on latency
    few = _report(v={"rows": 5, "values": {"a": 5}, "null_rate": {"a": 1.0}})
    few["latency_ms"]["reads"] = 5
    assert alerts(few, policy) == []
    probes = _report(v={"entities_sampled": 100, "null_rate": {"a": 0.0}})
    probes["online_source"]["kind"] = "probes"
    assert alerts(probes, policy) == []


def test_policy_from_operations_covers_every_online_view() -> None:
    from feature_platform.definitions import load_definitions
    from feature_platform.monitoring import load_policy
    from feature_platform.schedules import load_schedules
    from tests.conftest import REPO_SRC

    policy = load_policy()
    definitions = load_definitions(REPO_SRC)
    online = {v.name: v for v in definitions.feature_views if v.online}
    on_demand = {v.name for v in definitions.on_demand_feature_views}
    assert set(policy.views) == set(online) | on_demand
    for name in on_demand:
        # drift from served traffic against the labelled checkouts the sample
        # data writes (request values with their keys and times)
        assert policy.view(name).reference_requests == "churn_labels.parquet"
    intervals = {
        v: s.interval for s in load_schedules().values() for v in s.feature_views
    }
    for name, view in online.items():
        thresholds = policy.view(name)
        # a normal run never alerts (older than one interval), one missed run does
        assert intervals[name] < thresholds.max_age < 2 * intervals[name], name
        assert thresholds.max_age < view.ttl
        for feature in view.features:
            assert thresholds.null_ceiling(feature.name) is not None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"views": {"v": {"max_age": 3}}}, r"\['v'\]\['max_age'\] must be a positive"),
        ({"views": {"v": {"max_null_rate": {"a": -1}}}}, r"\['a'\] = -1 must be >= 0"),
        ({"views": {"v": {"max_psi": [0.2]}}}, r"max_psi'\] must be a mapping"),
        (
            {"views": {"v": {"reference_requests": 3}}},
            r"reference_requests'\] must be a file name",
        ),
    ],
)
def test_bad_thresholds_are_named(entry: dict, message: str) -> None:
    from feature_platform.monitoring import load_policy

    with pytest.raises(ValueError, match=message):
        load_policy(entry)


def test_two_sample_tests_from_scipy() -> None:
    from feature_platform.monitoring.drift import two_sample_test

    same = two_sample_test(
        pd.Series(BASE), pd.Series(RNG.normal(40.0, 10.0, 5_000)), "numeric"
    )
    shifted = two_sample_test(
        pd.Series(BASE), pd.Series(RNG.normal(50.0, 10.0, 5_000)), "numeric"
    )
    assert same is not None and shifted is not None
    assert same["test"] == "ks_2samp" and same["statistic"] < 0.05
    assert shifted["statistic"] > 0.3 and shifted["pvalue"] < 1e-10
    cats = pd.Series(["a"] * 500 + ["b"] * 500 + [None] * 10)
    moved = pd.Series(["a"] * 900 + ["b"] * 100)
    chi2 = two_sample_test(cats, moved, "categorical")
    assert chi2 is not None and chi2["test"] == "chi2_contingency"
    assert chi2["pvalue"] < 1e-10
    assert two_sample_test(pd.Series([None]), moved, "categorical") is None


def _on_demand_read(name: str, columns: dict[str, list]):
    from feast.value_type import ValueType

    from feature_platform.online_store.on_demand import OnDemandOutputs, OnDemandRead

    features = tuple(columns)
    plan = OnDemandOutputs(
        name, features, features, tuple(ValueType.DOUBLE for _ in features)
    )
    n = len(next(iter(columns.values())))
    return OnDemandRead(plan, list(columns.values()), [False] * n)


def test_output_bins_are_le_bounds() -> None:
    from feature_platform.serving.metrics import OUTPUT_BINS, output_bin_counts

    assert list(OUTPUT_BINS) == sorted(OUTPUT_BINS) and 0.0 in OUTPUT_BINS
    assert output_bin_counts([0.0, 1.0, 1.0000001, 0.5, None, 5000.0, -1e9]) == {
        "0.0": 1,
        "1.0": 1,
        "1.5": 1,
        "0.5": 1,
        "+Inf": 1,
        "-1000.0": 1,
    }
    assert output_bin_counts([None, None]) == {}


def test_served_output_values_round_trip_through_the_exposition() -> None:
    """An on-demand view's served values: binned by the server, parsed by the
    monitor, subtracted between runs."""
    from feast.value_type import ValueType

    from feature_platform.monitoring import parse_metrics, served_traffic
    from feature_platform.serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    zero = _baseline(metrics, {"odv": ("r", "s"), "v": ("a",)})
    metrics.observe_view(
        _on_demand_read("odv", {"r": [0.3, 0.3, None, 2.5], "s": [1.0, 0.0, 0.0, 9]})
    )
    stored = _view_read("v", ("a",), [[0.5]], [False])  # a stored view: not binned
    stored.plan = dataclasses.replace(stored.plan, value_types=(ValueType.DOUBLE,))
    metrics.observe_view(stored)
    counters = parse_metrics(metrics.exposition()[0].decode()).minus(zero)
    assert counters is not None
    assert counters.rows == {"odv": {"r,s": 4.0}, "v": {"a": 1.0}}
    assert set(counters.values) == {"odv"}
    assert counters.nulls == {"odv": {"r": 1.0, "s": 0.0}, "v": {"a": 0.0}}
    got = {
        f: {b: n for b, n in bins.items() if n}
        for f, bins in counters.values["odv"].items()
    }
    assert got == {
        "r": {"0.3": 2.0, "3.0": 1.0},
        "s": {"1.0": 1.0, "0.0": 2.0, "10.0": 1.0},
    }
    report = served_traffic(
        counters, previous=None, features={"odv": ["r", "s"]}, url="x"
    )
    assert report["views"]["odv"]["bins"] == {
        "r": {"0.3": 2, "3.0": 1},
        "s": {"1.0": 1, "0.0": 2, "10.0": 1},
    }
    metrics.observe_view(_on_demand_read("odv", {"r": [0.3], "s": [None]}))
    later = parse_metrics(metrics.exposition()[0].decode()).minus(zero)
    assert later is not None
    delta = served_traffic(
        later, previous=counters, features={"odv": ["r", "s"]}, url="x"
    )
    assert delta["views"]["odv"]["bins"] == {"r": {"0.3": 1}, "s": {}}
    assert delta["views"]["odv"]["nulls"] == {"r": 0, "s": 1}
    # stored views have no bins
    assert (
        "bins"
        not in served_traffic(later, previous=None, features={"v": ["a"]}, url="x")[
            "views"
        ]["v"]
    )


def _served_entry(values: list) -> dict:
    from feature_platform.serving.metrics import output_bin_counts

    return {
        "bins": {"x": output_bin_counts(values)},
        "nulls": {"x": values.count(None)},
        "values": {"x": len(values)},
    }


def test_on_demand_drift_compares_served_bins_with_reference_outputs() -> None:
    from feature_platform.monitoring.drift import NULL_BIN, on_demand_drift

    ratios = RNG.lognormal(0.0, 0.5, 5_000)
    reference = pd.DataFrame({"x": np.append(ratios, [np.nan] * 100)})
    same = RNG.lognormal(0.0, 0.5, 2_000).tolist() + [None] * 40
    shifted = (3 * RNG.lognormal(0.0, 0.5, 2_000)).tolist() + [None] * 40
    more_nulls = RNG.lognormal(0.0, 0.5, 1_000).tolist() + [None] * 1_000

    calm = on_demand_drift(reference, _served_entry(same), ["x"])["x"]
    assert calm["psi"] < 0.05 and not calm["drifted"]
    assert calm["rows"] == {"reference": 5_100, "current": 2_040}
    assert calm["bins"][-1] == NULL_BIN
    assert calm["reference"][-1] == round(100 / 5_100, 6)
    assert calm["reference_stats"]["mean"] == pytest.approx(np.mean(ratios), rel=1e-4)
    assert calm["current_stats"] == {"null_rate": round(40 / 2_040, 6)}
    drifted = on_demand_drift(reference, _served_entry(shifted), ["x"])["x"]
    assert drifted["psi"] > 1.0 and drifted["drifted"]
    # nulls are a bin of their own: a jump in them is drift too
    assert on_demand_drift(reference, _served_entry(more_nulls), ["x"])["x"]["drifted"]
    # nothing served, or no reference: no PSI (not 0)
    idle = on_demand_drift(reference, _served_entry([]), ["x"])["x"]
    assert idle["psi"] is None and not idle["drifted"]
    blind = on_demand_drift(pd.DataFrame(), _served_entry(same), ["x"], note="none")
    assert blind["x"]["psi"] is None and blind["x"]["note"] == "none"


def test_run_monitor_takes_on_demand_view_names(applied_local_store) -> None:
    """``views`` may name an on-demand view: its outputs are monitored from
    served traffic only (no server here: nothing of it in drift); an unknown
    name is still refused."""
    store = applied_local_store
    window = dict(
        reference=Window(TEST_END - timedelta(days=8), TEST_END - timedelta(days=1)),
        current=Window(TEST_END - timedelta(days=1), TEST_END),
    )
    report = run_monitor(
        store,
        now=TEST_END,
        views=["checkout_value"],
        sample=5,
        latency_reads=5,
        **window,
    )
    assert report["freshness"] == {} and report["drift"] == {}
    assert report["online_source"]["kind"] == "probes"
    both = run_monitor(
        store,
        now=TEST_END,
        views=["checkout_value", "driver_stats"],
        sample=5,
        latency_reads=5,
        **window,
    )
    assert set(both["freshness"]) == {"driver_stats"}
    with pytest.raises(ValueError, match="unknown feature view"):
        run_monitor(store, now=TEST_END, views=["nope"], **window)
