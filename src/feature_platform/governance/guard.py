"""The apply guard: a breaking change does not reach the registry by accident.

``guard_apply`` compares what the registry holds (the applied state) with the
definitions about to be applied, by the one breaking-change rule
(``compare_snapshots``, which ``check`` runs against ``schema.lock.json`` too).
Breaking changes raise :class:`BreakingChangeError`, naming each change and its
additive alternative, unless the caller allows them explicitly with a reason
(``feature-platform apply --allow-breaking --reason "..."``); the reason and the
changes then go to the audit log (``feature_platform.audit``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feature_platform.errors import BadInput, BreakingChangeError
from feature_platform.governance.breaking import compare_snapshots
from feature_platform.governance.findings import Finding

if TYPE_CHECKING:
    from feature_platform.governance.schema import SchemaSnapshot

__all__ = ["BreakingChangeError", "guard_apply", "require_reason"]

OVERRIDE_HINT = (
    "If every consumer is ready for it, apply it explicitly: "
    'feature-platform apply --allow-breaking --reason "<why, who agreed>" '
    "(the reason and these changes are written to the audit log)."
)


def _refusal(changes: list[Finding], against: str) -> str:
    lines = [
        f"apply refused: {len(changes)} breaking change(s) vs {against} "
        "(never change an existing feature, add a new one):"
    ]
    lines += [f"  - [{f.change or f.rule}] {f.message}" for f in changes]
    lines.append(OVERRIDE_HINT)
    return "\n".join(lines)


def require_reason(allow_breaking: bool, reason: str | None) -> str | None:
    """The stripped reason; ``--allow-breaking`` without one is an error."""
    text = (reason or "").strip()
    if allow_breaking and not text:
        raise BadInput(
            '--allow-breaking needs --reason "..." (why the breaking change is '
            "safe, who agreed); it is written to the audit log"
        )
    if text and not allow_breaking:
        raise BadInput("--reason is only used with --allow-breaking")
    return text or None


def guard_apply(
    before: SchemaSnapshot | None,
    after: SchemaSnapshot,
    *,
    against: str,
    allow_breaking: bool = False,
) -> list[Finding]:
    """The breaking changes from ``before`` (the registry) to ``after`` (the
    definitions); raises :class:`BreakingChangeError` unless ``allow_breaking``.
    Returns them (empty for an additive apply)."""
    changes = [
        f
        for f in compare_snapshots(before, after, against=against)
        if f.severity == "error"
    ]
    if changes and not allow_breaking:
        raise BreakingChangeError(
            _refusal(changes, against), changes=changes, against=against
        )
    return changes
