"""The platform's online read call: Feast's own read, with a registry check.

Freshness and the fast Redis path live in the online store plugin
(``feature_platform.online_store``), so this is what a notebook gets from
``store.get_online_features(...).to_dict()`` too; ``read_online`` adds:

* the registry outage rule (``freshness.ensure_registry_current``): once the
  registry cache is older than ``cache_ttl_seconds`` and the registry cannot be
  read, a clear error instead of serving from a stale registry;
* ``now``: judge freshness at another time (``freshness.as_of``);
* a feature service by name.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.errors import BadInput
from feature_platform.freshness import as_of, ensure_registry_current

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
    time) come back as ``None`` (status OUTSIDE_MAX_AGE), never as silently
    stale values.
    """
    if (feature_service is None) == (features is None):
        raise BadInput("pass exactly one of feature_service and features")
    if not entity_rows:
        raise BadInput("entity_rows is empty")
    ensure_registry_current(store)
    refs: Any = _service(store, feature_service) if feature_service else features
    with as_of(now):
        return store.get_online_features(
            features=refs, entity_rows=entity_rows
        ).to_dict()


# Per store: feature service name -> (registry snapshot, FeatureService). Feast
# rebuilds the service object from the registry proto on every lookup.
_SERVICES: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _service(store: FeatureStore, name: str) -> Any:
    from feature_platform.feast_compat import registry_snapshot_stamp

    stamp = registry_snapshot_stamp(store.registry)
    cached = _SERVICES.setdefault(store, {})
    hit = cached.get(name)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[1]
    service = store.get_feature_service(name, allow_cache=True)
    cached[name] = (registry_snapshot_stamp(store.registry), service)
    return service
