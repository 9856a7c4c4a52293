"""The platform's online read path (what a model server or notebook calls)."""

from __future__ import annotations

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
    refs: Any = (
        store.get_feature_service(feature_service, allow_cache=True)
        if feature_service
        else features
    )
    response = store.get_online_features(features=refs, entity_rows=entity_rows)
    ttls = output_ttls(store, feature_service=feature_service, features=features)
    enforce_on_response(response, ttls, now=now)
    return response.to_dict()
