"""The audit log: every apply of the definitions, who, when, the git commit and
the diff, in ``feature_platform_audit_log`` in the registry's own database;
for an apply allowed to break consumers (``--allow-breaking --reason``) also the
reason, the breaking changes and the Feast version of each changed view.

``feature_platform.definitions.apply_definitions`` calls
``audit_before_apply`` (creates the table first, so a registry that cannot hold
the log fails before anything is applied, and returns the "before" snapshot)
and ``record_apply`` after Feast's apply; ``list_audit`` reads it back
(``feature-platform audit``). The schema changes recorded are the
breaking-change guard's findings between the registry before and the
definitions applied (``feature_platform.governance``).
"""

from __future__ import annotations

import getpass
import json
import re
import socket
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from feature_platform.errors import BadInput
from feature_platform.governance.breaking import compare_snapshots
from feature_platform.governance.schema import (
    EMPTY_SNAPSHOT,
    SchemaSnapshot,
    registry_snapshot,
)
from feature_platform.utc import utc_now

if TYPE_CHECKING:
    from feast import FeatureStore
    from sqlalchemy.engine import Engine

    from feature_platform.governance.findings import Finding, FindingDict

__all__ = [
    "AUDIT_TABLE",
    "AuditRecord",
    "audit_before_apply",
    "current_actor",
    "git_state",
    "list_audit",
    "record_apply",
]

AUDIT_TABLE = "feature_platform_audit_log"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Feast colours its diff for terminals
_ENGINES: dict[str, Engine] = {}
_ENGINE_LOCK = threading.Lock()


def _registry_url(store: FeatureStore) -> str:
    registry = store.config.registry
    if getattr(registry, "registry_type", "") != "sql":
        raise BadInput(
            "the audit log lives in the SQL registry's database; this profile's "
            f"registry type is {getattr(registry, 'registry_type', '?')!r}"
        )
    return str(registry.path)


def _engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    with _ENGINE_LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = create_engine(url, pool_pre_ping=True)
        return _ENGINES[url]


def _audit_table() -> Any:
    from sqlalchemy import (
        Column,
        DateTime,
        Integer,
        MetaData,
        String,
        Table,
        Text,
    )

    meta = MetaData()
    return Table(
        AUDIT_TABLE,
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("project", String(255), nullable=False, index=True),
        Column("applied_at", DateTime(timezone=True), nullable=False),
        Column("actor", String(255), nullable=False),
        Column("git_commit", String(64)),
        Column("git_dirty", String(8)),
        Column("registry_changes", Text),
        Column("schema_changes", Text),
        Column("objects", Text),
        # An apply with --allow-breaking: why, the breaking changes it made and
        # the Feast version of each changed view after it (JSON).
        Column("reason", Text),
        Column("breaking_changes", Text),
        Column("versions", Text),
    )


_ADDED_COLUMNS = ("reason", "breaking_changes", "versions")  # after the first schema


def _ensure_audit_table(engine: Engine) -> Any:
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    table = _audit_table()
    try:
        table.metadata.create_all(engine, checkfirst=True)
    except (IntegrityError, OperationalError, ProgrammingError):
        # Another process created it between the check and the CREATE.
        table.metadata.create_all(engine, checkfirst=True)
    # A log created before a column existed gets it (nullable, no rewrite).
    have = {c["name"] for c in inspect(engine).get_columns(AUDIT_TABLE)}
    for name in _ADDED_COLUMNS:
        if name not in have:
            try:
                with engine.begin() as conn:
                    conn.execute(
                        text(f"ALTER TABLE {AUDIT_TABLE} ADD COLUMN {name} TEXT")
                    )
            except (OperationalError, ProgrammingError):
                # Another process added it meanwhile.
                have = {c["name"] for c in inspect(engine).get_columns(AUDIT_TABLE)}
                if name not in have:
                    raise
    return table


def current_actor() -> str:
    """Who applies: ``$FEATURE_PLATFORM_ACTOR`` (CI sets it) or ``user@host``."""
    from feature_platform.settings import settings

    actor = settings().actor
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def git_state(path: Path | str) -> tuple[str | None, bool | None]:
    """(HEAD commit, definitions dirty?) of the git work tree holding ``path``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(dirty)


class AuditRecord(TypedDict):
    """One audit row as JSON (``record_apply`` returns it, ``list_audit`` and
    ``feature-platform audit`` print them)."""

    id: int | None
    project: str
    applied_at: str  # ISO-8601 UTC
    actor: str
    git_commit: str | None
    git_dirty: str | None  # "true" / "false"; None outside a git checkout
    registry_changes: str  # Feast's diff text, without colours
    schema_changes: list[FindingDict]
    objects: dict[str, list[str]]  # kind -> names after the apply
    reason: str | None
    breaking_changes: list[FindingDict]
    versions: dict[str, str]


def audit_before_apply(store: FeatureStore) -> SchemaSnapshot | None:
    """Create the audit table if needed (fail before applying, not after) and
    return the registry's snapshot, the "before" side of the audit diff."""
    _ensure_audit_table(_engine(_registry_url(store)))
    return registry_snapshot(store)


def record_apply(
    store: FeatureStore,
    *,
    before: SchemaSnapshot | None,
    after: SchemaSnapshot,
    registry_changes: str,
    actor: str | None = None,
    reason: str | None = None,
    breaking: list[Finding] | None = None,
    versions: dict[str, str] | None = None,
) -> AuditRecord:
    """Write one audit row for an apply; returns it (JSON-able).

    ``reason``, ``breaking`` and ``versions``: an apply allowed to make breaking
    changes (``--allow-breaking --reason``), the changes it made and the Feast
    version of each changed view after it."""
    from sqlalchemy import insert

    commit, dirty = git_state(store.repo_path)
    changes = [
        f.as_dict()
        for f in compare_snapshots(
            before or EMPTY_SNAPSHOT, after, against="previous registry state"
        )
    ]
    row: dict[str, Any] = {
        "project": store.project,
        "applied_at": utc_now(),
        "actor": actor or current_actor(),
        "git_commit": commit,
        "git_dirty": None if dirty is None else str(dirty).lower(),
        "registry_changes": _ANSI.sub("", registry_changes),
        "schema_changes": json.dumps(changes),
        "objects": json.dumps(
            {
                "entities": sorted(after.get("entities", {})),
                "feature_views": sorted(after.get("feature_views", {})),
                "on_demand_feature_views": sorted(
                    after.get("on_demand_feature_views", {})
                ),
                "feature_services": sorted(after.get("feature_services", {})),
            }
        ),
        "reason": reason,
        "breaking_changes": json.dumps([f.as_dict() for f in breaking or []]),
        "versions": json.dumps(versions or {}),
    }
    engine = _engine(_registry_url(store))
    table = _ensure_audit_table(engine)
    with engine.begin() as conn:
        result = conn.execute(insert(table).values(**row))
        row_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    return _jsonable({**row, "id": row_id})


def _jsonable(row: dict[str, Any]) -> AuditRecord:
    """A table row (JSON columns as text, a datetime) as an ``AuditRecord``."""
    out = dict(row)
    for key in ("schema_changes", "objects", "breaking_changes", "versions"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    when = out.get("applied_at")
    if when is not None and hasattr(when, "isoformat"):
        from feature_platform.utc import stored_utc

        # SQLite drops the offset; stored values are UTC.
        out["applied_at"] = stored_utc(when).isoformat()
    return cast("AuditRecord", out)


def list_audit(
    store: FeatureStore, *, limit: int = 50, project: str | None = None
) -> list[AuditRecord]:
    """The newest audit rows of a project (default: the store's), newest first."""
    from sqlalchemy import select

    engine = _engine(_registry_url(store))
    table = _ensure_audit_table(engine)
    query = (
        select(table)
        .where(table.c.project == (project or store.project))
        .order_by(table.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return [_jsonable(r) for r in rows]
