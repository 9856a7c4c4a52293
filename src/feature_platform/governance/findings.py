"""What a governance rule returns: findings, and the report of a whole check."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CheckReport", "Finding", "suggest_name"]


def suggest_name(name: str) -> str:
    """The additive alternative's name: ``x`` -> ``x_v2``, ``x_v2`` -> ``x_v3``."""
    match = re.search(r"_v(\d+)$", name)
    if match is None:
        return f"{name}_v2"
    return f"{name[: match.start()]}_v{int(match.group(1)) + 1}"


@dataclass(frozen=True)
class Finding:
    """One result of a governance rule: ``error`` fails the check."""

    rule: str
    severity: str  # "error" | "warning" | "info"
    subject: str
    message: str
    change: str = ""  # what kind of change, e.g. "dtype", "source_path"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": sum(f.severity == "warning" for f in self.findings),
            "compared": self.compared,
            "findings": [f.as_dict() for f in self.findings],
        }
