"""Offline-vs-online skew check: does the online store serve what the offline data says?

After a materialization, sample N entities per online feature view and compare
what the online store serves for them with the offline "latest row within ttl
as of ``end``" (newest event time, created time breaking ties), the value the
materialization should have written. The sample and the type-aware comparison
(floats within a relative tolerance, as Float32 features round-trip through
float32; integers and strings exactly; null equals null) are the platform's one
online-vs-offline sampler, ``feature_platform.quality.sampling``.

Which entities are sampled: with ``start`` (the window a run just materialized)
the entities that have a source row in ``[start, end]``, i.e. the ones the run
wrote; without it every entity with a row within ttl of ``end``.

The report gives the mismatch rate and the online null rate per view and
feature, with a few examples; the check fails above ``max_mismatch_rate``, and
it fails for a view it could not sample (no entity to compare proves nothing:
an empty window, a wrong ``end``, a source that is not readable), and when no
view was checked at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from feature_platform.errors import BadInput, SkewCheckFailed
from feature_platform.quality.sampling import (
    OnlineSample,
    sample_online,
    values_match,
)
from feature_platform.utc import ensure_utc, stored_utc

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

__all__ = [
    "SkewCheckFailed",
    "SkewSummary",
    "ViewSkew",
    "check_online_skew",
    "values_match",
]

log = logging.getLogger(__name__)
MAX_EXAMPLES = 5


class SkewExample(TypedDict):
    entity: Any  # the entity's key value(s), as sampled
    feature: str
    offline: Any  # the two values that differ, as read
    online: Any


class FeatureSkew(TypedDict):
    mismatches: int
    mismatch_rate: float
    null_rate: float


class ViewSkew(TypedDict):
    """One view's sample: counts, rates, per-feature rates and a few examples."""

    candidates: int
    sampled: int
    compared: int
    mismatches: int
    mismatch_rate: float
    null_rate: float
    by_feature: dict[str, FeatureSkew]
    examples: list[SkewExample]
    skipped: NotRequired[str]  # why the view was not sampled (backfills)
    widened: NotRequired[str]  # sampled within ttl: no source row in the window
    failed: NotRequired[str]  # why nothing was compared


class SkewSummary(TypedDict):
    """What ``check_online_skew`` returns (the DAGs' online check passes it by
    XCom); ``views`` maps each view to its sample's counts and examples."""

    end: str  # ISO-8601 UTC
    start: str | None
    max_mismatch_rate: float
    views: dict[str, ViewSkew]
    compared: int
    mismatches: int
    mismatch_rate: float
    success: bool


def _describe(summary: SkewSummary) -> str:
    """The failed check as text: each view's mismatches and examples."""
    lines = [
        f"online/offline skew above {summary['max_mismatch_rate']:.2%} "
        f"as of {summary['end']}:"
    ]
    if not summary["views"]:
        lines.append("  no online feature view was checked")
    for name, view in summary["views"].items():
        if view.get("failed"):
            lines.append(f"  {name}: {view['failed']}")
            continue
        lines.append(
            f"  {name}: {view['mismatches']} of {view['compared']} values differ "
            f"({view['mismatch_rate']:.2%}), "
            f"online null rate {view['null_rate']:.2%}"
        )
        for ex in view["examples"]:
            lines.append(
                f"    {ex['entity']} {ex['feature']}: offline={ex['offline']!r} "
                f"online={ex['online']!r}"
            )
    return "\n".join(lines)


def _empty_report() -> ViewSkew:
    return {
        "candidates": 0,
        "sampled": 0,
        "compared": 0,
        "mismatches": 0,
        "mismatch_rate": 0.0,
        "null_rate": 0.0,
        "by_feature": {},
        "examples": [],
    }


def _materialized_after(view: FeatureView, end: datetime) -> datetime | None:
    """The newest materialized end recorded for ``view`` if it is after ``end``."""
    ends = [stored_utc(e) for _, e in view.materialization_intervals]
    newest = max(ends, default=None)
    return newest if newest is not None and newest > end else None


def _view_report(sample: OnlineSample) -> ViewSkew:
    """Mismatch and online null rates of one view's sample, with a few examples."""
    n = sample.sampled
    report = _empty_report()
    report["candidates"], report["sampled"] = sample.candidates, n
    if not n:
        return report
    total_nulls = 0
    for name in sample.kinds:
        mismatches = sample.mismatches(name)
        nulls = sample.nulls(name)
        for cell in mismatches[: max(0, MAX_EXAMPLES - len(report["examples"]))]:
            report["examples"].append(
                {
                    "entity": cell.entity,
                    "feature": name,
                    "offline": cell.offline,
                    "online": cell.online,
                }
            )
        report["by_feature"][name] = {
            "mismatches": len(mismatches),
            "mismatch_rate": len(mismatches) / n,
            "null_rate": nulls / n,
        }
        report["mismatches"] += len(mismatches)
        total_nulls += nulls
    report["compared"] = n * len(sample.kinds)
    report["mismatch_rate"] = report["mismatches"] / report["compared"]
    report["null_rate"] = total_nulls / report["compared"]
    return report


def check_online_skew(
    store: FeatureStore,
    *,
    end: datetime,
    start: datetime | None = None,
    views: Iterable[str] | None = None,
    sample_size: int = 100,
    max_mismatch_rate: float = 0.0,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    seed: int = 0,
    skip_if_newer: bool = False,
    raise_on_failure: bool = True,
) -> SkewSummary:
    """Compare ``sample_size`` entities per online view with the offline latest.

    With ``skip_if_newer`` (backfills) a view whose registry records a
    materialization ending after ``end`` is skipped: it serves newer values.

    Returns a JSON-able summary (per view: sampled, compared, mismatches,
    mismatch_rate, null_rate, by_feature, examples; ``failed`` when the view
    sampled no entity). Raises :class:`SkewCheckFailed` when a view's mismatch
    rate exceeds ``max_mismatch_rate``, when a view (not skipped) sampled no
    entity, or when no view was checked (unless ``raise_on_failure`` is false).
    """
    from feature_platform.offline import online_views

    end = ensure_utc(end, "end")
    start = ensure_utc(start, "start") if start is not None else None
    if sample_size < 1:
        raise BadInput(f"sample_size must be >= 1, got {sample_size}")
    if not 0 <= max_mismatch_rate <= 1:
        raise BadInput(f"max_mismatch_rate must be in [0, 1], got {max_mismatch_rate}")
    summary: SkewSummary = {
        "end": end.isoformat(),
        "start": start.isoformat() if start else None,
        "max_mismatch_rate": max_mismatch_rate,
        "views": {},
        "compared": 0,
        "mismatches": 0,
        "mismatch_rate": 0.0,
        "success": False,
    }
    for view in online_views(store, views):
        newer = _materialized_after(view, end) if skip_if_newer else None
        if newer is not None:
            # A later window was materialized already (a backfill of the past):
            # the online store rightly holds newer values than "as of end".
            skipped = summary["views"][view.name] = _empty_report()
            skipped["skipped"] = (
                f"online store holds data materialized up to "
                f"{newer.isoformat()}, after {end.isoformat()}"
            )
            continue
        sample = sample_online(
            store,
            view,
            as_of=end,
            start=start,
            size=sample_size,
            seed=seed,
            rel_tol=rel_tol,
            abs_tol=abs_tol,
        )
        if not sample.sampled and start is not None:
            # A quiet window (no source row in it: a daily snapshot under a
            # 4-hourly schedule) still has values online: check the latest
            # within ttl as of its end instead of passing on nothing.
            sample = sample_online(
                store,
                view,
                as_of=end,
                size=sample_size,
                seed=seed,
                rel_tol=rel_tol,
                abs_tol=abs_tol,
            )
            report = _view_report(sample)
            report["widened"] = "no source row in the window: sampled within ttl"
            start_used = None
        else:
            report = _view_report(sample)
            start_used = start
        if not report["sampled"]:
            where = (
                f"in {start_used.isoformat()} .. " if start_used else "within ttl of "
            )
            report["failed"] = (
                f"sampled no entity ({report['candidates']} candidates with a "
                f"source row {where}{end.isoformat()}): nothing was compared"
            )
        summary["views"][view.name] = report
        log.info(
            "skew %s: %s/%s values differ, null rate %.3f",
            view.name,
            report["mismatches"],
            report["compared"],
            report["null_rate"],
        )
    compared = sum(v["compared"] for v in summary["views"].values())
    mismatches = sum(v["mismatches"] for v in summary["views"].values())
    summary["compared"] = compared
    summary["mismatches"] = mismatches
    summary["mismatch_rate"] = mismatches / compared if compared else 0.0
    summary["success"] = bool(summary["views"]) and all(
        not v.get("failed") and v["mismatch_rate"] <= max_mismatch_rate
        for v in summary["views"].values()
    )
    if raise_on_failure and not summary["success"]:
        raise SkewCheckFailed(summary, _describe(summary))
    return summary
