"""The breaking-change guard: never change an existing feature, add a new one.

Removing a feature, changing a dtype, an entity's join key or value type, a
source's timestamp fields, a feature service losing features, a ``pii`` tag
removed or a ttl shrinking below the TTL rule are errors; additions pass (as
``info`` findings, which the audit log records as the schema changes of an
apply).
"""

from __future__ import annotations

import re
from typing import Any

from feature_platform.governance.findings import Finding
from feature_platform.governance.ttl import format_duration as _fmt
from feature_platform.governance.ttl import ttl_floor as _ttl_floor
from feature_platform.schedules import TTL_MULTIPLE

__all__ = ["compare_snapshots"]


def _suggest(feature: str) -> str:
    return f"{feature}_v2" if not re.search(r"_v\d+$", feature) else feature + "b"


def compare_snapshots(
    old: dict[str, Any] | None, new: dict[str, Any], *, against: str
) -> list[Finding]:
    """Changes from ``old`` to ``new``: breaking ones are errors, the rest info."""
    if old is None:
        return [Finding("breaking", "info", "*", f"nothing to compare in {against}")]
    out: list[Finding] = []

    def err(subject: str, message: str) -> None:
        out.append(Finding("breaking", "error", subject, f"{message} (vs {against})"))

    def info(subject: str, message: str) -> None:
        out.append(Finding("breaking", "info", subject, f"{message} (vs {against})"))

    # Entities: join keys and value types are part of every key ever written.
    for name, ent in old["entities"].items():
        cur = new["entities"].get(name)
        if cur is None:
            err(
                name,
                f"entity {name} was removed; restore it (views and stored keys use it)",
            )
            continue
        if cur["join_key"] != ent["join_key"]:
            err(
                name,
                f"entity {name} join key changed {ent['join_key']} -> "
                f"{cur['join_key']}; restore {ent['join_key']} and add a new entity "
                "for the new key instead",
            )
        if cur["value_type"] != ent["value_type"]:
            err(
                name,
                f"entity {name} value type changed {ent['value_type']} -> "
                f"{cur['value_type']}; stored online keys would no longer match: "
                f"restore {ent['value_type']} and add a new entity instead",
            )
    for name in sorted(set(new["entities"]) - set(old["entities"])):
        info(name, f"entity {name} added")

    # Feature views.
    for name, view in old["feature_views"].items():
        cur = new["feature_views"].get(name)
        if cur is None:
            err(
                name,
                f"feature view {name} was removed (features "
                f"{sorted(view['features'])}); restore it, deprecate it first",
            )
            continue
        for feat, dtype in view["features"].items():
            ref = f"{name}:{feat}"
            if feat not in cur["features"]:
                err(
                    ref,
                    f"feature {ref} ({dtype}) was removed; restore it: never remove "
                    f"or redefine a served feature, add `{_suggest(feat)}` instead",
                )
            elif cur["features"][feat] != dtype:
                err(
                    ref,
                    f"feature {ref} changed dtype {dtype} -> {cur['features'][feat]}; "
                    f"restore {dtype} and add `{_suggest(feat)}` "
                    f"({cur['features'][feat]}) instead",
                )
        for feat in sorted(set(cur["features"]) - set(view["features"])):
            info(f"{name}:{feat}", f"feature {name}:{feat} added")
        for feat in sorted(set(view.get("pii", [])) - set(cur.get("pii", []))):
            if feat in cur["features"]:
                err(
                    f"{name}:{feat}",
                    f"`pii` tag removed from {name}:{feat}; it would be served raw: "
                    "restore the tag",
                )
        if sorted(cur["entities"]) != sorted(view["entities"]):
            err(
                name,
                f"entities of {name} changed {view['entities']} -> {cur['entities']}; "
                "add a new feature view for the new keys instead",
            )
        for key, label in (
            ("timestamp_field", "timestamp field"),
            ("created_timestamp_column", "created timestamp column"),
        ):
            was, now = view["source"][key], cur["source"][key]
            if was != now:
                err(
                    name,
                    f"{label} of {name}'s source changed {was!r} -> {now!r}; "
                    "point-in-time joins and materialization windows would change "
                    f"meaning: keep {was!r} (add a new source and view for the "
                    "new field)",
                )
        old_ttl, new_ttl = view["ttl_seconds"], cur["ttl_seconds"]
        if old_ttl != new_ttl:
            floor = _ttl_floor(name)
            below = (
                floor is not None
                and new_ttl != 0
                and new_ttl < floor.total_seconds()
                and (old_ttl == 0 or new_ttl < old_ttl)
            )
            if below:
                assert floor is not None
                err(
                    name,
                    f"ttl of {name} shrinks {_fmt(old_ttl)} -> {_fmt(new_ttl)}, below "
                    f"{TTL_MULTIPLE} x its schedule interval "
                    f"(= {_fmt(floor.total_seconds())}); keep at least "
                    f"{_fmt(floor.total_seconds())}",
                )
            else:
                info(name, f"ttl of {name} changed {_fmt(old_ttl)} -> {_fmt(new_ttl)}")
    for name in sorted(set(new["feature_views"]) - set(old["feature_views"])):
        info(name, f"feature view {name} added")

    # Feature services: a model's contract may grow, never shrink.
    for name, refs in old["feature_services"].items():
        cur_refs = new["feature_services"].get(name)
        if cur_refs is None:
            err(
                name,
                f"feature service {name} was removed; models reading it would break: "
                "restore it",
            )
            continue
        lost = sorted(set(refs) - set(cur_refs))
        if lost:
            err(
                name,
                f"feature service {name} lost {lost}; models reading it would break: "
                f"restore them, or create `{_suggest(name)}` with the new list",
            )
        for ref in sorted(set(cur_refs) - set(refs)):
            info(name, f"feature service {name} gained {ref}")
    for name in sorted(set(new["feature_services"]) - set(old["feature_services"])):
        info(name, f"feature service {name} added")
    return out
