"""A cached snapshot of the registry that requests are checked against.

``RegistrySnapshot`` holds what a request may name (views, features and their kinds,
feature services, push sources, join keys); ``_SnapshotCache`` refreshes it in
a background thread, so a request never waits on the registry database for a
periodic refresh, and keeps the last snapshot through a registry outage.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore


from feature_platform.serving.errors import RequestError

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ the catalog

# Value kinds a JSON value is checked against (from Feast's ValueType names).
_KINDS = {
    "INT32": "int32",
    "INT64": "int64",
    "FLOAT": "float",
    "DOUBLE": "float",
    "STRING": "string",
    "BOOL": "bool",
    "UNIX_TIMESTAMP": "timestamp",
}


_INT_BITS = {"int32": 32, "int64": 64}


def _kind(dtype: Any) -> str:
    """``int``/``float``/``string``/``bool``/``timestamp`` for a Feast type
    (``feast.types`` or a ``ValueType``), ``any`` for the types whose JSON
    values the guard leaves to Feast (lists, bytes, maps, ...)."""
    value_type = dtype.to_value_type() if hasattr(dtype, "to_value_type") else dtype
    return _KINDS.get(value_type.name, "any")


@dataclass(frozen=True)
class ViewInfo:
    name: str
    features: dict[str, str]
    keys: dict[str, str]
    request_fields: dict[str, str] = field(default_factory=dict)
    on_demand: bool = False
    ttl: timedelta | None = None  # None: never expires at read (on-demand views)
    # Feast would serve it now (enabled, lifecycle state servable); the fast
    # read path leaves any other view to Feast, which answers with its error.
    servable: bool = True
    # Columns of a row written to it (POST /write-to-online-store).
    timestamp_field: str = "event_timestamp"
    created_field: str | None = None


@dataclass(frozen=True)
class PushInfo:
    name: str
    views: tuple[str, ...]
    timestamp_field: str
    created_field: str | None


@dataclass(frozen=True)
class RegistrySnapshot:
    """What the guard checks requests against: a snapshot of the registry."""

    views: dict[str, ViewInfo]
    services: dict[str, list[tuple[str, list[str], dict[str, str]]]]
    push_sources: dict[str, PushInfo]
    # The project's permissions (serialized): a changed permission is a new
    # catalog, which the authorizer's cache follows (serving.auth).
    permissions: tuple[bytes, ...] = ()

    @classmethod
    def from_store(cls, store: FeatureStore) -> RegistrySnapshot:
        from feast.data_source import PushSource, RequestSource

        registry, project = store.registry, store.project
        views: dict[str, ViewInfo] = {}
        batch_views = registry.list_feature_views(project, allow_cache=True)
        stream_views = registry.list_stream_feature_views(project, allow_cache=True)
        for view in [*batch_views, *stream_views]:
            batch_source = view.batch_source
            views[view.name] = ViewInfo(
                name=view.name,
                features={f.name: _kind(f.dtype) for f in view.features},
                keys={c.name: _kind(c.dtype) for c in view.entity_columns},
                ttl=view.ttl,
                servable=_servable(view, registry),
                timestamp_field=getattr(batch_source, "timestamp_field", "")
                or "event_timestamp",
                created_field=getattr(batch_source, "created_timestamp_column", "")
                or None,
            )
        for odfv in registry.list_on_demand_feature_views(project, allow_cache=True):
            request_fields: dict[str, str] = {}
            for source in odfv.source_request_sources.values():
                if isinstance(source, RequestSource):
                    request_fields.update(
                        {f.name: _kind(f.dtype) for f in source.schema}
                    )
            keys: dict[str, str] = {}
            for projection in odfv.source_feature_view_projections.values():
                base = views.get(projection.name)
                if base:
                    keys.update(base.keys)
            views[odfv.name] = ViewInfo(
                name=odfv.name,
                features={f.name: _kind(f.dtype) for f in odfv.features},
                keys=keys,
                request_fields=request_fields,
                on_demand=True,
            )
        services = {}
        for service in registry.list_feature_services(project, allow_cache=True):
            services[service.name] = [
                (p.name, [f.name for f in p.features], dict(p.join_key_map))
                for p in service.feature_view_projections
            ]
        push_sources = {}
        for push in registry.list_data_sources(project, allow_cache=True):
            if not isinstance(push, PushSource):
                continue
            fed = tuple(
                sorted(
                    v.name
                    for v in [*batch_views, *stream_views]
                    if isinstance(v.stream_source, PushSource)
                    and v.stream_source.name == push.name
                )
            )
            batch = push.batch_source
            push_sources[push.name] = PushInfo(
                name=push.name,
                views=fed,
                timestamp_field=batch.timestamp_field if batch else "event_timestamp",
                created_field=(batch.created_timestamp_column or None)
                if batch
                else None,
            )
        permissions = tuple(
            sorted(
                p.to_proto().SerializeToString(deterministic=True)
                for p in registry.list_permissions(project, allow_cache=True)
            )
        )
        return cls(
            views=views,
            services=services,
            push_sources=push_sources,
            permissions=permissions,
        )


def _servable(view: Any, registry: Any) -> bool:
    """Whether Feast's online read serves ``view`` now (``feast.utils`` gate)."""
    if getattr(view, "enabled", True) is False:
        return False
    state = getattr(view, "state", None)
    try:
        from feast.feature_view import FeatureViewState
    except ImportError:  # pragma: no cover - older Feast: no lifecycle states
        return True
    if not isinstance(state, FeatureViewState):
        return True
    ok = {FeatureViewState.STATE_UNSPECIFIED, FeatureViewState.AVAILABLE_ONLINE}
    if getattr(registry, "serve_features_while_materializing", False):
        ok.add(FeatureViewState.MATERIALIZING)
    return state in ok


class _SnapshotCache:
    """The registry catalog, rebuilt every ``ttl`` seconds in the background.

    Requests never wait for a periodic rebuild (a PostgreSQL round trip plus
    proto parsing): a stale catalog is served while one background thread
    rebuilds it. Only the first build, and a ``fresh`` rebuild for a name the
    snapshot does not know (at most once a second), run in the caller.
    """

    def __init__(self, store: FeatureStore, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._lock = threading.Lock()
        self._catalog: RegistrySnapshot | None = None
        self._built = 0.0
        self._refreshing = False

    def get(self, *, fresh: bool = False) -> RegistrySnapshot:
        now = time.monotonic()
        catalog = self._catalog
        if catalog is None or (fresh and now - self._built > 1):
            return self._rebuild(now)
        if now - self._built > self._ttl and not self._refreshing:
            with self._lock:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(
                        target=self._background, name="fp-catalog", daemon=True
                    ).start()
        return catalog

    def _background(self) -> None:
        try:
            self._rebuild(time.monotonic())
        except RequestError:  # first build failed: the next request retries
            pass
        finally:
            self._refreshing = False

    def _rebuild(self, now: float) -> RegistrySnapshot:
        with self._lock:
            if self._catalog is not None and self._built >= now:
                return self._catalog  # another thread rebuilt it meanwhile
            try:
                catalog = RegistrySnapshot.from_store(self._store)
            except Exception as exc:  # noqa: BLE001 - registry down or broken
                if self._catalog is None:
                    raise RequestError(
                        503, "registry_unavailable", f"registry unavailable: {exc}"
                    ) from exc
                # Keep checking against the last good snapshot meanwhile.
                log.warning("registry refresh failed, using the last catalog: %s", exc)
                catalog = self._catalog
            # An unchanged snapshot keeps its identity (readers built on it stay).
            if catalog != self._catalog:
                self._catalog = catalog
            self._built = time.monotonic()
            return self._catalog  # type: ignore[return-value]
