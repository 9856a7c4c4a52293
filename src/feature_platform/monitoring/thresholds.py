"""The monitor's alert thresholds, typed from ``feature_repo/operations.py``
(``MONITORING``: one home, next to the view definitions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from feature_platform.errors import BadInput

__all__ = ["DEFAULT_PSI", "Policy", "ViewThresholds", "load_policy"]

DEFAULT_PSI = 0.2  # the usual "significant shift" line for PSI


def _ceiling(table: Mapping[str, float | None], feature: str, default: float | None):
    return table[feature] if feature in table else table.get("*", default)


@dataclass(frozen=True)
class ViewThresholds:
    """``None`` anywhere: reported, never alerted."""

    max_age: timedelta | None = None  # None: ttl / 3
    max_null_rate: Mapping[str, float | None] = field(default_factory=dict)
    max_psi: Mapping[str, float | None] = field(default_factory=dict)
    # An on-demand view's reference requests: a parquet file (relative to the
    # data directory) of recorded request values with their entity keys and
    # ``event_timestamp``; the monitor computes the reference outputs from it.
    reference_requests: str | None = None

    def null_ceiling(self, feature: str) -> float | None:
        return _ceiling(self.max_null_rate, feature, None)

    def psi_ceiling(self, feature: str) -> float | None:
        return _ceiling(self.max_psi, feature, DEFAULT_PSI)


@dataclass(frozen=True)
class Policy:
    latency_p99_ms: float | None = None
    min_reads: int = 1
    views: Mapping[str, ViewThresholds] = field(default_factory=dict)

    def view(self, name: str) -> ViewThresholds:
        return self.views.get(name, ViewThresholds())


def _check_rates(where: str, table: Any) -> dict[str, float | None]:
    if not isinstance(table, Mapping):
        raise BadInput(f"{where} must be a mapping of feature -> number or None")
    for key, value in table.items():
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise BadInput(f"{where}[{key!r}] = {value!r} must be >= 0 or None")
    return dict(table)


def _check_path(where: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise BadInput(f"{where} must be a file name (str) or None")
    return value


def load_policy(entry: Mapping[str, Any] | None = None) -> Policy:
    """The thresholds of ``operations.MONITORING`` (or ``entry``), checked."""
    if entry is None:
        from feature_platform.profiles import repo_module

        entry = repo_module("operations").MONITORING
    views: dict[str, ViewThresholds] = {}
    for name, raw in (entry.get("views") or {}).items():
        where = f"operations.MONITORING['views'][{name!r}]"
        max_age = raw.get("max_age")
        if max_age is not None and (
            not isinstance(max_age, timedelta) or max_age <= timedelta(0)
        ):
            raise BadInput(f"{where}['max_age'] must be a positive timedelta")
        views[name] = ViewThresholds(
            max_age=max_age,
            max_null_rate=_check_rates(
                f"{where}['max_null_rate']", raw.get("max_null_rate", {})
            ),
            max_psi=_check_rates(f"{where}['max_psi']", raw.get("max_psi", {})),
            reference_requests=_check_path(
                f"{where}['reference_requests']", raw.get("reference_requests")
            ),
        )
    latency = (entry.get("latency_ms") or {}).get("p99")
    return Policy(
        latency_p99_ms=None if latency is None else float(latency),
        min_reads=int(entry.get("min_reads", 1)),
        views=views,
    )
