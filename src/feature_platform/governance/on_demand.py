"""The breaking-change rule for on-demand feature views.

An on-demand view's outputs mean what its transformation computes from its
inputs. So, besides a removed view, a removed output or a changed output dtype
(as for any view), these are breaking:

* a changed transformation: Feast stores the function's source
  (``udf_string``); the snapshot holds it normalized (comments, docstrings,
  formatting and the function's name dropped: ``normalized_transformation``),
  so a reformat or a better docstring passes and a changed expression does not;
* a changed mode (``python`` / ``pandas``);
* a changed source list: another input view or feature, a request field added,
  removed or retyped (callers would have to send something else).

Additive (``info``): a new on-demand view, and a new output. A new output
usually needs a new line in the function; the body change then passes only if
every output served before computes the same values as before on a grid of
probe inputs (every combination of a few values per input, NULL included, one
row per call: a refusal is compared as its exception type and message). Only
``python``-mode functions are probed (their source runs alone, as Feast
rebuilds it from the registry); any other body change is refused.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feature_platform.governance.schema import (
        OnDemandSnapshot,
        SchemaSnapshot,
        ViewSnapshot,
    )

__all__ = ["compare_on_demand", "same_served_outputs"]

Report = Callable[[str, str, str], None]

# Probe values per Feast dtype name: NULL, a negative, zero, the unit, ordinary
# values.
_PROBES: dict[str, tuple[Any, ...]] = {
    "Float64": (None, -1.0, 0.0, 1.0, 2.5, 40.0, 1234.56),
    "Float32": (None, -1.0, 0.0, 1.0, 2.5, 40.0, 1234.5),
    "Int64": (None, -1, 0, 1, 7, 250),
    "Int32": (None, -1, 0, 1, 7, 250),
    "String": (None, "", "a", "books"),
    "Bool": (None, False, True),
}
MAX_PROBE_ROWS = 5000


def _inputs(view: OnDemandSnapshot, views: dict[str, ViewSnapshot]) -> dict[str, str]:
    """Input column -> dtype name (stored features by short and full name)."""
    out: dict[str, str] = {}
    for fv, names in view["sources"]["feature_views"].items():
        stored = views.get(fv)
        features = stored["features"] if stored else {}
        for name in names:
            dtype = features.get(name, "")
            out[name] = out[f"{fv}__{name}"] = dtype
    for fields in view["sources"]["request"].values():
        out.update(fields)
    return out


def _probe_rows(inputs: dict[str, str]) -> list[dict[str, Any]]:
    """Every combination of the probe values (short and full names of a stored
    feature get the same value), at most ``MAX_PROBE_ROWS``."""
    columns = sorted(c for c in inputs if "__" not in c)
    grid = [_PROBES.get(inputs[c], (None,)) for c in columns]
    rows = []
    for values in itertools.islice(itertools.product(*grid), MAX_PROBE_ROWS):
        row = dict(zip(columns, values, strict=True))
        for full in (c for c in inputs if "__" in c):
            row[full] = row.get(full.split("__", 1)[1])
        rows.append(row)
    return rows


def _outcome(fn: Callable[..., Any], row: dict[str, Any], outputs: list[str]) -> Any:
    try:
        result = fn({k: [v] for k, v in row.items()})
        return tuple(_plain(result[o][0]) for o in outputs)
    except Exception as exc:  # noqa: BLE001 - a refusal is part of the meaning
        return ("raises", type(exc).__name__, str(exc))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN is NULL
        return None
    return value


def same_served_outputs(
    old: OnDemandSnapshot,
    new: OnDemandSnapshot,
    old_views: dict[str, ViewSnapshot],
) -> int | None:
    """The number of probe rows on which the new transformation computes every
    output of the old one as the old one does; ``None`` when it does not (or
    either source cannot be run on its own)."""
    from feast.transformation.udf_rehydrate import rehydrate_udf_from_source

    if old["mode"] != "python" or new["mode"] != "python":
        return None
    before = rehydrate_udf_from_source("\n".join(old["transformation"]["source"]))
    after = rehydrate_udf_from_source("\n".join(new["transformation"]["source"]))
    if before is None or after is None:
        return None
    outputs = sorted(old["features"])
    rows = _probe_rows(_inputs(old, old_views))
    for row in rows:
        if _outcome(before, row, outputs) != _outcome(after, row, outputs):
            return None
    return len(rows)


def _diff(old: list[str], new: list[str], limit: int = 6) -> str:
    lines = [
        line.strip()
        for line in difflib.unified_diff(old, new, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    shown = "; ".join(lines[:limit])
    more = f"; ... {len(lines) - limit} more" if len(lines) > limit else ""
    return shown + more


def compare_on_demand(
    old: SchemaSnapshot | None,
    new: SchemaSnapshot,
    err: Report,
    info: Report,
) -> None:
    """Findings for the on-demand views of two snapshots (``err`` / ``info``
    take subject, change kind and message)."""
    from feature_platform.governance.findings import suggest_name

    before = (old or {}).get("on_demand_feature_views", {})
    after = new.get("on_demand_feature_views", {})
    old_views = (old or {}).get("feature_views", {})

    def version(name: str, what: str = "") -> str:
        return (
            f"create `{suggest_name(name)}`{what} beside {name} (consumers move "
            "to it when ready) instead"
        )

    for name, view in before.items():
        cur = after.get(name)
        if cur is None:
            err(
                name,
                "on_demand_view_removed",
                f"on-demand feature view {name} was removed (outputs "
                f"{sorted(view['features'])}); restore it: consumers and models "
                "read it. To replace it, " + version(name),
            )
            continue
        _compare_view(name, view, cur, old_views, err, info, version)
    for name in sorted(set(after) - set(before)):
        info(name, "on_demand_view_added", f"on-demand feature view {name} added")


def _compare_view(
    name: str,
    view: OnDemandSnapshot,
    cur: OnDemandSnapshot,
    old_views: dict[str, ViewSnapshot],
    err: Report,
    info: Report,
    version: Callable[..., str],
) -> None:
    from feature_platform.governance.findings import suggest_name

    removed = sorted(set(view["features"]) - set(cur["features"]))
    added = sorted(set(cur["features"]) - set(view["features"]))
    for out in removed:
        err(
            f"{name}:{out}",
            "on_demand_output_removed",
            f"output {name}:{out} ({view['features'][out]}) was removed; restore "
            "it: a served output is never removed or redefined. To drop it, "
            + version(name, " without it"),
        )
    for out, dtype in view["features"].items():
        now = cur["features"].get(out)
        if now is not None and now != dtype:
            err(
                f"{name}:{out}",
                "on_demand_dtype",
                f"output {name}:{out} changed dtype {dtype} -> {now}; restore "
                f"{dtype} and add a new output `{suggest_name(out)}` ({now}) instead",
            )
    for out in added:
        info(f"{name}:{out}", "on_demand_output_added", f"output {name}:{out} added")

    if view["sources"] != cur["sources"]:
        err(
            name,
            "on_demand_sources",
            f"inputs of {name} changed {_sources(view)} -> {_sources(cur)}; the "
            "outputs would be computed from other data (or callers would have to "
            "send other request fields): " + version(name, " with the new inputs"),
        )
    if view["mode"] != cur["mode"]:
        err(
            name,
            "on_demand_mode",
            f"transformation mode of {name} changed {view['mode']} -> "
            f"{cur['mode']}; " + version(name, f" in {cur['mode']} mode"),
        )
    was_fn, now_fn = view["transformation"], cur["transformation"]
    if was_fn["sha256"] == now_fn["sha256"] or view["mode"] != cur["mode"]:
        return
    change = _diff(was_fn["source"], now_fn["source"])
    probes = (
        same_served_outputs(view, cur, old_views)
        if added and not removed and view["sources"] == cur["sources"]
        else None
    )
    if probes is not None:
        info(
            name,
            "transformation_extended",
            f"transformation of {name} changed to add {added}; its served outputs "
            f"compute the same values on {probes} probe rows ({change})",
        )
        return
    err(
        name,
        "transformation",
        f"transformation of {name} changed (source sha256 "
        f"{was_fn['sha256'][:12]} -> {now_fn['sha256'][:12]}: {change}); its outputs "
        f"{sorted(view['features'])} would mean something else under the same "
        "names: keep the served function and "
        + version(name, " with the new function"),
    )


def _sources(view: OnDemandSnapshot) -> str:
    parts = [
        f"{fv}[{', '.join(names)}]"
        for fv, names in view["sources"]["feature_views"].items()
    ]
    parts += [
        f"request {src}({', '.join(f'{k}: {v}' for k, v in fields.items())})"
        for src, fields in view["sources"]["request"].items()
    ]
    return "; ".join(parts) or "nothing"
