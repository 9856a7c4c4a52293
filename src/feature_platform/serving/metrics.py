"""Prometheus metrics of the feature server's real traffic (``GET /metrics``).

What the monitor reads (``feature_platform.monitoring.traffic`` scrapes it):

* ``fp_serving_requests_total{endpoint,status}`` and
  ``fp_serving_request_latency_seconds{endpoint}`` (a histogram): every
  ``POST /get-online-features`` and ``POST /push``, timed at the outermost ASGI
  layer (request guard, fast reads and Feast's endpoint included), whatever
  path answers it;
* ``fp_serving_rows_total{feature_view,features}`` (``features``: the requested
  features of the view, comma-separated: one series per feature service or
  feature list), ``fp_serving_nulls_total{feature_view,feature}`` and
  ``fp_serving_expired_total{feature_view}``: the rows each view served, and of
  those the values served null (missing entity, null in the store, or past the
  view's ttl) and the rows nulled by the ttl rule, counted on
  the platform's read path (``FastReads``) from the columns it already decoded
  (an on-demand view's outputs from the columns the read computed them into,
  ``online_store.on_demand``: a null input or an unknown entity can give a
  null):
  ``list.count(None)`` and ``sum(stale)`` run in C, one counter increment per
  view and one per feature that had a null (nothing per value in Python);
* ``fp_serving_output_values_total{feature_view,feature,bin}``: the non-null
  values of each on-demand output served, by ``bin`` (the upper bound of
  ``OUTPUT_BINS`` the value falls under, ``+Inf`` above the last; not
  cumulative): the served distribution the monitor compares with the outputs
  the same transformation gives over its reference rows (drift of values that
  have no stored window). One ``bisect`` per value (C) and one increment per
  non-empty bin;
* ``fp_serving_fast_path_fallbacks_total{reason}``: reads the fast path handed
  to Feast's endpoint (``unsupported``, ``feast_error``, ``error``: a fault).

Why not Feast's own ``feast serve --metrics`` (``feast.metrics``): it times
Feast's endpoint only (the platform answers most reads before it) and counts
present/not-found per view inside Feast's default read path, which the online
store plugin replaces; it has no per-feature null count. Its metric names and
histogram shape are followed here.

The metrics live in a registry per app (``ServingMetrics``), created after
Feast's server module is imported: ``feast.metrics`` points prometheus_client at
a multiprocess directory (values in mmap files) before importing it. With
``multiprocess`` (``FP_SERVER_WORKERS`` > 1) ``/metrics`` adds up every file in
``PROMETHEUS_MULTIPROC_DIR`` (``MultiProcessCollector``): ``serve`` gives the
uvicorn workers one directory, so any worker answers with their total.
"""

from __future__ import annotations

import bisect
import functools
import operator
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from feature_platform.online_store.on_demand import OnDemandRead
    from feature_platform.online_store.reader import ViewRead

__all__ = [
    "LATENCY_BUCKETS",
    "OUTPUT_BINS",
    "OUTPUT_BIN_LABELS",
    "output_bin_counts",
    "PREFIX",
    "TIMED_ENDPOINTS",
    "MetricsMiddleware",
    "ServingMetrics",
    "mount_metrics",
]

PREFIX = "fp_serving_"
TIMED_ENDPOINTS = ("/get-online-features", "/push")
# Seconds. Fine below 10 ms where the server lives (p99 5.7 ms over HTTP in the
# benchmarks), so p50/p95/p99 interpolated from the buckets land within a
# bucket of 0.25-2.5 ms there.
LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def _ladder() -> tuple[float, ...]:
    steps = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    positive = [round(s * 10.0**k, 6) for k in range(-3, 3) for s in steps] + [1000.0]
    return (*(-x for x in reversed(positive)), 0.0, *positive)


# Upper bounds of the bins of an on-demand output's served values: 0 and a
# 1-1.5-2-3-5-7 ladder from 0.001 to 1000 each side of it (a ratio, a share, a
# flag, an amount all spread over several bins), then +Inf. Fixed, so every
# worker and every scrape bins alike; the monitor bins the reference outputs
# with the same bounds (``output_bin_counts``) and compares bin shares (PSI).
OUTPUT_BINS: tuple[float, ...] = _ladder()
OUTPUT_BIN_LABELS: tuple[str, ...] = (*(repr(b) for b in OUTPUT_BINS), "+Inf")
# Output dtypes binned (numbers; a bool is 0/1).
_BINNED = frozenset({"DOUBLE", "FLOAT", "INT64", "INT32", "BOOL"})
_bin_of = functools.partial(bisect.bisect_left, OUTPUT_BINS)
_not_none = functools.partial(operator.is_not, None)


def output_bin_counts(values: Any) -> dict[str, int]:
    """Numeric ``values`` counted per bin label (``OUTPUT_BINS``:
    ``lo < v <= bound``); ``None`` is not counted (a served output is never
    NaN: Feast's cast makes it null; give a NaN as ``None``)."""
    present = filter(_not_none, values) if None in values else values
    counts = Tally(map(_bin_of, present))
    labels = OUTPUT_BIN_LABELS
    return {labels[i]: n for i, n in counts.items()}


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServingMetrics:
    """The server's counters and latency histogram, in their own registry."""

    def __init__(self, *, multiprocess: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            PREFIX + "requests_total",
            "Requests to the feature server by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            PREFIX + "request_latency_seconds",
            "Time from request start to the last response byte, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            PREFIX + "rows_total",
            "Entity rows served per feature view and requested features",
            ["feature_view", "features"],
            registry=self.registry,
        )
        self.nulls = Counter(
            PREFIX + "nulls_total",
            "Values served null per feature (missing entity, null, past ttl)",
            ["feature_view", "feature"],
            registry=self.registry,
        )
        self.expired = Counter(
            PREFIX + "expired_total",
            "Rows served null because their value was older than the view's ttl",
            ["feature_view"],
            registry=self.registry,
        )
        self.output_values = Counter(
            PREFIX + "output_values_total",
            "Non-null values served per on-demand output, by bin (upper bound; "
            "not cumulative)",
            ["feature_view", "feature", "bin"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            PREFIX + "fast_path_fallbacks_total",
            "Reads the fast path handed to Feast's endpoint, by reason "
            "(unsupported, feast_error, error: a fault of the fast path)",
            ["reason"],
            registry=self.registry,
        )
        # Children cached by label values: ``labels()`` takes a lock per call.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._views: dict[tuple[str, tuple[str, ...]], Any] = {}
        from feature_platform.online_store.on_demand import OnDemandRead
        from feature_platform.serving.fast_reads import FALLBACK_REASONS

        # Only on-demand outputs are binned (a stored view's plan has value
        # types too; its drift is the monitor's offline comparison).
        self._on_demand = OnDemandRead

        for reason in FALLBACK_REASONS:  # every series from the start, at 0
            self._child(self.fallbacks, reason)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self._child(self.requests, endpoint, str(status)).inc()
        self._child(self.latency, endpoint).observe(seconds)

    def observe_fallback(self, reason: str) -> None:
        """Count one read the fast path handed to Feast's endpoint."""
        self._child(self.fallbacks, reason).inc()

    def observe_view(self, view: ViewRead | OnDemandRead) -> None:
        """Count one view's served rows, null values and expired rows (an
        on-demand view's output columns too: no ttl, none expired)."""
        plan = view.plan
        key = (plan.name, plan.features)
        children = self._views.get(key)
        if children is None:
            children = self._views[key] = (
                self.rows.labels(plan.name, ",".join(plan.features)),
                self.expired.labels(plan.name),
                [self.nulls.labels(plan.name, f) for f in plan.features],
            )
        rows, expired, nulls = children
        rows.inc(len(view.stale))
        stale = sum(view.stale)
        if stale:
            expired.inc(stale)
        for child, column in zip(nulls, view.values, strict=True):
            count = column.count(None)
            if count:
                child.inc(count)
        if isinstance(view, self._on_demand):  # its outputs' served distribution
            self._observe_values(plan, plan.value_types, view.values)

    def _observe_values(self, plan: Any, types: Any, columns: Any) -> None:
        for feature, vtype, column in zip(plan.features, types, columns, strict=True):
            if getattr(vtype, "name", None) not in _BINNED:
                continue
            for label, n in output_bin_counts(column).items():
                self._child(self.output_values, plan.name, feature, label).inc(n)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format of this app's metrics (all workers')."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # the directory serve() gave the workers
        return generate_latest(_Only(merged, PREFIX)), CONTENT_TYPE_LATEST


class _Only:
    """A registry view keeping the families whose name starts with ``prefix``
    (the multiprocess directory also holds Feast's metric files)."""

    def __init__(self, registry: Any, prefix: str) -> None:
        self._registry, self._prefix = registry, prefix

    def collect(self) -> Any:
        for family in self._registry.collect():
            if family.name.startswith(self._prefix):
                yield family


class MetricsMiddleware:
    """Pure ASGI middleware timing ``TIMED_ENDPOINTS`` (status from the response)."""

    def __init__(self, app: ASGIApp, *, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path not in TIMED_ENDPOINTS:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.observe_request(path, status, time.perf_counter() - start)


def mount_metrics(app: FastAPI, *, multiprocess: bool = False) -> ServingMetrics:
    """Add ``GET /metrics`` and the timing middleware to ``app``; returns the
    metrics (``FastReads`` counts served values into them). Call it last, so
    the timing wraps every other middleware."""
    from starlette.responses import Response

    metrics = ServingMetrics(multiprocess=multiprocess)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(content=body, media_type=content_type)

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics
