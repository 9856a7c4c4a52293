"""What a governance rule returns: findings, and the report of a whole check."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypedDict

__all__ = ["CheckReport", "CheckSummary", "Finding", "FindingDict", "suggest_name"]


def suggest_name(name: str) -> str:
    """The additive alternative's name: ``x`` -> ``x_v2``, ``x_v2`` -> ``x_v3``."""
    match = re.search(r"_v(\d+)$", name)
    if match is None:
        return f"{name}_v2"
    return f"{name[: match.start()]}_v{int(match.group(1)) + 1}"


class FindingDict(TypedDict):
    """A ``Finding`` as JSON (the CLI's output, the audit log's columns)."""

    rule: str
    severity: str
    subject: str
    message: str
    change: str


@dataclass(frozen=True)
class Finding:
    """One result of a governance rule: ``error`` fails the check."""

    rule: str
    severity: str  # "error" | "warning" | "info"
    subject: str
    message: str
    change: str = ""  # what kind of change, e.g. "dtype", "source_path"

    def as_dict(self) -> FindingDict:
        return FindingDict(
            rule=self.rule,
            severity=self.severity,
            subject=self.subject,
            message=self.message,
            change=self.change,
        )


class CheckSummary(TypedDict):
    """What ``check`` prints."""

    ok: bool
    errors: int
    warnings: int
    compared: list[str]
    findings: list[FindingDict]


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

    def summary(self) -> CheckSummary:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": sum(f.severity == "warning" for f in self.findings),
            "compared": self.compared,
            "findings": [f.as_dict() for f in self.findings],
        }
