"""The platform's online read path (what a model server or notebook calls)."""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.freshness import (
    enforce_on_response,
    ensure_registry_current,
    output_ttls,
)

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["read_online"]


def read_online(
    store: FeatureStore,
    entity_rows: list[dict[str, Any]],
    *,
    feature_service: str | None = None,
    features: list[str] | None = None,
    now: datetime | None = None,
) -> dict[str, list[Any]]:
    """Online feature values for ``entity_rows`` via a feature service or a list.

    Exactly one of ``feature_service`` and ``features`` (``view:feature`` refs).
    Values older than their view's ttl at ``now`` (default: the current UTC
    time) come back as ``None`` (status OUTSIDE_MAX_AGE; see
    ``feature_platform.freshness``), never as silently stale values.
    """
    if (feature_service is None) == (features is None):
        raise ValueError("pass exactly one of feature_service and features")
    if not entity_rows:
        raise ValueError("entity_rows is empty")
    # Reads are served from the registry cache (cache_ttl_seconds); once it has
    # expired and the registry is unreachable this raises a clear error.
    ensure_registry_current(store)
    if feature_service is not None:
        reader = _fast_reader(store, feature_service)
        if reader is not None:  # Redis: the lean path (same values, ttl enforced)
            return reader.read(entity_rows, now=now)
    refs: Any = (
        store.get_feature_service(feature_service, allow_cache=True)
        if feature_service
        else features
    )
    response = store.get_online_features(features=refs, entity_rows=entity_rows)
    ttls = output_ttls(store, feature_service=feature_service, features=features)
    enforce_on_response(response, ttls, now=now)
    return response.to_dict()


# Per store and feature service, the resolved fast reader and the registry
# snapshot it was built from (rebuilt when the registry cache refreshes).
_READERS: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _fast_reader(store: FeatureStore, feature_service: str) -> Any | None:
    """A cached ``FastOnlineReader`` for Redis stores, ``None`` when unsupported."""
    from feature_platform.fast_online import FastOnlineReader, UnsupportedStoreError

    if getattr(store.config.online_store, "type", None) != "redis":
        return None
    stamp = getattr(store.registry, "cached_registry_proto_created", None)
    per_store = _READERS.setdefault(store, {})
    hit = per_store.get(feature_service)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[1]
    try:
        reader = FastOnlineReader(store, feature_service=feature_service)
    except UnsupportedStoreError:
        return None
    per_store[feature_service] = (stamp, reader)
    return reader
