"""Served traffic from the feature server's ``GET /metrics`` (real reads).

``scrape(url)`` reads the counters ``feature_platform.serving.metrics``
exposes (Prometheus text, parsed with prometheus_client's parser);
``served_traffic`` turns two scrapes (the previous run's and this one) into
what the monitor reports for the interval between them: requests by status,
p50/p95/p99 read latency, the null rate per served feature and, per output
of an on-demand view, the served values per bin (``bins``: what
``drift.on_demand_drift`` compares with the reference outputs).

Percentiles come from the latency histogram's buckets the way Prometheus'
``histogram_quantile`` computes them (linear interpolation inside the bucket
holding the rank), so they are exact to within one bucket (0.25-2.5 ms wide
below 10 ms). Counts and null rates are exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NotRequired, TypedDict, final

from feature_platform.errors import BadInput
from feature_platform.redact import redact_url

__all__ = [
    "READ_ENDPOINT",
    "CounterValues",
    "ServedLatency",
    "ServedTraffic",
    "ServedView",
    "ServerCounters",
    "histogram_quantile",
    "parse_metrics",
    "scrape",
    "served_traffic",
]

READ_ENDPOINT = "/get-online-features"
_P = "fp_serving_"


class CounterValues(TypedDict):
    """``ServerCounters`` as JSON (``as_dict``; ``from_dict`` reads it back)."""

    requests: dict[str, dict[str, float]]
    latency_buckets: dict[str, list[tuple[float, float]]]
    latency_sum: dict[str, float]
    rows: dict[str, dict[str, float]]
    nulls: dict[str, dict[str, float]]
    expired: dict[str, float]
    values: dict[str, dict[str, dict[str, float]]]


@final  # closed: ``"values" in entry`` tells it from collect.ViewHealth
class ServedView(TypedDict):
    """One view's served traffic (``served_traffic``'s ``views``)."""

    rows: int
    values: dict[str, int]  # feature -> values served
    nulls: dict[str, int]
    null_rate: dict[str, float | None]  # None: not served
    expired_rate: float | None
    # on-demand view: output -> bin label -> non-null values served
    bins: NotRequired[dict[str, dict[str, int]]]


class ServedLatency(TypedDict):
    """Read latency of served traffic in milliseconds (None without reads)."""

    reads: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    method: str


class ServedTraffic(TypedDict):
    """The monitor report's ``served`` section (``served_traffic``)."""

    source: str
    url: str  # redacted
    since: str
    requests: dict[str, int]  # HTTP status -> reads
    latency_ms: ServedLatency
    views: dict[str, ServedView]
    counters: CounterValues  # cumulative: the next run subtracts them


@dataclass
class ServerCounters:
    """Cumulative counters of one scrape (JSON-able, kept in the report so the
    next run can subtract them)."""

    requests: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_buckets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    nulls: dict[str, dict[str, float]] = field(default_factory=dict)
    expired: dict[str, float] = field(default_factory=dict)
    # on-demand view -> output -> bin label -> non-null values served
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> CounterValues:
        d = asdict(self)
        return {
            "requests": d["requests"],
            "latency_buckets": d["latency_buckets"],
            "latency_sum": d["latency_sum"],
            "rows": d["rows"],
            "nulls": d["nulls"],
            "expired": d["expired"],
            "values": d["values"],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ServerCounters:
        return cls(
            requests={k: dict(v) for k, v in raw.get("requests", {}).items()},
            latency_buckets={
                k: [(float(le), float(c)) for le, c in v]
                for k, v in raw.get("latency_buckets", {}).items()
            },
            latency_sum=dict(raw.get("latency_sum", {})),
            rows={k: dict(v) for k, v in raw.get("rows", {}).items()},
            nulls={k: dict(v) for k, v in raw.get("nulls", {}).items()},
            expired=dict(raw.get("expired", {})),
            values={
                v: {f: dict(bins) for f, bins in fs.items()}
                for v, fs in raw.get("values", {}).items()
            },
        )

    def minus(self, before: ServerCounters) -> ServerCounters | None:
        """The increase since ``before``; ``None`` if a counter went down (the
        server restarted: its counters began again at zero)."""

        def sub(now: float, then: float | None) -> float:
            d = now - (then or 0.0)
            if d < 0:
                raise _Reset
            return d

        try:
            return ServerCounters(
                requests={
                    e: {
                        s: sub(c, before.requests.get(e, {}).get(s))
                        for s, c in v.items()
                    }
                    for e, v in self.requests.items()
                },
                latency_buckets={
                    e: [
                        (le, sub(c, dict(before.latency_buckets.get(e, [])).get(le)))
                        for le, c in v
                    ]
                    for e, v in self.latency_buckets.items()
                },
                latency_sum={
                    e: max(0.0, s - before.latency_sum.get(e, 0.0))
                    for e, s in self.latency_sum.items()
                },
                rows={
                    v: {f: sub(n, before.rows.get(v, {}).get(f)) for f, n in fs.items()}
                    for v, fs in self.rows.items()
                },
                nulls={
                    v: {
                        f: sub(n, before.nulls.get(v, {}).get(f)) for f, n in fs.items()
                    }
                    for v, fs in self.nulls.items()
                },
                expired={
                    v: sub(n, before.expired.get(v)) for v, n in self.expired.items()
                },
                values={
                    v: {
                        f: {
                            b: sub(n, before.values.get(v, {}).get(f, {}).get(b))
                            for b, n in bins.items()
                        }
                        for f, bins in fs.items()
                    }
                    for v, fs in self.values.items()
                },
            )
        except _Reset:
            return None


class _Reset(Exception):
    pass


def scrape(url: str, *, timeout: float = 10.0) -> str:
    """The Prometheus text of ``{url}/metrics``; a clear error when unreachable."""
    import httpx

    target = url.rstrip("/") + "/metrics"
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"feature server metrics {redact_url(target)} unreachable "
            f"({type(exc).__name__}: {exc}); check FP_MONITOR_SERVER_URL"
        ) from None
    if response.status_code != 200:
        raise RuntimeError(
            f"feature server metrics {redact_url(target)} answered HTTP "
            f"{response.status_code}; is it this platform's server (GET /metrics)?"
        )
    return response.text


def parse_metrics(text: str) -> ServerCounters:
    """The platform's serving counters in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out = ServerCounters()
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(_P):
            continue
        for s in family.samples:
            labels, value = s.labels, float(s.value)
            if s.name == _P + "requests_total":
                out.requests.setdefault(labels["endpoint"], {})[labels["status"]] = (
                    value
                )
            elif s.name == _P + "request_latency_seconds_bucket":
                le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
                buckets.setdefault(labels["endpoint"], {})[le] = value
            elif s.name == _P + "request_latency_seconds_sum":
                out.latency_sum[labels["endpoint"]] = value
            elif s.name == _P + "rows_total":
                out.rows.setdefault(labels["feature_view"], {})[labels["features"]] = (
                    value
                )
            elif s.name == _P + "nulls_total":
                out.nulls.setdefault(labels["feature_view"], {})[labels["feature"]] = (
                    value
                )
            elif s.name == _P + "expired_total":
                out.expired[labels["feature_view"]] = value
            elif s.name == _P + "output_values_total":
                out.values.setdefault(labels["feature_view"], {}).setdefault(
                    labels["feature"], {}
                )[labels["bin"]] = value
    out.latency_buckets = {e: sorted(b.items()) for e, b in buckets.items()}
    return out


def histogram_quantile(
    q: float, buckets: Sequence[tuple[float, float]]
) -> float | None:
    """Prometheus' ``histogram_quantile``: ``buckets`` are cumulative
    ``(upper bound, count)`` pairs ending with ``+Inf``. Linear interpolation in
    the bucket holding rank ``q * total`` (from 0 for the first bucket); a rank
    in the ``+Inf`` bucket returns the highest finite bound."""
    if not 0 <= q <= 1:
        raise BadInput(f"quantile {q} is not within [0, 1]")
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def served_traffic(
    counters: ServerCounters,
    *,
    previous: ServerCounters | None,
    features: Mapping[str, Sequence[str]],
    url: str,
) -> ServedTraffic:
    """The report's ``served`` section: the interval since ``previous`` (or
    since the server started), per view the null rate of each feature."""
    window = counters.minus(previous) if previous is not None else None
    since = "previous monitor run" if window is not None else "server start"
    if previous is not None and window is None:
        since = "server start (counters went down: the server restarted)"
    c = window or counters
    requests = c.requests.get(READ_ENDPOINT, {})
    buckets = c.latency_buckets.get(READ_ENDPOINT, [])
    reads = int(buckets[-1][1]) if buckets else 0

    def ms(q: float) -> float | None:
        v = histogram_quantile(q, buckets)
        return None if v is None else round(v * 1000, 3)

    views: dict[str, ServedView] = {}
    for view, names in features.items():
        by_set = c.rows.get(view, {})
        rows = int(sum(by_set.values()))
        # values served per feature: the rows of every request naming it
        served = {
            f: int(sum(n for fs, n in by_set.items() if f in fs.split(",")))
            for f in names
        }
        nulls = {f: int(c.nulls.get(view, {}).get(f, 0)) for f in names}
        views[view] = {
            "rows": rows,
            "values": served,
            "nulls": nulls,
            "null_rate": {
                f: round(nulls[f] / served[f], 4) if served[f] else None for f in names
            },
            "expired_rate": round(c.expired.get(view, 0) / rows, 4) if rows else None,
        }
        if view in c.values:  # an on-demand view: its outputs' served values
            views[view]["bins"] = {
                f: {b: int(n) for b, n in c.values[view].get(f, {}).items() if n}
                for f in names
            }
    return {
        "source": "feature server metrics",
        "url": redact_url(url),
        "since": since,
        "requests": {k: int(v) for k, v in sorted(requests.items())},
        "latency_ms": {
            "reads": reads,
            "p50": ms(0.5),
            "p95": ms(0.95),
            "p99": ms(0.99),
            "mean": round(c.latency_sum.get(READ_ENDPOINT, 0) / reads * 1000, 3)
            if reads
            else None,
            "method": "histogram_quantile over fp_serving_request_latency_seconds",
        },
        "views": views,
        "counters": counters.as_dict(),
    }
