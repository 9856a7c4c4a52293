"""What the monitor measures besides drift: freshness, online null and expired
rates, and online read latency.

* freshness follows Feast's ``feast_feature_freshness_seconds`` gauge
  (``now - most_recent_end_time`` of the view's materialization intervals) and
  adds the flag rule (older than ttl/3: at ttl = 3 x interval that is one missed
  run) plus the source's newest event time (``get_monitoring_max_timestamp``).
* online null rates come from the platform's online-vs-offline sampler
  (``feature_platform.quality.sampling``); p50/p95/p99 read latency from a
  bounded sample of real reads through the platform's read call (no Feast API
  reports either offline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NotRequired, TypedDict, final

from feature_platform.freshness import is_stale
from feature_platform.monitoring.window import as_utc
from feature_platform.offline import batch_source
from feature_platform.quality.sampling import sample_online

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

__all__ = [
    "FRESHNESS_FRACTION",
    "Latency",
    "OnlineHealth",
    "ViewFreshness",
    "ViewHealth",
    "freshness",
    "latency_percentiles",
    "online_health",
]

log = logging.getLogger(__name__)
FRESHNESS_FRACTION = 3  # flag when older than ttl / 3


class ViewFreshness(TypedDict):
    """One view's freshness (``freshness``); times ISO-8601 UTC."""

    last_materialized_end: str | None
    age_seconds: float | None
    ttl_seconds: float
    threshold_seconds: float | None
    stale: bool
    source_newest_event: str | None  # None: the offline store cannot say
    source_lag_seconds: float | None


class Latency(TypedDict):
    """Read latency percentiles in milliseconds (None without reads)."""

    reads: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: NotRequired[float]


@final  # closed: ``"values" in entry`` tells it from traffic.ServedView
class ViewHealth(TypedDict):
    """One view's probe reads (``online_health``)."""

    entities_sampled: int
    null_rate: NotRequired[dict[str, float]]  # feature -> rate (with a sample)
    expired_rate: NotRequired[dict[str, float]]
    latency_ms: Latency
    latency_samples_ms: list[float]


class OnlineHealth(TypedDict):
    views: dict[str, ViewHealth]
    latency_ms: Latency  # over every view's reads


def freshness(
    store: FeatureStore,
    views: Sequence[FeatureView],
    *,
    now: datetime,
    max_age: Mapping[str, timedelta | None] | None = None,
) -> dict[str, ViewFreshness]:
    """Per view: last materialized end, its age, ttl, and the stale flag (older
    than the view's ``max_age`` from ``operations.MONITORING``, else ttl/3)."""
    from feature_platform.feast_compat import provider

    offline = provider(store).offline_store
    out: dict[str, ViewFreshness] = {}
    for view in views:
        ttl = view.ttl or timedelta(0)
        threshold = (max_age or {}).get(view.name) or (
            ttl / FRESHNESS_FRACTION if ttl else None
        )
        end = as_utc(view.most_recent_end_time)
        age = (now - end).total_seconds() if end else None
        stale = age is None or (
            threshold is not None and age > threshold.total_seconds()
        )
        try:  # Feast's monitoring hook; not every offline store implements it
            newest = as_utc(
                offline.get_monitoring_max_timestamp(
                    store.config,
                    batch_source(view),
                    batch_source(view).timestamp_field,
                )
            )
        except Exception as exc:  # noqa: BLE001 - NotImplementedError, assertions
            log.debug("no source max timestamp for %s: %s", view.name, exc)
            newest = None
        out[view.name] = {
            "last_materialized_end": end.isoformat() if end else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "ttl_seconds": ttl.total_seconds(),
            "threshold_seconds": threshold.total_seconds() if threshold else None,
            "stale": bool(stale),
            "source_newest_event": newest.isoformat() if newest else None,
            "source_lag_seconds": (
                round((now - newest).total_seconds(), 1) if newest else None
            ),
        }
    return out


def latency_percentiles(samples_ms: Sequence[float]) -> Latency:
    import numpy as np

    if not samples_ms:
        return {"reads": 0, "p50": None, "p95": None, "p99": None}
    arr = np.asarray(samples_ms, dtype="float64")
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "reads": int(arr.size),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(arr.max()), 3),
    }


def online_health(
    store: FeatureStore,
    views: Sequence[FeatureView],
    *,
    now: datetime,
    sample: int = 200,
    latency_reads: int = 100,
    time_budget_s: float = 10.0,
    seed: int = 0,
) -> OnlineHealth:
    """Null and expired rates of a sample of online values, and read latency.

    The sample is the entities with a source row within the view's ttl (what
    the online store should serve). A value is *expired* when the online store
    still holds it but its event time is older than the ttl (Feast's stock
    online stores return it as present, feast#6821; the platform's read path
    returns it as null); *null* counts the other values read back null.
    Latency is measured on ``latency_reads`` single-entity reads through the
    platform's read path, stopped early after ``time_budget_s``.
    """
    from feature_platform.online import read_online

    out: dict[str, ViewHealth] = {}
    all_ms: list[float] = []
    for view in views:
        got = sample_online(
            store, view, as_of=now, size=sample, seed=seed, event_times=True
        )
        keys = got.entities
        refs = [f"{view.name}:{f.name}" for f in view.features]
        entry: ViewHealth = {
            "entities_sampled": len(keys),
            "latency_ms": latency_percentiles([]),
            "latency_samples_ms": [],
        }
        if keys:
            expired = [
                is_stale(s, view.ttl, now) for s in got.online_event_seconds or []
            ]
            null_rate: dict[str, float] = {}
            expired_rate: dict[str, float] = {}
            for name in got.kinds:
                cells = got.cells[name]
                nulls = sum(
                    c.online is None and not old
                    for c, old in zip(cells, expired, strict=True)
                )
                null_rate[name] = round(nulls / len(keys), 4)
                expired_rate[name] = round(sum(expired) / len(keys), 4)
            entry["null_rate"] = null_rate
            entry["expired_rate"] = expired_rate
        samples: list[float] = []
        deadline = time.perf_counter() + time_budget_s
        for row in keys[:latency_reads]:
            t0 = time.perf_counter()
            read_online(store, [row], features=refs)
            samples.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() > deadline:
                break
        entry["latency_ms"] = latency_percentiles(samples)
        entry["latency_samples_ms"] = [round(s, 3) for s in samples]
        all_ms += samples
        out[view.name] = entry
    return {"views": out, "latency_ms": latency_percentiles(all_ms)}
