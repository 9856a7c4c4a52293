"""Governance: TTL rule, breaking-change guard, UTC, PII masking, audit log.

* **TTL rule**: every online feature view's ttl is at least ``TTL_MULTIPLE`` (3)
  times its materialization interval (``feature_platform.schedules``), so a
  missed run or two never lets values expire between refreshes.
* **Breaking-change guard** (never change an existing feature, add a new one):
  the definitions in ``feature_repo/`` are reduced to a *schema snapshot*
  (entities, views with feature dtypes, ttl and source timestamps, services)
  and compared with the committed ``feature_repo/schema.lock.json`` and with
  what the registry holds. Removing a feature, changing a dtype, an entity's
  join key or value type, a source's timestamp fields, a feature service losing
  features or a ttl shrinking below the rule are errors; additions pass.
* **UTC**: timestamp columns of sources and entity dataframes must be
  timezone-aware UTC; anything else is rejected naming the column.
* **PII**: a field tagged ``pii`` is served only as ``sha256:<hmac hex>``
  (HMAC-SHA256 with a salt from ``$FEATURE_PLATFORM_PII_SALT``); the platform
  masks it on the way into the online store and into training sets, and
  ``check --data`` fails when a raw value is served.
* **Audit log**: every ``apply_definitions`` writes who, when, the git commit
  and the diff into ``feature_platform_audit_log`` in the registry's database.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.config import (
    ConfigError,
    NaiveTimestampError,
    ensure_utc_column,
    utc_now,
)
from feature_platform.schedules import TTL_MULTIPLE, schedule_for

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from feast import FeatureStore, FeatureView
    from feast.data_source import DataSource
    from sqlalchemy.engine import Engine

__all__ = [
    "AUDIT_TABLE",
    "DEV_PII_SALT",
    "LOCK_FILE",
    "audit_before_apply",
    "PII_SALT_ENV",
    "PII_TAG",
    "CheckReport",
    "Finding",
    "check_pii_definitions",
    "check_pii_exposure",
    "check_source_utc",
    "check_ttl_rule",
    "compare_snapshots",
    "definitions_snapshot",
    "is_masked",
    "list_audit",
    "mask_pii_array",
    "mask_pii_frame",
    "mask_pii_table",
    "mask_value",
    "pii_fields",
    "pii_salt",
    "recent_entity_rows",
    "record_apply",
    "registry_snapshot",
    "require_utc_columns",
    "run_check",
    "write_lock",
]

log = logging.getLogger(__name__)

LOCK_FILE = "schema.lock.json"
PII_TAG = "pii"
PII_SALT_ENV = "FEATURE_PLATFORM_PII_SALT"
# Development default only: production sets $FEATURE_PLATFORM_PII_SALT from a
# secret store (the production profile refuses to run with this value).
DEV_PII_SALT = "feature-platform-dev-salt"
MASK_PREFIX = "sha256:"
_MASKED = re.compile(r"^sha256:[0-9a-f]{64}$")
# Field names that look like personal data must carry the `pii` tag.
_PERSONAL = re.compile(
    r"(^|_)(e_?mail|phone|mobile|postcode|post_code|zip_?code|address|street|"
    r"first_name|last_name|full_name|birth_?date|date_of_birth|ssn|passport|iban|"
    r"ip_address)($|_)"
)
AUDIT_TABLE = "feature_platform_audit_log"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Feast colours its diff for terminals
_EMPTY_SNAPSHOT: dict[str, Any] = {
    "entities": {},
    "feature_views": {},
    "feature_services": {},
}
SNAPSHOT_VERSION = 1


# ----------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One result of a governance rule: ``error`` fails the check."""

    rule: str
    severity: str  # "error" | "warning" | "info"
    subject: str
    message: str

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


# ----------------------------------------------------------------------- snapshot


def _dtype(dtype: Any) -> str:
    return str(dtype)


def _view_snapshot(view: FeatureView) -> dict[str, Any]:
    source = view.batch_source
    ttl = view.ttl or timedelta(0)
    return {
        "entities": sorted(view.entities),
        "online": bool(view.online),
        "ttl_seconds": int(ttl.total_seconds()),
        "features": {f.name: _dtype(f.dtype) for f in view.features},
        "pii": sorted(f.name for f in view.features if PII_TAG in (f.tags or {})),
        "source": {
            "name": source.name if source else "",
            "timestamp_field": source.timestamp_field if source else "",
            "created_timestamp_column": (source.created_timestamp_column or "")
            if source
            else "",
        },
    }


def snapshot(
    *,
    entities: Iterable[Any],
    feature_views: Iterable[Any],
    feature_services: Iterable[Any],
) -> dict[str, Any]:
    """The schema contract of a set of Feast objects (JSON-able, stable order)."""
    return {
        "version": SNAPSHOT_VERSION,
        "entities": {
            e.name: {"join_key": e.join_key, "value_type": e.value_type.name}
            for e in sorted(entities, key=lambda e: e.name)
            if e.name != "__dummy"
        },
        "feature_views": {
            v.name: _view_snapshot(v)
            for v in sorted(feature_views, key=lambda v: v.name)
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


def definitions_snapshot(repo: Path | str) -> dict[str, Any]:
    """Snapshot of the definitions in a feature repo directory."""
    from feature_platform.definitions import load_definitions

    contents = load_definitions(repo)
    return snapshot(
        entities=contents.entities,
        feature_views=contents.feature_views,
        feature_services=contents.feature_services,
    )


def registry_snapshot(store: FeatureStore) -> dict[str, Any] | None:
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
    )


def lock_path(repo: Path | str) -> Path:
    return Path(repo) / LOCK_FILE


def read_lock(repo: Path | str) -> dict[str, Any] | None:
    path = lock_path(repo)
    return json.loads(path.read_text()) if path.is_file() else None


def write_lock(repo: Path | str) -> dict[str, Any]:
    """Refresh ``schema.lock.json`` from the definitions (accepts their schema)."""
    snap = definitions_snapshot(repo)
    path = lock_path(repo)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(snap, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return snap


# ------------------------------------------------------------------ rules: TTL


def _fmt(seconds: float) -> str:
    td = timedelta(seconds=seconds)
    if td.days and not td.seconds:
        return f"{td.days}d"
    hours = td.total_seconds() / 3600
    return f"{hours:g}h"


def _ttl_floor(view: str) -> timedelta | None:
    try:
        return schedule_for(view).interval * TTL_MULTIPLE
    except KeyError:
        return None


def check_ttl_rule(snap: dict[str, Any]) -> list[Finding]:
    """ttl >= TTL_MULTIPLE x materialization interval for every online view."""
    findings = []
    for name, view in snap["feature_views"].items():
        if not view["online"]:
            continue
        floor = _ttl_floor(name)
        if floor is None:
            findings.append(
                Finding(
                    "ttl",
                    "error",
                    name,
                    f"online view {name} has no materialization schedule; add it to "
                    "feature_platform.schedules.SCHEDULES",
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
                    f"ttl of {name} is {_fmt(ttl)}, below {TTL_MULTIPLE} x its "
                    f"{_fmt(interval.total_seconds())} materialization interval "
                    f"(= {_fmt(floor.total_seconds())}); raise the ttl to at least "
                    f"{_fmt(floor.total_seconds())} or materialize it more often "
                    "in feature_platform.schedules",
                )
            )
    return findings


# --------------------------------------------------------- rules: breaking changes


def _suggest(feature: str) -> str:
    return f"{feature}_v2" if not re.search(r"_v\d+$", feature) else feature + "b"


def compare_snapshots(
    old: dict[str, Any] | None, new: dict[str, Any], *, against: str
) -> list[Finding]:
    """Changes from ``old`` to ``new``: breaking ones are errors, the rest info."""
    if old is None:
        return [Finding("breaking", "info", "*", f"nothing to compare in {against}")]
    out: list[Finding] = []

    def err(subject: str, message: str) -> None:
        out.append(Finding("breaking", "error", subject, f"{message} (vs {against})"))

    def info(subject: str, message: str) -> None:
        out.append(Finding("breaking", "info", subject, f"{message} (vs {against})"))

    # Entities: join keys and value types are part of every key ever written.
    for name, ent in old["entities"].items():
        cur = new["entities"].get(name)
        if cur is None:
            err(
                name,
                f"entity {name} was removed; restore it (views and stored keys use it)",
            )
            continue
        if cur["join_key"] != ent["join_key"]:
            err(
                name,
                f"entity {name} join key changed {ent['join_key']} -> "
                f"{cur['join_key']}; restore {ent['join_key']} and add a new entity "
                "for the new key instead",
            )
        if cur["value_type"] != ent["value_type"]:
            err(
                name,
                f"entity {name} value type changed {ent['value_type']} -> "
                f"{cur['value_type']}; stored online keys would no longer match: "
                f"restore {ent['value_type']} and add a new entity instead",
            )
    for name in sorted(set(new["entities"]) - set(old["entities"])):
        info(name, f"entity {name} added")

    # Feature views.
    for name, view in old["feature_views"].items():
        cur = new["feature_views"].get(name)
        if cur is None:
            err(
                name,
                f"feature view {name} was removed (features "
                f"{sorted(view['features'])}); restore it, deprecate it first",
            )
            continue
        for feat, dtype in view["features"].items():
            ref = f"{name}:{feat}"
            if feat not in cur["features"]:
                err(
                    ref,
                    f"feature {ref} ({dtype}) was removed; restore it: never remove "
                    f"or redefine a served feature, add `{_suggest(feat)}` instead",
                )
            elif cur["features"][feat] != dtype:
                err(
                    ref,
                    f"feature {ref} changed dtype {dtype} -> {cur['features'][feat]}; "
                    f"restore {dtype} and add `{_suggest(feat)}` "
                    f"({cur['features'][feat]}) instead",
                )
        for feat in sorted(set(cur["features"]) - set(view["features"])):
            info(f"{name}:{feat}", f"feature {name}:{feat} added")
        for feat in sorted(set(view.get("pii", [])) - set(cur.get("pii", []))):
            if feat in cur["features"]:
                err(
                    f"{name}:{feat}",
                    f"`pii` tag removed from {name}:{feat}; it would be served raw: "
                    "restore the tag",
                )
        if sorted(cur["entities"]) != sorted(view["entities"]):
            err(
                name,
                f"entities of {name} changed {view['entities']} -> {cur['entities']}; "
                "add a new feature view for the new keys instead",
            )
        for key, label in (
            ("timestamp_field", "timestamp field"),
            ("created_timestamp_column", "created timestamp column"),
        ):
            was, now = view["source"][key], cur["source"][key]
            if was != now:
                err(
                    name,
                    f"{label} of {name}'s source changed {was!r} -> {now!r}; "
                    "point-in-time joins and materialization windows would change "
                    f"meaning: keep {was!r} (add a new source and view for the "
                    "new field)",
                )
        old_ttl, new_ttl = view["ttl_seconds"], cur["ttl_seconds"]
        if old_ttl != new_ttl:
            floor = _ttl_floor(name)
            below = (
                floor is not None
                and new_ttl != 0
                and new_ttl < floor.total_seconds()
                and (old_ttl == 0 or new_ttl < old_ttl)
            )
            if below:
                assert floor is not None
                err(
                    name,
                    f"ttl of {name} shrinks {_fmt(old_ttl)} -> {_fmt(new_ttl)}, below "
                    f"{TTL_MULTIPLE} x its schedule interval "
                    f"(= {_fmt(floor.total_seconds())}); keep at least "
                    f"{_fmt(floor.total_seconds())}",
                )
            else:
                info(name, f"ttl of {name} changed {_fmt(old_ttl)} -> {_fmt(new_ttl)}")
    for name in sorted(set(new["feature_views"]) - set(old["feature_views"])):
        info(name, f"feature view {name} added")

    # Feature services: a model's contract may grow, never shrink.
    for name, refs in old["feature_services"].items():
        cur_refs = new["feature_services"].get(name)
        if cur_refs is None:
            err(
                name,
                f"feature service {name} was removed; models reading it would break: "
                "restore it",
            )
            continue
        lost = sorted(set(refs) - set(cur_refs))
        if lost:
            err(
                name,
                f"feature service {name} lost {lost}; models reading it would break: "
                f"restore them, or create `{_suggest(name)}` with the new list",
            )
        for ref in sorted(set(cur_refs) - set(refs)):
            info(name, f"feature service {name} gained {ref}")
    for name in sorted(set(new["feature_services"]) - set(old["feature_services"])):
        info(name, f"feature service {name} added")
    return out


# ------------------------------------------------------------------- rules: PII


def check_pii_definitions(snap: dict[str, Any]) -> list[Finding]:
    """Personal-looking fields must be tagged ``pii``; pii fields must be strings."""
    out = []
    for name, view in snap["feature_views"].items():
        for feat, dtype in view["features"].items():
            ref = f"{name}:{feat}"
            tagged = feat in view.get("pii", [])
            if not tagged and _PERSONAL.search(feat):
                out.append(
                    Finding(
                        "pii",
                        "error",
                        ref,
                        f"{ref} looks like personal data but is not tagged `pii`; "
                        'add tags={"pii": "<kind>"} to the Field so it is masked',
                    )
                )
            if tagged and dtype != "String":
                out.append(
                    Finding(
                        "pii",
                        "error",
                        ref,
                        f"{ref} is tagged `pii` but has dtype {dtype}; masked values "
                        "are strings: declare it String",
                    )
                )
    return out


def pii_salt() -> str:
    """The masking salt: ``$FEATURE_PLATFORM_PII_SALT`` or the dev default.

    The production profile (BigQuery sources) refuses the dev default.
    """
    salt = os.environ.get(PII_SALT_ENV)
    if salt:
        return salt
    if os.environ.get("FEATURE_PLATFORM_OFFLINE") == "bigquery":
        raise ConfigError(
            f"${PII_SALT_ENV} is not set; the production profile needs a secret "
            "salt to mask `pii` fields (the dev default is public)"
        )
    return DEV_PII_SALT


def mask_value(value: Any, *, salt: str | None = None) -> str | None:
    """``sha256:<hex>`` of HMAC-SHA256(salt, value); nulls stay null; idempotent."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value)
    if _MASKED.match(text):
        return text
    key = (salt if salt is not None else pii_salt()).encode()
    return MASK_PREFIX + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def is_masked(value: Any) -> bool:
    """True for nulls and masked values; False for anything served raw."""
    return value is None or (isinstance(value, str) and bool(_MASKED.match(value)))


def pii_fields(view: Any) -> list[str]:
    """Names of a view's (or projection's) fields tagged ``pii``."""
    return [f.name for f in view.features if PII_TAG in (f.tags or {})]


def _mask_list(values: Sequence[Any], salt: str) -> list[str | None]:
    cache: dict[Any, str | None] = {}
    out = []
    for v in values:
        if v not in cache:
            cache[v] = mask_value(v, salt=salt)
        out.append(cache[v])
    return out


def mask_pii_array(array: pa.Array, *, salt: str | None = None) -> pa.Array:
    """Mask one Arrow column (string result, nulls kept)."""
    import pyarrow as pa

    salt = salt if salt is not None else pii_salt()
    return pa.array(_mask_list(array.to_pylist(), salt), pa.string())


def mask_pii_table(table: pa.Table, view: Any, *, salt: str | None = None) -> pa.Table:
    """Mask the view's ``pii`` columns of an Arrow table (before any store write)."""
    import pyarrow as pa

    salt = salt if salt is not None else pii_salt()
    for name in pii_fields(view):
        if name not in table.column_names:
            continue
        i = table.column_names.index(name)
        masked = pa.array(_mask_list(table.column(name).to_pylist(), salt), pa.string())
        table = table.set_column(i, name, masked)
    return table


def mask_pii_frame(
    df: pd.DataFrame, columns: Iterable[str], *, salt: str | None = None
) -> pd.DataFrame:
    """Mask ``columns`` of a dataframe (a copy), e.g. a training set's pii columns."""
    columns = [c for c in columns if c in df.columns]
    if not columns:
        return df
    salt = salt if salt is not None else pii_salt()
    df = df.copy()
    for col in columns:
        df[col] = _mask_list(df[col].tolist(), salt)
    return df


def check_pii_exposure(
    store: FeatureStore, *, sample: int = 200, now: Any = None
) -> list[Finding]:
    """Read a sample of entities' pii features from the online store; raw = error.

    The entity sample is the latest row per entity within each view's ttl in the
    offline source (the rows materialization would write).
    """
    out: list[Finding] = []
    now = now or utc_now()
    for view in store.list_feature_views():
        fields = pii_fields(view)
        if not view.online or not fields:
            continue
        keys = recent_entity_rows(store, view, now=now, limit=sample)
        if not keys:
            continue
        got = store.get_online_features(
            features=[f"{view.name}:{f}" for f in fields], entity_rows=keys
        ).to_dict()
        for f in fields:
            raw = [v for v in got.get(f, []) if not is_masked(v)]
            if raw:
                out.append(
                    Finding(
                        "pii",
                        "error",
                        f"{view.name}:{f}",
                        f"{len(raw)} of {len(keys)} sampled online values of "
                        f"{view.name}:{f} are served unmasked "
                        f"(e.g. {str(raw[0])[:3]}…); "
                        "materialize through feature_platform (it masks `pii` fields), "
                        "then re-run the check",
                    )
                )
            else:
                out.append(
                    Finding(
                        "pii",
                        "info",
                        f"{view.name}:{f}",
                        f"{len(keys)} sampled online values of {view.name}:{f} masked",
                    )
                )
    return out


def batch_source(view: FeatureView) -> DataSource:
    """The view's batch source (a clear error for views without one)."""
    if view.batch_source is None:
        raise ValueError(f"feature view {view.name!r} has no batch source")
    return view.batch_source


def recent_entity_rows(
    store: FeatureStore, view: FeatureView, *, now: Any, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` entity keys with a source row within the view's ttl of
    ``now`` (the entities the online store should serve)."""
    from feature_platform.materialize import pull_latest

    keys = [c.name for c in view.entity_columns]
    start = now - (view.ttl or timedelta(days=1))
    df = pull_latest(store, view, start, now, features=[]).to_df()
    if df.empty:
        return []
    df = df[keys].drop_duplicates()
    if len(df) > limit:
        df = df.sample(limit, random_state=0)
    return [{k: _py(v) for k, v in row.items()} for row in df.to_dict("records")]


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------- rules: UTC


def require_utc_columns(
    df: pd.DataFrame, columns: Iterable[str], *, dataset: str
) -> pd.DataFrame:
    """Reject naive or non-UTC timestamp ``columns``; the message names the column.

    Naive and non-timestamp columns are rejected by ``config.ensure_utc_column``
    (the platform's one UTC rule); stored data must moreover *be* UTC, so another
    timezone is rejected here instead of converted.
    """
    import pandas as pd

    for col in columns:
        dtype = df[col].dtype if col in df.columns else None
        if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) != "UTC":
            raise NaiveTimestampError(
                f"{dataset}: column {col!r} is in timezone {dtype.tz}, not UTC; "
                f"store it as UTC (df[{col!r}].dt.tz_convert('UTC'))"
            )
        try:
            ensure_utc_column(df, col)
        except NaiveTimestampError as exc:
            raise NaiveTimestampError(f"{dataset}: {exc}") from exc
        except ValueError as exc:  # missing column
            raise ValueError(f"{dataset}: {exc}") from exc
    return df


def check_source_utc(store: FeatureStore) -> list[Finding]:
    """Every file source's timestamp columns are UTC (BigQuery TIMESTAMP always is)."""
    import pyarrow.parquet as pq
    from feast.infra.offline_stores.file_source import FileSource

    out = []
    seen: set[str] = set()
    for view in store.list_feature_views():
        source = view.batch_source
        if not isinstance(source, FileSource) or source.name in seen:
            continue
        seen.add(source.name)
        cols = [source.timestamp_field]
        if source.created_timestamp_column:
            cols.append(source.created_timestamp_column)
        try:
            sample = pq.ParquetFile(source.path).read_row_group(0, columns=cols)
            require_utc_columns(sample.to_pandas(), cols, dataset=source.name)
        except (NaiveTimestampError, ValueError, OSError) as exc:
            out.append(Finding("utc", "error", source.name, str(exc)))
        else:
            out.append(Finding("utc", "info", source.name, f"{cols} are UTC"))
    return out


# -------------------------------------------------------------------- the check


def run_check(
    repo: Path | str,
    *,
    store: FeatureStore | None = None,
    data: bool = False,
) -> CheckReport:
    """All governance rules over the definitions in ``repo``.

    Compares with ``schema.lock.json`` (always) and with ``store``'s registry
    (when given and it holds the project). ``data=True`` adds the checks that
    read data: UTC sources and PII exposure in the online store.
    """
    report = CheckReport()
    snap = definitions_snapshot(repo)
    report.findings += check_ttl_rule(snap)
    report.findings += check_pii_definitions(snap)
    lock = read_lock(repo)
    if lock is None:
        report.findings.append(
            Finding(
                "breaking",
                "error",
                LOCK_FILE,
                f"{lock_path(repo)} is missing; create it with "
                "`feature-platform check --update-lock` and commit it",
            )
        )
    else:
        report.compared.append(LOCK_FILE)
        report.findings += compare_snapshots(lock, snap, against=LOCK_FILE)
        if lock != snap and not report.errors:
            report.findings.append(
                Finding(
                    "breaking",
                    "warning",
                    LOCK_FILE,
                    f"{LOCK_FILE} is behind the definitions (additions only); "
                    "run `make schema-lock` and commit it so the next change is "
                    "compared with this schema",
                )
            )
    if store is not None:
        held = registry_snapshot(store)
        label = f"registry project {store.project}"
        if held is not None:
            report.compared.append(label)
        report.findings += compare_snapshots(held, snap, against=label)
        if data:
            report.findings += check_source_utc(store)
            report.findings += check_pii_exposure(store)
    return report


# -------------------------------------------------------------------- audit log


_ENGINES: dict[str, Engine] = {}
_ENGINE_LOCK = threading.Lock()


def _registry_url(store: FeatureStore) -> str:
    registry = store.config.registry
    if getattr(registry, "registry_type", "") != "sql":
        raise ValueError(
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
    )


def _ensure_audit_table(engine: Engine) -> Any:
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    table = _audit_table()
    try:
        table.metadata.create_all(engine, checkfirst=True)
    except (IntegrityError, OperationalError, ProgrammingError):
        # Another process created it between the check and the CREATE.
        table.metadata.create_all(engine, checkfirst=True)
    return table


def current_actor() -> str:
    """Who applies: ``$FEATURE_PLATFORM_ACTOR`` (CI sets it) or ``user@host``."""
    actor = os.environ.get("FEATURE_PLATFORM_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
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


def audit_before_apply(store: FeatureStore) -> dict[str, Any] | None:
    """Create the audit table if needed (fail before applying, not after) and
    return the registry's snapshot, the "before" side of the audit diff."""
    _ensure_audit_table(_engine(_registry_url(store)))
    return registry_snapshot(store)


def record_apply(
    store: FeatureStore,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    registry_changes: str,
    actor: str | None = None,
) -> dict[str, Any]:
    """Write one audit row for an apply; returns it (JSON-able)."""
    from sqlalchemy import insert

    commit, dirty = git_state(store.repo_path)
    changes = [
        f.as_dict()
        for f in compare_snapshots(
            before or _EMPTY_SNAPSHOT, after, against="previous registry state"
        )
    ]
    row = {
        "project": store.project,
        "applied_at": utc_now(),
        "actor": actor or current_actor(),
        "git_commit": commit,
        "git_dirty": None if dirty is None else str(dirty).lower(),
        "registry_changes": _ANSI.sub("", registry_changes),
        "schema_changes": json.dumps(changes),
        "objects": json.dumps(
            {
                k: sorted(after[k])
                for k in ("entities", "feature_views", "feature_services")
            }
        ),
    }
    engine = _engine(_registry_url(store))
    table = _ensure_audit_table(engine)
    with engine.begin() as conn:
        result = conn.execute(insert(table).values(**row))
        row_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    return {**_jsonable(row), "id": row_id}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("schema_changes", "objects"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    when = out.get("applied_at")
    if when is not None and hasattr(when, "isoformat"):
        if when.tzinfo is None:  # SQLite drops the offset; stored values are UTC
            from datetime import UTC

            when = when.replace(tzinfo=UTC)
        out["applied_at"] = when.isoformat()
    return out


def list_audit(
    store: FeatureStore, *, limit: int = 50, project: str | None = None
) -> list[dict[str, Any]]:
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
