"""Detect an emptied or lagging online store and rebuild it from the offline store.

Redis here keeps nothing on disk: after a restart every key is gone while the
registry still says each view is materialized up to its watermark, so
``materialize_incremental`` would write nothing and reads would return nulls.

* ``online_health(store)`` samples, per online view, entities whose latest
  offline row lies in the last ttl window (these must be online), with the
  platform's online-vs-offline sampler (``feature_platform.quality.sampling``),
  and compares the event time the online store holds for each with the
  offline one. An entity is ``missing`` when the online store holds no value
  for it and ``behind`` when its online event time is older than the offline
  one. A view is healthy when nothing is missing and nothing is behind: values
  that are present but older than the offline latest (a late row, a window that
  was never materialized) are stale data served as current.
* ``recover(store)`` re-materializes ``[end - ttl, end]`` for every unhealthy
  view (every view with ``force=True``), then checks again. Materializing a
  window is idempotent, so running it on a healthy store changes nothing.

Both return small JSON-able summaries (the CLI prints them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from feature_platform.quality.sampling import lookback, sample_online
from feature_platform.utc import ensure_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from feature_platform.materialize import ViewWrite

__all__ = [
    "DEFAULT_SAMPLE",
    "Health",
    "Recovery",
    "ViewHealth",
    "online_health",
    "recover",
]

log = logging.getLogger(__name__)
DEFAULT_SAMPLE = 200


class ViewHealth(TypedDict):
    """Sampled entities of a view: missing online, or behind the offline latest."""

    sampled: int
    missing: int
    behind: int
    healthy: bool


class Health(TypedDict):
    """What ``online_health`` returns (``recover --check`` prints it)."""

    end: str  # ISO-8601 UTC
    views: dict[str, ViewHealth]
    healthy: bool


class Recovery(TypedDict):
    """What ``recover`` returns: health before, the windows rewritten, after."""

    before: Health
    rematerialized: dict[str, ViewWrite]
    after: Health
    healthy: bool


def _window(view: FeatureView, end: datetime) -> tuple[datetime, datetime]:
    return end - lookback(view), end


def _view_health(
    store: FeatureStore, view: FeatureView, end: datetime, sample: int, seed: int
) -> ViewHealth:
    got = sample_online(
        store,
        view,
        as_of=end,
        size=sample,
        seed=seed,
        features=[view.features[0].name],
        event_times=True,
    )
    online_s = got.online_event_seconds or []
    offline_s = [int(t.timestamp()) for t in got.offline_event_times]
    missing = sum(s <= 0 for s in online_s)
    behind = sum(0 < s < o for s, o in zip(online_s, offline_s, strict=True))
    return {
        "sampled": got.sampled,
        "missing": missing,
        "behind": behind,
        "healthy": missing == 0 and behind == 0,
    }


def online_health(
    store: FeatureStore,
    *,
    end: datetime | None = None,
    views: Iterable[str] | None = None,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> Health:
    """Sample each online view's entities and report missing / behind values."""
    from feature_platform.offline import online_views

    end = ensure_utc(end, "end") if end is not None else utc_now()
    store.refresh_registry()
    report = {
        view.name: _view_health(store, view, end, sample, seed)
        for view in online_views(store, views)
    }
    return {
        "end": end.isoformat(),
        "views": report,
        "healthy": all(v["healthy"] for v in report.values()),
    }


def recover(
    store: FeatureStore,
    *,
    end: datetime | None = None,
    views: Iterable[str] | None = None,
    sample: int = DEFAULT_SAMPLE,
    force: bool = False,
) -> Recovery:
    """Re-materialize the last ttl window of each unhealthy view; check again."""
    from feature_platform.materialize import materialize_window, online_views

    end = ensure_utc(end, "end") if end is not None else utc_now()
    before = online_health(store, end=end, views=views, sample=sample)
    rematerialized: dict[str, ViewWrite] = {}
    for view in online_views(store, views):
        if not force and before["views"][view.name]["healthy"]:
            continue
        start, stop = _window(view, end)
        log.warning("recovering %s: materializing %s..%s", view.name, start, stop)
        part = materialize_window(store, start, stop, views=[view.name])
        rematerialized[view.name] = part["views"][view.name]
    after = (
        online_health(store, end=end, views=views, sample=sample)
        if rematerialized
        else before
    )
    return {
        "before": before,
        "rematerialized": rematerialized,
        "after": after,
        "healthy": after["healthy"],
    }
