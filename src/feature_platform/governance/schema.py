"""The schema contract of the definitions, and the committed lock file.

The definitions in ``feature_repo/`` are reduced to a *schema snapshot*
(entities, views with feature dtypes, ttl, pii fields, source timestamps and
where the source reads -- path, table or query --, on-demand views with their
outputs, inputs and normalized transformation source, services): a JSON-able dict
in a stable order. ``schema.lock.json`` in the repo holds the accepted
snapshot; the registry's snapshot is built from the same objects read back from
Feast.

``load_definitions`` imports a repo's definition files fresh. Feast's own
``parse_repo`` imports them by module name relative to the current directory,
and Python caches those modules: a long-lived process (tests, the Airflow
worker, a notebook) that reads twice, or reads two repo directories, would
silently reuse stale modules. So the repo's modules are dropped from
``sys.modules`` before and after parsing.
"""

from __future__ import annotations

import ast
import contextlib
import json
import sys
import threading
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from feature_platform.pii import pii_fields

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.repo_contents import RepoContents

__all__ = [
    "EMPTY_SNAPSHOT",
    "LOCK_FILE",
    "SNAPSHOT_VERSION",
    "EntitySnapshot",
    "OnDemandSnapshot",
    "SchemaSnapshot",
    "SourceSnapshot",
    "ViewSnapshot",
    "definitions_snapshot",
    "load_definitions",
    "lock_path",
    "normalized_transformation",
    "read_lock",
    "registry_snapshot",
    "snapshot",
    "source_location",
    "write_lock",
]

LOCK_FILE = "schema.lock.json"
SNAPSHOT_VERSION = 3  # 2: source locations (type, path/table/query); 3: on-demand views


class EntitySnapshot(TypedDict):
    join_key: str
    value_type: str  # Feast's ValueType name


class SourceSnapshot(TypedDict):
    name: str
    timestamp_field: str
    created_timestamp_column: str
    location: dict[str, str]  # source_location: type and path / table / query


class ViewSnapshot(TypedDict):
    """A feature view's contract."""

    entities: list[str]
    online: bool
    ttl_seconds: int
    features: dict[str, str]  # name -> dtype
    pii: list[str]
    source: SourceSnapshot


class OnDemandSources(TypedDict):
    feature_views: dict[str, list[str]]  # view -> the features it reads
    request: dict[str, dict[str, str]]  # request source -> field -> dtype


class TransformationSnapshot(TypedDict):
    sha256: str
    source: list[str]  # normalized_transformation's lines


class OnDemandSnapshot(TypedDict):
    """An on-demand view's contract."""

    features: dict[str, str]  # output -> dtype
    mode: str
    sources: OnDemandSources
    transformation: TransformationSnapshot


class SchemaSnapshot(TypedDict, total=False):
    """The schema contract (``schema.lock.json``). ``version`` is absent only
    from ``EMPTY_SNAPSHOT`` (and locks older than it); the four maps are
    always there."""

    version: int
    entities: dict[str, EntitySnapshot]
    feature_views: dict[str, ViewSnapshot]
    on_demand_feature_views: dict[str, OnDemandSnapshot]
    feature_services: dict[str, list[str]]  # service -> sorted "view:feature"


EMPTY_SNAPSHOT: SchemaSnapshot = {
    "entities": {},
    "feature_views": {},
    "on_demand_feature_views": {},
    "feature_services": {},
}
_PARSE_LOCK = threading.Lock()  # parse_repo needs the cwd and sys.path


def _module_names(repo: Path) -> set[str]:
    return {p.stem for p in repo.glob("*.py") if p.name != "__init__.py"}


def load_definitions(repo: Path | str) -> RepoContents:
    """Import the Feast objects defined in ``repo`` (fresh, never cached)."""
    from feast.repo_operations import parse_repo

    repo = Path(repo).resolve()
    names = _module_names(repo)
    with _PARSE_LOCK, contextlib.chdir(repo):
        for name in names:
            sys.modules.pop(name, None)
        sys.path.insert(0, str(repo))
        try:
            contents = parse_repo(repo)
        finally:
            sys.path.remove(str(repo))
            for name in names:
                sys.modules.pop(name, None)
    return contents


def _portable(text: str, repo: Path | None) -> str:
    """A source location without this machine's directories: the data directory
    (``$FEATURE_PLATFORM_DATA_DIR``, else the repo's ``data/``) becomes
    ``{data_dir}`` and the repo directory ``{repo}``. The committed lock then
    compares on any checkout, and the same dataset under another data directory
    (a profile's setting) is the same source; another file, table or query is not.
    """
    from feature_platform.settings import settings

    data_dir = settings().data_dir
    if data_dir:
        text = text.replace(data_dir.rstrip("/"), "{data_dir}")
    if repo is not None:
        root = str(Path(repo).resolve())
        text = text.replace(root + "/data/", "{data_dir}/").replace(root, "{repo}")
    return text


def source_location(source: Any, repo: Path | None = None) -> dict[str, str]:
    """Where a batch source reads: its type and whichever of ``path``, ``table``
    and ``query`` it has (FileSource, SparkSource, BigQuerySource, ... all name
    them so), with machine-specific directories made portable."""
    out = {"type": type(source).__name__}
    for attr in ("path", "table", "query"):
        value = getattr(source, attr, None)
        if isinstance(value, str) and value:
            out[attr] = _portable(value, repo)
    return out


def _view_snapshot(view: FeatureView, repo: Path | None) -> ViewSnapshot:
    source = view.batch_source
    ttl = view.ttl or timedelta(0)
    return {
        "entities": sorted(view.entities),
        "online": bool(view.online),
        "ttl_seconds": int(ttl.total_seconds()),
        "features": {f.name: str(f.dtype) for f in view.features},
        "pii": sorted(pii_fields(view)),
        "source": {
            "name": source.name if source else "",
            "timestamp_field": source.timestamp_field if source else "",
            "created_timestamp_column": (source.created_timestamp_column or "")
            if source
            else "",
            "location": source_location(source, repo) if source else {},
        },
    }


class _StripMeaningless(ast.NodeTransformer):
    """Docstrings, type annotations, decorators and the outer function's name
    go; the code stays."""

    def __init__(self) -> None:
        self.outer = True

    @staticmethod
    def _undoc(node: Any) -> None:
        if ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:] or [ast.Pass()]

    def _function(self, node: Any) -> Any:
        self._undoc(node)
        if self.outer:
            node.name, node.decorator_list, self.outer = "_", [], False
        node.returns = None
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            arg.annotation = None
        for arg in (args.vararg, args.kwarg):
            if arg is not None:
                arg.annotation = None
        self.generic_visit(node)
        return node

    visit_FunctionDef = _function  # noqa: N815 - ast.NodeTransformer's names
    visit_AsyncFunctionDef = _function  # noqa: N815

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:  # noqa: N802
        self._undoc(node)
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:  # noqa: N802
        if node.value is None:
            return ast.Pass()
        return ast.Assign(targets=[node.target], value=node.value, lineno=0)


def normalized_transformation(source: str) -> str:
    """A transformation's meaning as text: its function's code with comments,
    docstrings, type annotations, decorators, its name and the formatting
    dropped (``ast.unparse``), so a reformat, a better docstring or a type hint
    is not a change and a changed expression is. ``source`` is what Feast
    stores as the udf's source (``udf_string``); text that does not parse is
    compared as it is, stripped."""
    import textwrap

    text = textwrap.dedent(source).strip()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    functions = [
        n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    if not functions:
        return ast.unparse(tree)
    return ast.unparse(_StripMeaningless().visit(functions[0]))


def _on_demand_snapshot(view: Any) -> OnDemandSnapshot:
    """An on-demand view's contract: outputs, inputs and the transformation
    (mode, normalized source and its hash: what ``check`` compares)."""
    import hashlib

    transformation = view.feature_transformation
    source = getattr(transformation, "udf_string", "") or view.udf_string or ""
    body = normalized_transformation(source)
    return {
        "features": {f.name: str(f.dtype) for f in view.features},
        "mode": str(view.mode),
        "sources": {
            "feature_views": {
                p.name: sorted(f.name for f in p.features)
                for p in sorted(
                    view.source_feature_view_projections.values(),
                    key=lambda p: p.name,
                )
            },
            "request": {
                r.name: {f.name: str(f.dtype) for f in r.schema}
                for r in sorted(
                    view.source_request_sources.values(), key=lambda r: r.name
                )
            },
        },
        "transformation": {
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "source": body.splitlines(),
        },
    }


def snapshot(
    *,
    entities: Iterable[Any],
    feature_views: Iterable[Any],
    feature_services: Iterable[Any],
    on_demand_feature_views: Iterable[Any] = (),
    repo: Path | str | None = None,
) -> SchemaSnapshot:
    """The schema contract of a set of Feast objects (JSON-able, stable order).

    ``repo``: the feature repo the objects come from (its directory is written
    as ``{repo}`` in source paths)."""
    repo_path = Path(repo) if repo is not None else None
    return {
        "version": SNAPSHOT_VERSION,
        "entities": {
            e.name: {"join_key": e.join_key, "value_type": e.value_type.name}
            for e in sorted(entities, key=lambda e: e.name)
            if e.name != "__dummy"
        },
        "feature_views": {
            v.name: _view_snapshot(v, repo_path)
            for v in sorted(feature_views, key=lambda v: v.name)
        },
        "on_demand_feature_views": {
            v.name: _on_demand_snapshot(v)
            for v in sorted(on_demand_feature_views, key=lambda v: v.name)
        },
        "feature_services": {
            s.name: sorted(
                f"{p.name}:{f.name}"
                for p in s.feature_view_projections
                for f in p.features
            )
            for s in sorted(feature_services, key=lambda s: s.name)
        },
    }


def definitions_snapshot(repo: Path | str) -> SchemaSnapshot:
    """Snapshot of the definitions in a feature repo directory."""
    contents = load_definitions(repo)
    return snapshot(
        entities=contents.entities,
        feature_views=contents.feature_views,
        feature_services=contents.feature_services,
        on_demand_feature_views=contents.on_demand_feature_views,
        repo=repo,
    )


def registry_snapshot(store: FeatureStore) -> SchemaSnapshot | None:
    """Snapshot of what the store's registry holds; ``None`` if nothing is applied."""
    store.refresh_registry()
    views = store.list_feature_views(allow_cache=True)
    entities = store.list_entities(allow_cache=True)
    if not views and not entities:
        return None
    return snapshot(
        entities=entities,
        feature_views=views,
        feature_services=store.list_feature_services(),
        on_demand_feature_views=store.list_on_demand_feature_views(allow_cache=True),
        repo=store.repo_path,
    )


def lock_path(repo: Path | str) -> Path:
    return Path(repo) / LOCK_FILE


def read_lock(repo: Path | str) -> SchemaSnapshot | None:
    """The committed snapshot (``None`` without a lock file)."""
    path = lock_path(repo)
    if not path.is_file():
        return None
    lock: SchemaSnapshot = json.loads(path.read_text())
    return lock


def write_lock(repo: Path | str) -> SchemaSnapshot:
    """Refresh ``schema.lock.json`` from the definitions (accepts their schema)."""
    snap = definitions_snapshot(repo)
    path = lock_path(repo)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(snap, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return snap
