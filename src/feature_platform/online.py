"""The platform's online read path (what a model server or notebook calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["read_online"]


def read_online(
    store: FeatureStore,
    entity_rows: list[dict[str, Any]],
    *,
    feature_service: str | None = None,
    features: list[str] | None = None,
) -> dict[str, list[Any]]:
    """Online feature values for ``entity_rows`` via a feature service or a list.

    Exactly one of ``feature_service`` and ``features`` (``view:feature`` refs).
    """
    if (feature_service is None) == (features is None):
        raise ValueError("pass exactly one of feature_service and features")
    if not entity_rows:
        raise ValueError("entity_rows is empty")
    refs: Any = (
        store.get_feature_service(feature_service) if feature_service else features
    )
    return store.get_online_features(features=refs, entity_rows=entity_rows).to_dict()
