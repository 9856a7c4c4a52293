"""Feature references, ``'<feature_view>:<feature>'``: the one parser.

Feast's own (``feast.utils._parse_feature_ref``) is private and also accepts
``'<view>@<version>:<feature>'``, a form the platform's read paths do not
serve; this one takes exactly one ``:`` with a name on each side.
"""

from __future__ import annotations

from typing import NamedTuple

from feature_platform.errors import InvalidFeatureReference

__all__ = ["FeatureRef", "parse_ref", "view_of"]


class FeatureRef(NamedTuple):
    view: str
    feature: str


def parse_ref(ref: str) -> FeatureRef:
    """``'view:feature'`` -> ``FeatureRef``; anything else raises
    ``InvalidFeatureReference`` naming ``ref``."""
    view, sep, feature = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not sep or not view or not feature or ":" in feature:
        raise InvalidFeatureReference(
            f"invalid feature reference {ref!r}; expected '<feature_view>:<feature>'"
        )
    return FeatureRef(view, feature)


def view_of(ref: str) -> str:
    """The view a feature reference (or a bare view name) names."""
    return ref.partition(":")[0]
