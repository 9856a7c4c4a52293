"""The breaking-change rule: never change an existing feature, add a new one.

One rule, two callers: ``apply`` compares the registry (the applied state) with
the definitions and refuses an error (``feature_platform.governance.guard``);
``check`` compares the committed ``schema.lock.json`` (and, with
``--registry``, the registry) the same way.

Breaking (``error``, each with its additive alternative): an entity removed or
its join key / value type changed; a feature view removed; a feature removed or
its dtype changed; a ``pii`` tag removed; a view's entities changed; its ttl
shortened; its source's timestamp field, created-timestamp field, type, path,
table or query changed; a feature service removed or losing features; an
on-demand view removed, an output removed or retyped, its transformation, mode
or inputs changed (``feature_platform.governance.on_demand``).
Additive (``info``, which the audit log records as the schema changes of an
apply): new entities, views, on-demand views, features, on-demand outputs and
services, a longer ttl. Tags,
descriptions and owners are not part of the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feature_platform.governance.findings import Finding, suggest_name
from feature_platform.governance.on_demand import compare_on_demand
from feature_platform.governance.ttl import format_duration as _fmt
from feature_platform.governance.ttl import ttl_floor as _ttl_floor
from feature_platform.schedules import TTL_MULTIPLE

if TYPE_CHECKING:
    from feature_platform.governance.schema import SchemaSnapshot, ViewSnapshot

__all__ = ["compare_snapshots", "suggest_name"]

_LOCATION_KEYS = ("type", "path", "table", "query")


def _new_view(name: str, what: str = "") -> str:
    return (
        f"create a new view version `{suggest_name(name)}`{what} beside {name} "
        "(consumers move to it when ready) instead"
    )


def _ttl_shrinks(old: int, new: int) -> bool:
    """0 is "never expires": any finite ttl after it is shorter."""
    if new == 0:
        return False
    return old == 0 or new < old


def compare_snapshots(
    old: SchemaSnapshot | None, new: SchemaSnapshot, *, against: str
) -> list[Finding]:
    """Changes from ``old`` to ``new``: breaking ones are errors, the rest info."""
    if old is None:
        return [Finding("breaking", "info", "*", f"nothing to compare in {against}")]
    out: list[Finding] = []

    def err(subject: str, change: str, message: str) -> None:
        out.append(
            Finding("breaking", "error", subject, f"{message} (vs {against})", change)
        )

    def info(subject: str, change: str, message: str) -> None:
        out.append(
            Finding("breaking", "info", subject, f"{message} (vs {against})", change)
        )

    # Entities: join keys and value types are part of every key ever written.
    for name, ent in old["entities"].items():
        cur = new["entities"].get(name)
        if cur is None:
            err(
                name,
                "entity_removed",
                f"entity {name} was removed; restore it (views and stored keys use it)",
            )
            continue
        if cur["join_key"] != ent["join_key"]:
            err(
                name,
                "join_key",
                f"entity {name} join key changed {ent['join_key']} -> "
                f"{cur['join_key']}; restore {ent['join_key']} and add a new entity "
                f"(e.g. `{suggest_name(name)}`) for the new key instead",
            )
        if cur["value_type"] != ent["value_type"]:
            err(
                name,
                "entity_value_type",
                f"entity {name} value type changed {ent['value_type']} -> "
                f"{cur['value_type']}; stored online keys would no longer match: "
                f"restore {ent['value_type']} and add a new entity instead",
            )
    for name in sorted(set(new["entities"]) - set(old["entities"])):
        info(name, "entity_added", f"entity {name} added")

    # Feature views.
    for name, view in old["feature_views"].items():
        cur_view = new["feature_views"].get(name)
        if cur_view is None:
            err(
                name,
                "view_removed",
                f"feature view {name} was removed (features "
                f"{sorted(view['features'])}); restore it: consumers and models read "
                "it. To replace it, " + _new_view(name),
            )
            continue
        _compare_view(name, view, cur_view, err, info)
    for name in sorted(set(new["feature_views"]) - set(old["feature_views"])):
        info(name, "view_added", f"feature view {name} added")

    # On-demand views: outputs, inputs and the transformation itself.
    compare_on_demand(old, new, err, info)

    # Feature services: a model's contract may grow, never shrink.
    for name, refs in old["feature_services"].items():
        cur_refs = new["feature_services"].get(name)
        if cur_refs is None:
            err(
                name,
                "service_removed",
                f"feature service {name} was removed; models reading it would break: "
                "restore it",
            )
            continue
        lost = sorted(set(refs) - set(cur_refs))
        if lost:
            err(
                name,
                "service_lost_features",
                f"feature service {name} lost {lost}; models reading it would break: "
                f"restore them, or create `{suggest_name(name)}` with the new list",
            )
        for ref in sorted(set(cur_refs) - set(refs)):
            info(name, "service_gained", f"feature service {name} gained {ref}")
    for name in sorted(set(new["feature_services"]) - set(old["feature_services"])):
        info(name, "service_added", f"feature service {name} added")
    return out


def _compare_view(
    name: str, view: ViewSnapshot, cur: ViewSnapshot, err: Any, info: Any
) -> None:
    for feat, dtype in view["features"].items():
        ref = f"{name}:{feat}"
        if feat not in cur["features"]:
            err(
                ref,
                "feature_removed",
                f"feature {ref} ({dtype}) was removed; restore it: never remove "
                f"or redefine a served feature, add `{suggest_name(feat)}` instead",
            )
        elif cur["features"][feat] != dtype:
            err(
                ref,
                "dtype",
                f"feature {ref} changed dtype {dtype} -> {cur['features'][feat]}; "
                f"restore {dtype} and add a new feature `{suggest_name(feat)}` "
                f"({cur['features'][feat]}) instead",
            )
    for feat in sorted(set(cur["features"]) - set(view["features"])):
        info(f"{name}:{feat}", "feature_added", f"feature {name}:{feat} added")
    for feat in sorted(set(view.get("pii", [])) - set(cur.get("pii", []))):
        if feat in cur["features"]:
            err(
                f"{name}:{feat}",
                "pii_tag_removed",
                f"`pii` tag removed from {name}:{feat}; it would be served raw: "
                "restore the tag",
            )
    if sorted(cur["entities"]) != sorted(view["entities"]):
        err(
            name,
            "view_entities",
            f"entities of {name} changed {view['entities']} -> {cur['entities']}; "
            "stored rows are keyed by the old entities: " + _new_view(name),
        )

    # The source: what the values mean. A changed path, table or query (a
    # 30-day window silently becoming 90 days) or timestamp field serves other
    # numbers under the same feature names.
    was_src, now_src = view["source"], cur["source"]
    for key, label, change in (
        ("timestamp_field", "timestamp field", "source_timestamp_field"),
        ("created_timestamp_column", "created timestamp column", "source_created"),
    ):
        was, now = was_src.get(key, ""), now_src.get(key, "")
        if was != now:
            err(
                name,
                change,
                f"{label} of {name}'s source changed {was!r} -> {now!r}; "
                "point-in-time joins and materialization windows would change "
                f"meaning: keep {was!r} and {_new_view(name, ' on a new source')}",
            )
    was_loc, now_loc = was_src.get("location") or {}, now_src.get("location") or {}
    if was_loc and now_loc:  # a lock written before locations were recorded: skip
        for key in _LOCATION_KEYS:
            was, now = was_loc.get(key, ""), now_loc.get(key, "")
            if was != now:
                err(
                    name,
                    f"source_{key}",
                    f"source {key} of {name} changed {was!r} -> {now!r}; the same "
                    "feature names would serve values computed from other data: keep "
                    f"{was!r} and {_new_view(name, ' on the new source')}",
                )

    old_ttl, new_ttl = view["ttl_seconds"], cur["ttl_seconds"]
    if old_ttl == new_ttl:
        return
    if not _ttl_shrinks(old_ttl, new_ttl):
        info(
            name,
            "ttl_longer",
            f"ttl of {name} grows {_fmt(old_ttl)} -> {_fmt(new_ttl)}",
        )
        return
    floor = _ttl_floor(name)
    below = ""
    if floor is not None and new_ttl < floor.total_seconds():
        below = (
            f", below {TTL_MULTIPLE} x its schedule interval "
            f"(= {_fmt(floor.total_seconds())})"
        )
    old_text = _fmt(old_ttl) if old_ttl else "never expires"
    err(
        name,
        "ttl_shortened",
        f"ttl of {name} shrinks {old_text} -> {_fmt(new_ttl)}{below}; values "
        "consumers get today would be withheld as stale: keep "
        f"{old_text} (a longer ttl is additive), or "
        + _new_view(name, " with the shorter ttl"),
    )
