"""PII rules: personal-looking fields are tagged ``pii`` and stored as strings,
and no raw ``pii`` value is served online.

The masking itself is ``feature_platform.pii``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from feature_platform.governance.findings import Finding
from feature_platform.pii import is_masked, pii_fields
from feature_platform.utc import utc_now

if TYPE_CHECKING:
    from feast import FeatureStore

    from feature_platform.governance.schema import SchemaSnapshot

__all__ = ["check_pii_definitions", "check_pii_exposure"]

# Field names that look like personal data must carry the `pii` tag.
_PERSONAL = re.compile(
    r"(^|_)(e_?mail|phone|mobile|postcode|post_code|zip_?code|address|street|"
    r"first_name|last_name|full_name|birth_?date|date_of_birth|ssn|passport|iban|"
    r"ip_address)($|_)"
)


def check_pii_definitions(snap: SchemaSnapshot) -> list[Finding]:
    """Personal-looking fields must be tagged ``pii``; pii fields must be strings."""
    out = []
    for name, view in snap["feature_views"].items():
        for feat, dtype in view["features"].items():
            ref = f"{name}:{feat}"
            tagged = feat in view.get("pii", [])
            if not tagged and _PERSONAL.search(feat):
                out.append(
                    Finding(
                        "pii",
                        "error",
                        ref,
                        f"{ref} looks like personal data but is not tagged `pii`; "
                        'add tags={"pii": "<kind>"} to the Field so it is masked',
                    )
                )
            if tagged and dtype != "String":
                out.append(
                    Finding(
                        "pii",
                        "error",
                        ref,
                        f"{ref} is tagged `pii` but has dtype {dtype}; masked values "
                        "are strings: declare it String",
                    )
                )
    return out


def check_pii_exposure(
    store: FeatureStore, *, sample: int = 200, now: Any = None
) -> list[Finding]:
    """Read a sample of entities' pii features from the online store; raw = error.

    The entity sample is the latest row per entity within each view's ttl in the
    offline source (the rows materialization would write), read through the
    online-vs-offline sampler (``feature_platform.quality.sampling``).
    """
    from feature_platform.quality.sampling import sample_online

    out: list[Finding] = []
    now = now or utc_now()
    for view in store.list_feature_views():
        fields = pii_fields(view)
        if not view.online or not fields:
            continue
        got = sample_online(store, view, as_of=now, size=sample, features=fields)
        if not got.sampled:
            continue
        for f in fields:
            raw = [c.online for c in got.cells[f] if not is_masked(c.online)]
            ref = f"{view.name}:{f}"
            if raw:
                out.append(
                    Finding(
                        "pii",
                        "error",
                        ref,
                        f"{len(raw)} of {got.sampled} sampled online values of "
                        f"{ref} are served unmasked (e.g. {str(raw[0])[:3]}…); "
                        "materialize through feature_platform (it masks `pii` fields), "
                        "then re-run the check",
                    )
                )
            else:
                out.append(
                    Finding(
                        "pii",
                        "info",
                        ref,
                        f"{got.sampled} sampled online values of {ref} masked",
                    )
                )
    return out
