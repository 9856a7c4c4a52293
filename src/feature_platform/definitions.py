"""Plan and apply the definitions in ``feature_repo/`` to the registry.

``apply_definitions`` is what ``feature-platform apply`` runs: under the
project's registry lock, the breaking-change guard (registry vs definitions,
``feature_platform.governance.guard``), then Feast's own apply path (what
``feast apply`` runs), with every apply recorded in the audit log
(``feature_platform.audit``).
The definitions are read fresh on every call (``load_definitions``, in
``feature_platform.governance.schema``, which also reduces them to the schema
snapshot the governance rules compare).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict

from feature_platform.errors import BadInput
from feature_platform.feature_refs import view_of
from feature_platform.governance.schema import load_definitions

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

__all__ = [
    "ApplyResult",
    "ApplySummary",
    "apply_definitions",
    "check_apply",
    "load_definitions",
    "plan_definitions",
]


class ApplySummary(TypedDict):
    """What ``apply`` prints: the project and the objects it holds (and, for
    an apply allowed to break, the breaking changes and new view versions)."""

    project: str
    objects: dict[str, list[str]]  # kind -> names
    breaking_changes: NotRequired[list[str]]
    versions: NotRequired[dict[str, str]]


@dataclass(frozen=True)
class ApplyResult:
    project: str
    registry_changes: str
    objects: dict[str, list[str]]
    feast_output: str = ""
    breaking_changes: tuple[str, ...] = ()  # applied with --allow-breaking
    versions: dict[str, str] | None = None

    def summary(self) -> ApplySummary:
        out: ApplySummary = {"project": self.project, "objects": self.objects}
        if self.breaking_changes:
            out["breaking_changes"] = list(self.breaking_changes)
            out["versions"] = self.versions or {}
        return out


def _object_names(contents: RepoContents) -> dict[str, list[str]]:
    return {
        "entities": sorted(e.name for e in contents.entities if e.name != "__dummy"),
        "data_sources": sorted(s.name for s in contents.data_sources),
        "feature_views": sorted(v.name for v in contents.feature_views),
        "on_demand_feature_views": sorted(
            v.name for v in contents.on_demand_feature_views
        ),
        "feature_services": sorted(s.name for s in contents.feature_services),
        "permissions": sorted(p.name for p in contents.permissions),
    }


def plan_definitions(store: FeatureStore) -> str:
    """What ``apply`` would change in the registry, as Feast's readable diff."""
    contents = load_definitions(Path(store.repo_path))
    registry_diff, _infra_diff, _infra = store.plan(contents)
    return registry_diff.to_string()


def check_apply(store: FeatureStore) -> None:
    """Refuse (``BreakingChangeError``) if applying the repo's definitions would
    make a breaking change to what the store's registry holds; applies nothing.
    ``feature-platform feast apply`` runs it before handing over to Feast."""
    from feature_platform.governance.guard import guard_apply
    from feature_platform.governance.schema import (
        definitions_snapshot,
        registry_snapshot,
    )

    guard_apply(
        registry_snapshot(store),
        definitions_snapshot(store.repo_path),
        against=f"registry project {store.project}",
    )


def apply_definitions(
    store: FeatureStore,
    *,
    allow_breaking: bool = False,
    reason: str | None = None,
) -> ApplyResult:
    """Apply the repo's definitions to the store's registry (create, update, delete).

    Objects that were removed from the definitions are deleted from the registry,
    like ``feast apply``. A breaking change to what the registry holds (a
    removed feature or view, a dtype, join key or source change, a shorter ttl)
    raises ``BreakingChangeError`` and applies nothing, unless
    ``allow_breaking`` with a ``reason`` (written to the audit log).
    """
    from feature_platform.governance.guard import require_reason
    from feature_platform.locks import registry_lock

    why = require_reason(allow_breaking, reason)
    # One writer per project at a time (Feast's SQL registry is read-modify-write).
    with registry_lock(store):
        return _apply_definitions(store, allow_breaking=allow_breaking, reason=why)


def _versions(store: FeatureStore, views: set[str]) -> dict[str, str]:
    """The Feast version (``vN``) of each view after an apply: the SQL registry
    keeps every schema version of a view in its history."""
    out = {}
    for name in sorted(views):
        view = store.registry.get_feature_view(name, store.project)
        number = view.current_version_number
        if number is not None:
            out[name] = f"v{number}"
    return out


def _apply_definitions(
    store: FeatureStore, *, allow_breaking: bool, reason: str | None
) -> ApplyResult:
    from feast.repo_operations import apply_total_with_repo_instance

    from feature_platform.audit import audit_before_apply, record_apply
    from feature_platform.governance.guard import guard_apply
    from feature_platform.governance.schema import snapshot

    contents = load_definitions(Path(store.repo_path))
    projects = [p.name for p in contents.projects]
    if projects and projects != [store.project]:
        raise BadInput(
            f"definitions declare project {projects}, the profile says "
            f"{store.project!r}; set FEATURE_PLATFORM_PROJECT consistently"
        )
    after = snapshot(
        entities=contents.entities,
        feature_views=contents.feature_views,
        feature_services=contents.feature_services,
        on_demand_feature_views=contents.on_demand_feature_views,
        repo=store.repo_path,
    )
    before = audit_before_apply(store)  # the registry's state (applied)
    # The guard: refuses breaking changes before anything is written.
    breaking = guard_apply(
        before,
        after,
        against=f"registry project {store.project}",
        allow_breaking=allow_breaking,
    )
    registry_diff, _infra_diff, _infra = store.plan(contents)
    # Feast's own apply path (what `feast apply` runs): validates the sources,
    # applies additions/updates and deletes objects removed from the repo. Its
    # console output is kept in the result instead of printed.
    feast_output = io.StringIO()
    with contextlib.redirect_stdout(feast_output):
        apply_total_with_repo_instance(
            store, store.project, store.registry, contents, skip_source_validation=False
        )
    store.refresh_registry()
    versions = (
        _versions(
            store,
            {view_of(f.subject) for f in breaking} & set(after["feature_views"]),
        )
        if breaking
        else None
    )
    result = ApplyResult(
        project=store.project,
        registry_changes=registry_diff.to_string(),
        objects=_object_names(contents),
        feast_output=feast_output.getvalue(),
        breaking_changes=tuple(f.message for f in breaking),
        versions=versions,
    )
    # Audit log: who, when, git commit and the diff, in the registry's database;
    # for an allowed breaking change also the reason, the changes and versions.
    record_apply(
        store,
        before=before,
        after=after,
        registry_changes=result.registry_changes,
        reason=reason,
        breaking=breaking,
        versions=versions,
    )
    return result
