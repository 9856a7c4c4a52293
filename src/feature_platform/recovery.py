"""Detect an emptied or lagging online store and rebuild it from the offline store.

Redis here keeps nothing on disk: after a restart every key is gone while the
registry still says each view is materialized up to its watermark, so
``materialize_incremental`` would write nothing and reads would return nulls.

* ``online_health(store)`` samples, per online view, entities whose latest
  offline row lies in the last ttl window (these must be online) and reads them
  back raw (without the freshness filter). An entity is ``missing`` when the
  online store has no value for it and ``behind`` when its online event time
  is older than the offline one. A view is healthy when nothing is missing.
* ``recover(store)`` re-materializes ``[end - ttl, end]`` for every unhealthy
  view (every view with ``force=True``), then checks again. Materializing a
  window is idempotent, so running it on a healthy store changes nothing.

Both return small JSON-able summaries (the CLI prints them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

__all__ = ["DEFAULT_SAMPLE", "online_health", "recover"]

log = logging.getLogger(__name__)
DEFAULT_SAMPLE = 200
_DEFAULT_TTL = timedelta(days=1)  # for a view without ttl


def _window(view: FeatureView, end: datetime) -> tuple[datetime, datetime]:
    ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else _DEFAULT_TTL
    return end - ttl, end


def _offline_latest(store: FeatureStore, view: FeatureView, end: datetime):
    """Latest offline row per entity in the view's last ttl window (pandas)."""
    from feature_platform.governance import batch_source
    from feature_platform.materialize import pull_latest

    start, end = _window(view, end)
    job = pull_latest(store, view, start, end)
    return job.to_df(), batch_source(view).timestamp_field


def _view_health(
    store: FeatureStore, view: FeatureView, end: datetime, sample: int, seed: int
) -> dict[str, Any]:
    import pandas as pd

    latest, ts_field = _offline_latest(store, view, end)
    keys = [e.name for e in view.entity_columns]
    if latest.empty:
        return {"sampled": 0, "missing": 0, "behind": 0, "healthy": True}
    picked = latest.sample(min(sample, len(latest)), random_state=seed)
    rows = [
        {
            k: (v.item() if hasattr(v, "item") else v)
            for k, v in zip(keys, row, strict=True)
        }
        for row in picked[keys].itertuples(index=False, name=None)
    ]
    feature = view.features[0].name
    online = store.get_online_features(
        features=[f"{view.name}:{feature}"], entity_rows=rows
    ).to_dict(include_event_timestamps=True)
    online_ts = pd.Series(online[f"{feature}__ts"], dtype="int64").to_numpy()
    offline_ts = (
        pd.to_datetime(picked[ts_field], utc=True).astype("int64").to_numpy() // 10**9
    )
    missing = int((online_ts <= 0).sum())
    behind = int(((online_ts > 0) & (online_ts < offline_ts)).sum())
    return {
        "sampled": len(rows),
        "missing": missing,
        "behind": behind,
        "healthy": missing == 0,
    }


def online_health(
    store: FeatureStore,
    *,
    end: datetime | None = None,
    views: Iterable[str] | None = None,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample each online view's entities and report missing / behind values."""
    from feature_platform.materialize import online_views

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
) -> dict[str, Any]:
    """Re-materialize the last ttl window of each unhealthy view; check again."""
    from feature_platform.materialize import materialize_window, online_views

    end = ensure_utc(end, "end") if end is not None else utc_now()
    before = online_health(store, end=end, views=views, sample=sample)
    rematerialized: dict[str, Any] = {}
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
