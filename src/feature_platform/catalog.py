"""The feature catalog: what features exist, who owns them, how fresh they are
and who uses them (the product spec's discoverability problem: teams rebuild
features they cannot find).

``build_catalog(store)`` reads everything from the profile's registry (the
definitions as applied: owner, team and description of each view, description,
dtype and tags of each field, the feature services) plus the operating
metadata kept beside the definitions (cadence: ``feature_repo/operations.py``
through ``feature_platform.schedules``), the materialization watermark Feast
records per view, and the registered models that consume a feature (MLflow
lineage, ``feature_platform.lineage``). ``search(catalog, text)`` finds features
by name, description or tag. ``format_catalog`` renders the text table the CLI
prints; ``FeatureCatalog.as_dict`` is the ``--json`` form.

Freshness uses the platform's one rule (``feature_platform.freshness.is_stale``)
applied to the view's watermark: ``stale`` means even the newest materialized
value is older than the ttl, so every online read of the view answers
``OUTSIDE_MAX_AGE``. (The monitor's earlier alert at ttl/3, one missed run, is
``feature_platform.monitoring``'s.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from feature_platform.errors import BadInput
from feature_platform.freshness import is_stale
from feature_platform.utc import ensure_utc, stored_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "FeatureCatalog",
    "FeatureEntry",
    "ViewEntry",
    "build_catalog",
    "format_catalog",
    "format_matches",
    "search",
]

Freshness = Literal["fresh", "stale", "never materialized", "offline only", "on demand"]
# (feature reference, feature services including it) -> registered model names
ModelConsumers = Callable[[str, tuple[str, ...]], list[str]]


@dataclass(frozen=True)
class Cadence:
    """How often a view is materialized (``feature_repo/operations.py``)."""

    schedule: str
    cron: str
    interval_seconds: float


@dataclass(frozen=True)
class FeatureEntry:
    ref: str  # "view:feature", as a feature service or a read names it
    view: str
    name: str
    dtype: str
    description: str
    owner: str
    team: str
    tags: dict[str, str]  # the view's tags overlaid with the field's own
    ttl_seconds: float | None
    cadence: Cadence | None
    last_materialized: str | None  # ISO-8601 UTC
    freshness: Freshness
    feature_services: tuple[str, ...]
    models: tuple[str, ...]


@dataclass(frozen=True)
class ViewEntry:
    name: str
    kind: Literal["batch", "stream", "on_demand"]
    online: bool
    description: str
    owner: str
    team: str
    tags: dict[str, str]
    entities: tuple[str, ...]
    ttl_seconds: float | None
    cadence: Cadence | None
    last_materialized: str | None
    age_seconds: float | None
    freshness: Freshness
    feature_services: tuple[str, ...]
    models: tuple[str, ...]
    features: tuple[FeatureEntry, ...] = field(default_factory=tuple)
    # On-demand views: the stored features they read ("view:feature"), the
    # request fields a caller sends (name -> dtype), and the transformation
    # (mode and the function's source as Feast stores it).
    sources: tuple[str, ...] = ()
    request_fields: dict[str, str] = field(default_factory=dict)
    mode: str | None = None
    transformation: str | None = None


@dataclass(frozen=True)
class FeatureCatalog:
    project: str
    generated_at: str  # ISO-8601 UTC; freshness is judged at this time
    views: tuple[ViewEntry, ...]
    feature_services: dict[str, str]  # name -> description
    # The model registry the models column comes from (credentials removed),
    # and why it lists none when it could not be read.
    lineage: str | None
    lineage_error: str | None = None

    def features(self) -> list[FeatureEntry]:
        return [f for view in self.views for f in view.features]

    def as_dict(self) -> dict[str, Any]:
        """The catalog as JSON (``dataclasses.asdict``): its shape is these
        dataclasses', which stay the one declaration of it."""
        return asdict(self)


def _no_models(_ref: str, _services: tuple[str, ...]) -> list[str]:
    return []


def _lineage(store: FeatureStore) -> tuple[ModelConsumers, str | None, str | None]:
    """Consuming models from the MLflow model registry (``feature_platform.lineage``):
    ``(lookup, registry URI, why there are none)``. A model consumes the
    feature references its registered version was trained on."""
    from feature_platform.lineage import (
        consumers_by_feature,
        registry_problem,
        tracking_uri_of,
    )
    from feature_platform.redact import redact_url

    try:
        uri = tracking_uri_of(store=store)
    except Exception as exc:  # noqa: BLE001 - a profile without MLflow
        return _no_models, None, str(exc)
    shown = redact_url(uri)
    problem = registry_problem(uri)
    if problem is not None:
        return _no_models, shown, problem
    try:
        with warnings.catch_warnings():
            # MLflow's SQL store trips SQLAlchemy's deprecation of ``noload``:
            # nothing a catalog user can act on.
            warnings.filterwarnings("ignore", message=".*noload.*")
            index = consumers_by_feature(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - registry down, schema, auth
        return _no_models, shown, f"{type(exc).__name__}: {exc}"

    def lookup(ref: str, _services: tuple[str, ...]) -> list[str]:
        return [str(m) for m in index.get(ref, [])]

    return lookup, shown, None


def _cadences() -> dict[str, Cadence]:
    from feature_platform.schedules import load_schedules

    out: dict[str, Cadence] = {}
    for name, schedule in load_schedules().items():
        for view in schedule.feature_views:
            out[view] = Cadence(name, schedule.cron, schedule.interval.total_seconds())
    return out


def _freshness(
    online: bool, watermark: datetime | None, ttl: timedelta | None, now: datetime
) -> Freshness:
    if not online:
        return "offline only"
    if watermark is None:
        return "never materialized"
    return "stale" if is_stale(watermark, ttl, now) else "fresh"


def build_catalog(
    store: FeatureStore,
    *,
    now: datetime | None = None,
    models: ModelConsumers | None = None,
) -> FeatureCatalog:
    """Every feature view and feature of the store's project, from its registry.

    ``now`` (aware UTC, default the clock) is when freshness is judged;
    ``models`` overrides the lookup of consuming models (default: MLflow
    lineage when available, else none).
    """
    now = ensure_utc(now, "now") if now is not None else utc_now()
    lineage: str | None
    if models is not None:
        lookup, lineage, lineage_error = models, "custom", None
    else:
        lookup, lineage, lineage_error = _lineage(store)
    registry, project = store.registry, store.project
    cadences = _cadences()

    services_of: dict[str, list[str]] = {}  # feature ref -> services
    service_docs: dict[str, str] = {}
    for service in registry.list_feature_services(project, allow_cache=False):
        service_docs[service.name] = service.description
        for projection in service.feature_view_projections:
            for feat in projection.features:
                ref = f"{projection.name}:{feat.name}"
                services_of.setdefault(ref, []).append(service.name)

    entity_keys = {
        e.name: e.join_key for e in registry.list_entities(project, allow_cache=False)
    }
    candidates: list[tuple[Any, Literal["batch", "stream", "on_demand"]]] = [
        *(
            (v, "batch")
            for v in registry.list_feature_views(project, allow_cache=False)
        ),
        *(
            (v, "stream")
            for v in registry.list_stream_feature_views(project, allow_cache=False)
        ),
        *(
            (v, "on_demand")
            for v in registry.list_on_demand_feature_views(project, allow_cache=False)
        ),
    ]
    views: list[ViewEntry] = []
    for view, kind in sorted(candidates, key=lambda c: c[0].name):
        on_demand = kind == "on_demand"
        online = bool(getattr(view, "online", True))
        ttl = None if on_demand else (view.ttl or None)
        raw_watermark = None if on_demand else view.most_recent_end_time
        watermark = stored_utc(raw_watermark) if raw_watermark else None
        fresh: Freshness = (
            "on demand" if on_demand else _freshness(online, watermark, ttl, now)
        )
        view_tags = dict(view.tags)
        owner = view.owner
        team = view_tags.get("team", "")
        cadence = cadences.get(view.name)
        last = watermark.isoformat() if watermark else None
        features = []
        for feat in view.features:
            ref = f"{view.name}:{feat.name}"
            tags = {**view_tags, **dict(feat.tags)}
            services = tuple(sorted(set(services_of.get(ref, []))))
            features.append(
                FeatureEntry(
                    ref=ref,
                    view=view.name,
                    name=feat.name,
                    dtype=str(feat.dtype),
                    description=feat.description,
                    owner=owner,
                    team=tags.get("team") or team,
                    tags=tags,
                    ttl_seconds=ttl.total_seconds() if ttl else None,
                    cadence=cadence,
                    last_materialized=last,
                    freshness=fresh,
                    feature_services=services,
                    models=tuple(dict.fromkeys(lookup(ref, services))),
                )
            )
        inputs = _on_demand_inputs(view) if on_demand else OnDemandInputs()
        views.append(
            ViewEntry(
                **inputs,
                name=view.name,
                kind=kind,
                online=online,
                description=view.description,
                owner=owner,
                team=team,
                tags=view_tags,
                entities=tuple(
                    f"{e} ({entity_keys.get(e, '?')})"
                    for e in getattr(view, "entities", [])
                ),
                ttl_seconds=ttl.total_seconds() if ttl else None,
                cadence=cadence,
                last_materialized=last,
                age_seconds=round((now - watermark).total_seconds(), 1)
                if watermark
                else None,
                freshness=fresh,
                feature_services=tuple(
                    sorted({s for f in features for s in f.feature_services})
                ),
                models=tuple(dict.fromkeys(m for f in features for m in f.models)),
                features=tuple(features),
            )
        )
    return FeatureCatalog(
        project=project,
        generated_at=now.isoformat(),
        views=tuple(views),
        feature_services=dict(sorted(service_docs.items())),
        lineage=lineage,
        lineage_error=lineage_error,
    )


class OnDemandInputs(TypedDict, total=False):
    """The ``ViewEntry`` fields only an on-demand view fills."""

    sources: tuple[str, ...]
    request_fields: dict[str, str]
    mode: str
    transformation: str | None


def _on_demand_inputs(view: Any) -> OnDemandInputs:
    """Sources, request fields and transformation of an on-demand view."""
    transformation = view.feature_transformation
    return {
        "sources": tuple(
            f"{p.name}:{f.name}"
            for p in view.source_feature_view_projections.values()
            for f in p.features
        ),
        "request_fields": {
            f.name: str(f.dtype)
            for r in view.source_request_sources.values()
            for f in r.schema
        },
        "mode": str(view.mode),
        "transformation": getattr(transformation, "udf_string", "") or None,
    }


def search(catalog: FeatureCatalog, text: str) -> list[FeatureEntry]:
    """Features whose reference, description (or their view's), or a tag key,
    value or ``key=value`` contains ``text`` at the start of a word
    (case-insensitive; ``_``, ``:`` and punctuation separate words, so ``rating``
    finds ``avg_rating`` and ``eur`` finds "EUR" but not "heuristic")."""
    import re

    needle = text.strip().lower()
    if not needle:
        raise BadInput("search text is empty: give a name, a word or a tag")
    pattern = re.compile(r"(?<![a-z0-9])" + re.escape(needle))
    view_docs = {v.name: v.description for v in catalog.views}
    matches = []
    for feat in catalog.features():
        haystack = [
            feat.ref,
            feat.description,
            view_docs.get(feat.view, ""),
            *feat.tags.keys(),
            *feat.tags.values(),
            *(f"{k}={v}" for k, v in feat.tags.items()),
        ]
        if any(pattern.search(item.lower()) for item in haystack):
            matches.append(feat)
    return matches


# ------------------------------------------------------------------ text output


def _duration(seconds: float | None) -> str:
    from feature_platform.governance.ttl import format_duration

    return "-" if seconds is None else format_duration(seconds)


def _age(seconds: float) -> str:
    """A rough age for people: ``40 s``, ``12 min``, ``5.2 h``, ``3.1 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _tags(tags: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    shown = {k: v for k, v in tags.items() if k not in set(skip)}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "-"


def _cadence(cadence: Cadence | None) -> str:
    if cadence is None:
        return "not scheduled"
    return (
        f"{cadence.schedule} ({cadence.cron}, "
        f"every {_duration(cadence.interval_seconds)})"
    )


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _models(models: Iterable[str]) -> str:
    """``name v3 @champion, v2`` per registered model (versions newest first)."""
    by_name: dict[str, list[str]] = {}
    for model in models:
        name, _, version = model.partition(" ")
        by_name.setdefault(name, []).append(version or name)
    return "; ".join(f"{n} {', '.join(v)}" for n, v in by_name.items()) or "none"


def _feature_rows(
    features: Iterable[FeatureEntry], view_tags: Mapping[str, str] | None
) -> list[list[str]]:
    return [
        [
            f.name if view_tags is not None else f.ref,
            f.dtype,
            f.description or "-",
            # A view's own tags are shown once on the view line.
            _tags(f.tags, skip=view_tags or ()),
            ", ".join(f.feature_services) or "-",
            _models(f.models),
        ]
        for f in features
    ]


_FEATURE_HEADERS = ["feature", "dtype", "description", "tags", "services", "models"]


def format_catalog(catalog: FeatureCatalog) -> str:
    """The catalog as text: one block per view, one row per feature."""
    lines = [
        f"project {catalog.project}: {len(catalog.views)} feature views, "
        f"{len(catalog.features())} features, {len(catalog.feature_services)} "
        f"feature services (freshness at {catalog.generated_at})"
    ]
    if catalog.lineage_error:
        lines.append(
            f"models: none listed, model registry {catalog.lineage or ''} "
            f"not read ({catalog.lineage_error})"
        )
    else:
        lines.append(f"models: registered versions in {catalog.lineage}")
    for view in catalog.views:
        age = f" ({_age(view.age_seconds)} ago)" if view.age_seconds is not None else ""
        lines += [
            "",
            f"{view.name} ({view.kind}{', online' if view.online else ''})"
            f" - {view.description or 'no description'}",
            f"  owner {view.owner or '-'} | team {view.team or '-'} | "
            f"tags {_tags(view.tags)}",
            f"  entities {', '.join(view.entities) or '-'} | ttl "
            f"{_duration(view.ttl_seconds)} | cadence {_cadence(view.cadence)}",
            *(
                _on_demand_lines(view)
                if view.kind == "on_demand"
                else [
                    f"  last materialized {view.last_materialized or 'never'}{age} | "
                    f"{view.freshness}"
                ]
            ),
            *_table(_FEATURE_HEADERS, _feature_rows(view.features, view.tags)),
        ]
    return "\n".join(lines)


def _on_demand_lines(view: ViewEntry) -> list[str]:
    """Inputs and transformation of an on-demand view (its source: --json)."""
    request = ", ".join(f"{k} ({v})" for k, v in view.request_fields.items())
    first = (view.transformation or "").strip().splitlines()[:1]
    return [
        f"  computed at read time ({view.mode} mode) from "
        f"{', '.join(view.sources) or '-'} | request fields {request or '-'}",
        f"  transformation: {first[0] if first else '-'} (source: catalog --json)",
    ]


def format_matches(
    catalog: FeatureCatalog, matches: list[FeatureEntry], text: str
) -> str:
    """Search results as text, one row per feature (with view context)."""
    if not matches:
        return f"no feature matches {text!r}"
    rows = [
        [*row[:1], m.owner or "-", m.freshness, *row[1:]]
        for row, m in zip(_feature_rows(matches, None), matches, strict=True)
    ]
    headers = ["feature", "owner", "freshness", *_FEATURE_HEADERS[1:]]
    return "\n".join(
        [f"{len(matches)} feature(s) match {text!r}", *_table(headers, rows, "")]
    )
