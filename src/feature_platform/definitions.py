"""Plan and apply the definitions in ``feature_repo/`` to the registry.

``apply_definitions`` is what ``feature-platform apply`` runs: under the
project's registry lock, Feast's own apply path (what ``feast apply`` runs),
with every apply recorded in the audit log (``feature_platform.audit``).
The definitions are read fresh on every call (``load_definitions``, in
``feature_platform.governance.schema``, which also reduces them to the schema
snapshot the governance rules compare).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.governance.schema import load_definitions

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

__all__ = ["ApplyResult", "apply_definitions", "load_definitions", "plan_definitions"]


@dataclass(frozen=True)
class ApplyResult:
    project: str
    registry_changes: str
    objects: dict[str, list[str]]
    feast_output: str = ""

    def summary(self) -> dict[str, Any]:
        return {"project": self.project, "objects": self.objects}


def _object_names(contents: RepoContents) -> dict[str, list[str]]:
    return {
        "entities": sorted(e.name for e in contents.entities if e.name != "__dummy"),
        "data_sources": sorted(s.name for s in contents.data_sources),
        "feature_views": sorted(v.name for v in contents.feature_views),
        "feature_services": sorted(s.name for s in contents.feature_services),
        "permissions": sorted(p.name for p in contents.permissions),
    }


def plan_definitions(store: FeatureStore) -> str:
    """What ``apply`` would change in the registry, as Feast's readable diff."""
    contents = load_definitions(Path(store.repo_path))
    registry_diff, _infra_diff, _infra = store.plan(contents)
    return registry_diff.to_string()


def apply_definitions(store: FeatureStore) -> ApplyResult:
    """Apply the repo's definitions to the store's registry (create, update, delete).

    Objects that were removed from the definitions are deleted from the registry,
    like ``feast apply``.
    """
    from feature_platform.locks import registry_lock

    # One writer per project at a time (Feast's SQL registry is read-modify-write).
    with registry_lock(store):
        return _apply_definitions(store)


def _apply_definitions(store: FeatureStore) -> ApplyResult:
    from feast.repo_operations import apply_total_with_repo_instance

    from feature_platform.audit import audit_before_apply, record_apply
    from feature_platform.governance.schema import snapshot

    contents = load_definitions(Path(store.repo_path))
    projects = [p.name for p in contents.projects]
    if projects and projects != [store.project]:
        raise ValueError(
            f"definitions declare project {projects}, the profile says "
            f"{store.project!r}; set FEATURE_PLATFORM_PROJECT consistently"
        )
    registry_diff, _infra_diff, _infra = store.plan(contents)
    before = audit_before_apply(store)  # audit log: the "before" side
    # Feast's own apply path (what `feast apply` runs): validates the sources,
    # applies additions/updates and deletes objects removed from the repo. Its
    # console output is kept in the result instead of printed.
    feast_output = io.StringIO()
    with contextlib.redirect_stdout(feast_output):
        apply_total_with_repo_instance(
            store, store.project, store.registry, contents, skip_source_validation=False
        )
    store.refresh_registry()
    result = ApplyResult(
        project=store.project,
        registry_changes=registry_diff.to_string(),
        objects=_object_names(contents),
        feast_output=feast_output.getvalue(),
    )
    # Audit log: who, when, git commit and the diff, in the registry's database.
    record_apply(
        store,
        before=before,
        after=snapshot(
            entities=contents.entities,
            feature_views=contents.feature_views,
            feature_services=contents.feature_services,
        ),
        registry_changes=result.registry_changes,
    )
    return result
