"""The TTL rule: an online view's ttl is at least ``TTL_MULTIPLE`` (3) times its
materialization interval (``feature_platform.schedules``), so a missed run or
two never lets values expire between refreshes."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from feature_platform.governance.findings import Finding
from feature_platform.schedules import TTL_MULTIPLE, schedule_for

if TYPE_CHECKING:
    from feature_platform.governance.schema import SchemaSnapshot

__all__ = ["check_ttl_rule", "format_duration", "ttl_floor"]


def format_duration(seconds: float) -> str:
    """``3d`` for whole days, else hours (``6h``, ``1.5h``)."""
    td = timedelta(seconds=seconds)
    if td.days and not td.seconds:
        return f"{td.days}d"
    hours = td.total_seconds() / 3600
    return f"{hours:g}h"


def ttl_floor(view: str) -> timedelta | None:
    """The smallest ttl the rule allows ``view``; ``None`` without a schedule."""
    try:
        return schedule_for(view).interval * TTL_MULTIPLE
    except KeyError:
        return None


def check_ttl_rule(snap: SchemaSnapshot) -> list[Finding]:
    """ttl >= TTL_MULTIPLE x materialization interval for every online view."""
    fmt = format_duration
    findings = []
    for name, view in snap["feature_views"].items():
        if not view["online"]:
            continue
        floor = ttl_floor(name)
        if floor is None:
            findings.append(
                Finding(
                    "ttl",
                    "error",
                    name,
                    f"online view {name} has no materialization schedule; add it to "
                    "SCHEDULES in feature_repo/operations.py",
                )
            )
            continue
        ttl = view["ttl_seconds"]
        interval = floor / TTL_MULTIPLE
        if ttl == 0:
            findings.append(
                Finding("ttl", "warning", name, f"{name} has no ttl (never expires)")
            )
        elif ttl < floor.total_seconds():
            findings.append(
                Finding(
                    "ttl",
                    "error",
                    name,
                    f"ttl of {name} is {fmt(ttl)}, below {TTL_MULTIPLE} x its "
                    f"{fmt(interval.total_seconds())} materialization interval "
                    f"(= {fmt(floor.total_seconds())}); raise the ttl to at least "
                    f"{fmt(floor.total_seconds())} or materialize it more often "
                    "in feature_platform.schedules",
                )
            )
    return findings
