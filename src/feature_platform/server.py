"""The HTTP feature server: Feast's FastAPI app behind a request guard.

``feast serve`` (``feast.feature_server``) answers many bad requests with a 500
(unknown feature in a known view, malformed feature reference, missing join key,
empty ``entities``, wrong key type, ragged columns, a push with missing columns
or an unparsable timestamp, an unknown push mode) and silently accepts others
(extra entity keys are ignored, ``1.5`` is truncated to driver ``1``, a feature
service *and* a feature list at once, any batch size). This module keeps Feast's
app and endpoints (``feast.feature_server.get_app``: same JSON in and out,
metrics, permissions) and adds:

* ``RequestGuard``: an ASGI middleware that reads the body of
  ``POST /get-online-features`` and ``POST /push`` (size-capped), parses it and
  checks it against a cached snapshot of the registry (``Catalog``) before Feast
  sees it. Each problem is a 4xx with ``{"error": <code>, "detail": <message>}``;
  correct requests are replayed to Feast unchanged (so a ``curl -d`` without a
  JSON content type works too).
* exception handlers that turn Feast errors into their own 4xx status with a
  plain message, an unreachable online store into a 503, and keep 500 for real
  server faults.

* ``FastReads``: on a Redis online store, a validated ``/get-online-features``
  (feature service or feature list) is answered by
  ``feature_platform.online_store.reader`` in the same worker-thread
  hop as its validation: the same JSON as Feast's endpoint, ttl rule included,
  without Feast's per-request registry lookups, proto assembly and three
  thread hops. Other stores and the cases it does not cover go to Feast.
* the registry catalog is refreshed in a background thread (a request never
  waits on PostgreSQL for a periodic refresh).

``main`` serves it with uvicorn (``make serve``): no gunicorn worker recycling
(``feast serve`` restarts each worker after ``max_requests``, which stalls the
requests queued on it), an app factory so ``--workers N`` works, and
``gc.freeze()`` after startup (a full collection over the startup heap took
100-150 ms under load: the >50 ms stalls).

Limits come from keyword arguments or the settings
(``feature_platform.config.Settings``):
``FP_SERVER_MAX_ENTITY_ROWS`` (rows per read or push, default 1000),
``FP_SERVER_MAX_BODY_BYTES`` (default 1 MiB) and ``FP_SERVER_BODY_TIMEOUT_S``
(seconds to receive a body, default 10); ``FP_SERVER_FAST_READS=0`` sends every
read through Feast's endpoint and ``FP_SERVER_GC_FREEZE=0`` skips the freeze.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.config import settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from feast import FeatureStore

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ENTITY_ROWS",
    "Catalog",
    "FastReads",
    "RequestError",
    "RequestGuard",
    "build_app",
    "create_app",
    "add_serve_arguments",
    "main",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTITY_ROWS = 1000
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_PORT = 6566  # feast serve's default
DEFAULT_REGISTRY_TTL_SEC = 5
DEFAULT_BODY_TIMEOUT_S = 10

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_READ_FIELDS = {
    "entities",
    "feature_service",
    "features",
    "full_feature_names",
    "include_feature_view_version_metadata",
}
_PUSH_FIELDS = {
    "push_source_name",
    "df",
    "to",
    "allow_registry_cache",
    "transform_on_write",
}
_PUSH_MODES = ("online", "offline", "online_and_offline")


class RequestError(Exception):
    """A client error: ``{"error": code, "detail": message}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


def _bad(detail: str, code: str = "invalid_request") -> RequestError:
    return RequestError(400, code, detail)


def _not_found(detail: str, code: str) -> RequestError:
    return RequestError(404, code, detail)


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
    """``int``/``float``/``string``/``bool``/``timestamp``, or ``any`` (unchecked)."""
    try:
        value_type = dtype.to_value_type() if hasattr(dtype, "to_value_type") else dtype
        return _KINDS.get(value_type.name, "any")
    except Exception:  # noqa: BLE001 - exotic types are not checked
        return "any"


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


@dataclass(frozen=True)
class PushInfo:
    name: str
    views: tuple[str, ...]
    timestamp_field: str
    created_field: str | None


@dataclass(frozen=True)
class Catalog:
    """What the guard checks requests against: a snapshot of the registry."""

    views: dict[str, ViewInfo]
    services: dict[str, list[tuple[str, list[str], dict[str, str]]]]
    push_sources: dict[str, PushInfo]

    @classmethod
    def from_store(cls, store: FeatureStore) -> Catalog:
        from feast.data_source import PushSource, RequestSource

        registry, project = store.registry, store.project
        views: dict[str, ViewInfo] = {}
        batch_views = registry.list_feature_views(project, allow_cache=True)
        stream_views = registry.list_stream_feature_views(project, allow_cache=True)
        for view in [*batch_views, *stream_views]:
            views[view.name] = ViewInfo(
                name=view.name,
                features={f.name: _kind(f.dtype) for f in view.features},
                keys={c.name: _kind(c.dtype) for c in view.entity_columns},
                ttl=view.ttl,
                servable=_servable(view, registry),
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
        return cls(views=views, services=services, push_sources=push_sources)


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


class _CatalogCache:
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
        self._catalog: Catalog | None = None
        self._built = 0.0
        self._refreshing = False

    def get(self, *, fresh: bool = False) -> Catalog:
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

    def _rebuild(self, now: float) -> Catalog:
        with self._lock:
            if self._catalog is not None and self._built >= now:
                return self._catalog  # another thread rebuilt it meanwhile
            try:
                catalog = Catalog.from_store(self._store)
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


# ------------------------------------------------------------------- validation


def _names(values: Sequence[str]) -> str:
    return ", ".join(sorted(values)) or "(none)"


def _check_value(value: Any, kind: str, *, where: str, nullable: bool) -> None:
    if value is None:
        if nullable:
            return
        raise _bad(f"{where} is null; entity keys must have a value", "invalid_value")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = {
        "int32": is_int,
        "int64": is_int,
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "timestamp": isinstance(value, str | int) and not isinstance(value, bool),
    }.get(kind, True)
    if not ok:
        expected = {
            "int32": "an integer",
            "int64": "an integer",
            "float": "a number",
            "string": "a string",
        }
        raise _bad(
            f"{where} must be {expected.get(kind, kind)}, got {json.dumps(value)}",
            "invalid_value",
        )
    bits = _INT_BITS.get(kind)
    if bits and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise _bad(
            f"{where}={value} is out of range for a {bits}-bit integer",
            "invalid_value",
        )
    if kind == "float" and is_int and not -(2**63) <= value < 2**63:
        # pandas/pyarrow cannot take such an int as a number (Feast: a 500).
        raise _bad(
            f"{where}={value} is too large an integer; send it as a float "
            f"(e.g. {float(value):.6e})",
            "invalid_value",
        )


def _columns(
    data: Any, *, what: str, max_rows: int
) -> tuple[dict[str, list[Any]], int]:
    """An object of equal-length, non-empty lists; returns it and the row count."""
    if not isinstance(data, dict) or not data:
        raise _bad(f"{what} must be a non-empty object of column -> list of values")
    lengths = {}
    for name, values in data.items():
        if not isinstance(values, list):
            raise _bad(
                f"{what}.{name} must be a list of values, got {json.dumps(values)}"
            )
        lengths[name] = len(values)
    sizes = set(lengths.values())
    if len(sizes) > 1:
        raise _bad(
            f"{what} columns have different lengths: {lengths}", "ragged_columns"
        )
    rows = sizes.pop()
    if rows == 0:
        raise _bad(f"{what} has no rows")
    if rows > max_rows:
        raise RequestError(
            413,
            "batch_too_large",
            f"{what} has {rows} rows; the limit is {max_rows} per request "
            "(split the batch or raise FP_SERVER_MAX_ENTITY_ROWS)",
        )
    return data, rows


def _check_fields(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise _bad(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    for flag in allowed - {"entities", "features", "feature_service", "df"}:
        value = payload.get(flag)
        if flag in {"push_source_name", "to", "feature_service"}:
            continue
        if value is not None and not isinstance(value, bool):
            raise _bad(f"{flag} must be true or false, got {json.dumps(value)}")


def check_read(
    payload: Any, catalog_for: Callable[[bool], Catalog], max_rows: int
) -> None:
    """Validate a ``/get-online-features`` body; raise ``RequestError`` if bad."""
    if not isinstance(payload, dict):
        raise _bad("the request body must be a JSON object")
    _check_fields(payload, _READ_FIELDS)
    service = payload.get("feature_service")
    features = payload.get("features")
    if service is not None and features:
        raise _bad("pass either feature_service or features, not both")
    if service is None and not features:
        raise _bad(
            "pass a feature_service name or a non-empty features list "
            "('<feature_view>:<feature>' references)"
        )
    if "entities" not in payload:
        raise _bad("entities is required: an object of join key -> list of values")
    entities, _rows = _columns(payload["entities"], what="entities", max_rows=max_rows)

    catalog = catalog_for(False)
    # (view, features, join key map) triples being read.
    reads: list[tuple[str, list[str], dict[str, str]]]
    if service is not None:
        if not isinstance(service, str):
            raise _bad(f"feature_service must be a string, got {json.dumps(service)}")
        if service not in catalog.services:
            catalog = catalog_for(True)
        if service not in catalog.services:
            raise _not_found(
                f"unknown feature service {service!r}; available: "
                f"{_names(list(catalog.services))}",
                "unknown_feature_service",
            )
        reads = catalog.services[service]
    else:
        if not isinstance(features, list) or not all(
            isinstance(f, str) for f in features
        ):
            raise _bad("features must be a list of '<feature_view>:<feature>' strings")
        by_view: dict[str, list[str]] = {}
        for ref in features:
            view_name, sep, feature = ref.partition(":")
            if not sep or not view_name or not feature or ":" in feature:
                raise _bad(
                    f"invalid feature reference {ref!r}; expected "
                    "'<feature_view>:<feature>'",
                    "invalid_feature_reference",
                )
            by_view.setdefault(view_name, []).append(feature)
        if any(v not in catalog.views for v in by_view):
            catalog = catalog_for(True)
        for view_name, names in by_view.items():
            view = catalog.views.get(view_name)
            if view is None:
                raise _not_found(
                    f"unknown feature view {view_name!r}; available: "
                    f"{_names(list(catalog.views))}",
                    "unknown_feature_view",
                )
            missing = [n for n in names if n not in view.features]
            if missing:
                raise _not_found(
                    f"unknown feature(s) {missing} in feature view {view_name!r}; "
                    f"available: {_names(list(view.features))}",
                    "unknown_feature",
                )
        reads = [(v, f, {}) for v, f in by_view.items()]

    required: dict[str, tuple[str, str]] = {}  # request key -> (kind, view)
    optional: dict[str, str] = {}
    for view_name, _features, key_map in reads:
        view = catalog.views.get(view_name)
        if view is None:  # a service pointing at a deleted view: Feast reports it
            continue
        for key, kind in view.keys.items():
            required.setdefault(key_map.get(key, key), (kind, view_name))
        optional.update(view.request_fields)
    for name, kind in optional.items():
        required.setdefault(name, (kind, "request data"))
    missing_keys = sorted(set(required) - set(entities))
    if missing_keys:
        needs = {k: required[k][1] for k in missing_keys}
        raise _bad(
            f"missing entity key(s) {missing_keys} (needed by {needs}); "
            f"this request needs {sorted(required)}",
            "missing_entity_key",
        )
    extra = sorted(set(entities) - set(required))
    if extra:
        raise _bad(
            f"unexpected entity key(s) {extra}; this request needs exactly "
            f"{sorted(required)}",
            "unexpected_entity_key",
        )
    for key, values in entities.items():
        kind = required[key][0]
        for i, value in enumerate(values):
            _check_value(value, kind, where=f"entities.{key}[{i}]", nullable=False)


def _parse_timestamp(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _bad(
            f"{where} must be an ISO-8601 string with a UTC offset "
            f"(e.g. '2026-01-01T12:00:00Z'), got {json.dumps(value)}",
            "invalid_timestamp",
        )
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad(
            f"{where}={value!r} is not an ISO-8601 timestamp", "invalid_timestamp"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad(
            f"{where}={value!r} has no timezone; send UTC ('...Z' or '+00:00')",
            "invalid_timestamp",
        )


def check_push(
    payload: Any, catalog_for: Callable[[bool], Catalog], max_rows: int
) -> None:
    """Validate a ``/push`` body; raise ``RequestError`` if bad."""
    if not isinstance(payload, dict):
        raise _bad("the request body must be a JSON object")
    _check_fields(payload, _PUSH_FIELDS)
    name = payload.get("push_source_name")
    if not isinstance(name, str) or not name:
        raise _bad("push_source_name is required (a string)")
    mode = payload.get("to", "online")
    if mode not in _PUSH_MODES:
        raise _bad(f"to must be one of {list(_PUSH_MODES)}, got {json.dumps(mode)}")
    if "df" not in payload:
        raise _bad("df is required: an object of column -> list of values")
    df, _rows = _columns(payload["df"], what="df", max_rows=max_rows)
    catalog = catalog_for(False)
    if name not in catalog.push_sources:
        catalog = catalog_for(True)
    source = catalog.push_sources.get(name)
    if source is None:
        raise _not_found(
            f"unknown push source {name!r}; available: "
            f"{_names(list(catalog.push_sources))}",
            "unknown_push_source",
        )
    columns: dict[str, tuple[str, bool]] = {
        source.timestamp_field: ("timestamp", False)
    }
    for view_name in source.views:
        view = catalog.views[view_name]
        for key, kind in view.keys.items():
            columns[key] = (kind, False)
        for feature, kind in view.features.items():
            columns.setdefault(feature, (kind, True))
    missing = sorted(set(columns) - set(df))
    if missing:
        raise _bad(
            f"df is missing column(s) {missing}; push source {name!r} needs "
            f"{sorted(columns)}",
            "missing_column",
        )
    allowed = set(columns) | ({source.created_field} if source.created_field else set())
    extra = sorted(set(df) - allowed)
    if extra:
        raise _bad(
            f"df has unexpected column(s) {extra}; push source {name!r} takes "
            f"{sorted(allowed)}",
            "unexpected_column",
        )
    for column, values in df.items():
        kind, nullable = columns.get(column, ("timestamp", False))
        for i, value in enumerate(values):
            where = f"df.{column}[{i}]"
            if kind == "timestamp":
                _parse_timestamp(value, where)
            else:
                _check_value(value, kind, where=where, nullable=nullable)


# ------------------------------------------------------------------ fast reads

_EPOCH = "1970-01-01T00:00:00Z"
_MAX_READERS = 256  # cached readers (feature services + distinct feature lists)


def _timestamp_json(seconds: int, nanos: int) -> str:
    """A Timestamp as Feast's server writes it (RFC 3339, adaptive fraction)."""
    if seconds == 0 and nanos == 0:
        return _EPOCH
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return base + "Z"
    if nanos % 1_000_000 == 0:
        return f"{base}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{base}.{nanos // 1_000:06d}Z"
    return f"{base}.{nanos:09d}Z"


def _float_json(value: Any) -> Any:
    """Non-finite floats as protobuf JSON strings (as Feast's server does)."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    return value


class FastReads:
    """``/get-online-features`` answered by ``FastOnlineReader`` on Redis.

    Same JSON as Feast's endpoint (``metadata.feature_names``, then per column
    ``values``/``statuses``/``event_timestamps``; entity columns first in request
    order, ``PRESENT`` for found and missing keys alike, as Feast reports them)
    with the ttl rule applied (``OUTSIDE_MAX_AGE``, value ``null``, event time
    kept). A reader per feature service / feature list is built once per
    catalog snapshot. Anything it does not cover (another online store, auth,
    on-demand views, views Feast would not serve now (disabled, materializing
    without ``serve_features_while_materializing``), join key maps, full feature
    names, version metadata, duplicate or colliding names) returns ``None``:
    Feast's own path answers it.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        enforce_ttl: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from feature_platform.online_store.reader import (
            UnsupportedRead,
            check_store_config,
        )

        auth = getattr(store.config.auth_config, "type", "no_auth")
        try:
            check_store_config(store.config)
            self.enabled = auth == "no_auth"
        except UnsupportedRead:
            self.enabled = False
        self._store = store
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        self._catalog: Catalog | None = None
        self._readers: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def _reader(self, payload: dict[str, Any], catalog: Catalog) -> Any | None:
        from feature_platform.online_store.reader import FastOnlineReader

        service = payload.get("feature_service")
        features = payload.get("features") or []
        key = ("service", service) if service is not None else tuple(features)
        with self._lock:
            if catalog is not self._catalog:
                self._readers = {}
                self._catalog = catalog
            if key in self._readers:
                return self._readers[key]
        projections = catalog.services.get(service, []) if service is not None else []
        if service is not None:
            views = [v for v, _f, _m in projections]
        else:
            views = [ref.partition(":")[0] for ref in features]
        reader = None
        plain = all(
            v in catalog.views
            and not catalog.views[v].on_demand
            and catalog.views[v].servable
            for v in views
        ) and not any(key_map for _v, _f, key_map in projections)  # join key maps
        if plain and len(set(features)) == len(features):
            try:
                reader = FastOnlineReader(
                    self._store,
                    feature_service=service,
                    features=None if service is not None else features,
                    enforce_ttl=self._enforce_ttl,
                    clock=self._clock,
                )
            except Exception as exc:  # noqa: BLE001 - unsupported: Feast serves it
                log.info("fast read path not used for %s: %s", key, exc)
                reader = None
            if reader is not None and len(set(reader.feature_names)) != len(
                reader.feature_names
            ):
                reader = None  # name collisions: Feast reports them
        with self._lock:
            if catalog is self._catalog:
                if len(self._readers) >= _MAX_READERS:  # many distinct lists
                    self._readers.clear()
                self._readers[key] = reader
        return reader

    def respond(self, payload: dict[str, Any], catalog: Catalog) -> bytes | None:
        """The response body for a validated read, or ``None`` for Feast's path."""
        if not self.enabled or payload.get("full_feature_names"):
            return None
        if payload.get("include_feature_view_version_metadata"):
            return None
        reader = self._reader(payload, catalog)
        if reader is None:
            return None
        entities: dict[str, list[Any]] = payload["entities"]
        n = len(next(iter(entities.values())))
        names: list[str] = list(entities)
        results: list[dict[str, Any]] = [
            {
                "values": values,
                "statuses": ["PRESENT"] * n,
                "event_timestamps": [_EPOCH] * n,
            }
            for values in entities.values()
        ]
        for view in reader.read_views(entities, now_s=self._clock()):
            stamps = [_timestamp_json(*p) if p else _EPOCH for p in view.stamps]
            for name, column in zip(view.plan.outputs, view.values, strict=True):
                names.append(name)
                results.append(
                    {
                        "values": [_float_json(v) for v in column],
                        "statuses": [
                            "OUTSIDE_MAX_AGE" if stale else "PRESENT"
                            for stale in view.stale
                        ],
                        "event_timestamps": stamps,
                    }
                )
        body = {"results": results, "metadata": {"feature_names": names}}
        # Starlette's JSONResponse encoding, byte for byte.
        return json.dumps(
            body,
            ensure_ascii=False,
            allow_nan=False,
            indent=None,
            separators=(",", ":"),
        ).encode("utf-8")


# ------------------------------------------------------------------ middleware


class RequestGuard:
    """ASGI middleware: validate read/push bodies, replay good ones to Feast."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        catalog: Callable[[bool], Catalog],
        max_entity_rows: int,
        max_body_bytes: int,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        fast_reads: FastReads | None = None,
    ) -> None:
        self.app = app
        self.catalog = catalog
        self.fast_reads = fast_reads if fast_reads and fast_reads.enabled else None
        self.max_rows = max_entity_rows
        self.max_body = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.checks: dict[
            str, Callable[[Any, Callable[[bool], Catalog], int], None]
        ] = {
            "/get-online-features": check_read,
            "/push": check_push,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = (
            self.checks.get(scope.get("path", "")) if scope["type"] == "http" else None
        )
        if check is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        from anyio import fail_after, to_thread
        from starlette.responses import JSONResponse

        try:
            try:
                # A client that stalls mid-body gets a 408 instead of holding a
                # request slot forever.
                with fail_after(self.body_timeout_s):
                    body = await self._read_body(scope, receive)
            except TimeoutError:
                raise RequestError(
                    408,
                    "body_timeout",
                    f"request body not received within {self.body_timeout_s:g} s "
                    "(FP_SERVER_BODY_TIMEOUT_S)",
                ) from None
            payload = self._parse(body)
            fast = self.fast_reads if check is check_read else None
            # One worker-thread hop: validation (an unknown name may rebuild the
            # catalog from PostgreSQL) and, on Redis, the read itself.
            answer = await to_thread.run_sync(self._handle, check, payload, fast)
        except RequestError as exc:
            response = JSONResponse(status_code=exc.status, content=exc.body())
            await response(scope, receive, send)
            return
        if answer is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", str(len(answer)).encode()),
                        (b"content-type", b"application/json"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return

        headers = [
            (k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"
        ]
        headers.append((b"content-type", b"application/json"))
        scope = {**scope, "headers": headers}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _handle(
        self,
        check: Callable[[Any, Callable[[bool], Catalog], int], None],
        payload: Any,
        fast: FastReads | None,
    ) -> bytes | None:
        check(payload, self.catalog, self.max_rows)
        if fast is None:
            return None
        return fast.respond(payload, self.catalog(False))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        too_big = RequestError(
            413,
            "body_too_large",
            f"request body is larger than {self.max_body} bytes "
            "(FP_SERVER_MAX_BODY_BYTES)",
        )
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                try:
                    if int(value) > self.max_body:
                        raise too_big
                except ValueError:
                    raise _bad("invalid Content-Length header") from None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "client_disconnected", "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _parse(body: bytes) -> Any:
        if not body.strip():
            raise _bad("the request body is empty; send a JSON object", "empty_body")
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad(
                f"the request body is not valid JSON: {exc}", "invalid_json"
            ) from None


# ------------------------------------------------------------------------- app


def build_app(
    store: FeatureStore,
    *,
    max_entity_rows: int | None = None,
    max_body_bytes: int | None = None,
    registry_ttl_sec: int = DEFAULT_REGISTRY_TTL_SEC,
    enforce_ttl: bool = True,
    fast_reads: bool = True,
) -> FastAPI:
    """Feast's feature server app for ``store`` with the request guard and handlers.

    Freshness is the online store plugin's (``feature_platform.online_store``):
    values older than their view's ttl come back ``null`` with status
    ``OUTSIDE_MAX_AGE`` on Feast's endpoint as on the fast one. ``enforce_ttl``
    only switches it for the fast JSON path (tests compare with plain Feast).

    With ``fast_reads`` (default) validated reads on a Redis online store are
    answered by ``FastReads`` (the same JSON, without Feast's per-request
    registry lookups, proto assembly and thread hops); other stores, and
    requests it does not cover, go to Feast's endpoint.
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from feast.errors import FeastError
    from feast.feature_server import get_app
    from feast.permissions.server.utils import (
        ServerType,
        init_auth_manager,
        init_security_manager,
        str_to_auth_manager_type,
    )
    from starlette.requests import Request

    # What feast's start_server does before building the app.
    auth_type = str_to_auth_manager_type(store.config.auth_config.type)
    init_security_manager(auth_type=auth_type, fs=store)
    init_auth_manager(
        auth_type=auth_type,
        server_type=ServerType.REST,
        auth_config=store.config.auth_config,
    )
    cache = _CatalogCache(store, ttl=max(1, registry_ttl_sec))
    app = get_app(store, registry_ttl_sec=registry_ttl_sec)

    async def feast_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FeastError)
        status = exc.http_status_code()
        if status >= 500:
            log.error("feast error on %s: %s", request.url.path, exc)
        return JSONResponse(
            status_code=status,
            content={"error": type(exc).__name__, "detail": str(exc)},
        )

    async def invalid_body(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content={"error": "invalid_request", "detail": "; ".join(problems)},
        )

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, FeastError):
            return await feast_error(request, exc)
        if _is_unavailable(exc):
            log.error("online store unavailable on %s: %s", request.url.path, exc)
            return JSONResponse(
                status_code=503,
                content={
                    "error": "unavailable",
                    "detail": f"online store unavailable: {exc}",
                },
            )
        log.exception("internal error on %s", request.url.path, exc_info=exc)
        return JSONResponse(
            status_code=500,
            content={
                "error": "internal_error",
                "detail": f"{type(exc).__name__}: {exc}",
            },
        )

    app.add_exception_handler(FeastError, feast_error)
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(Exception, server_error)

    current = settings()
    app.add_middleware(
        RequestGuard,
        catalog=lambda fresh: cache.get(fresh=fresh),
        max_entity_rows=max_entity_rows or current.server_max_entity_rows,
        max_body_bytes=max_body_bytes or current.server_max_body_bytes,
        body_timeout_s=current.server_body_timeout_s,
        fast_reads=FastReads(store, enforce_ttl=enforce_ttl) if fast_reads else None,
    )
    return app


def _is_unavailable(exc: BaseException) -> bool:
    try:
        import redis.exceptions as redis_errors
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError)


def create_app(
    profile: str | None = None, repo: str | None = None, **limits: Any
) -> FastAPI:
    """The served app: the profile's store, limits from ``limits`` or the settings
    (``feature_platform.config.Settings``: ``FP_SERVER_*``). uvicorn calls it
    without arguments in each worker process (``--factory``)."""
    from feature_platform.config import get_store

    current = settings()
    store = get_store(profile, repo=repo)
    app = build_app(
        store,
        max_entity_rows=limits.get("max_entity_rows"),
        max_body_bytes=limits.get("max_body_bytes"),
        registry_ttl_sec=limits.get("registry_ttl_sec")
        or current.server_registry_ttl_s,
        fast_reads=current.server_fast_reads,
    )
    if current.server_gc_freeze:
        _freeze_heap_after_startup(app)
    return app


def _freeze_heap_after_startup(app: FastAPI) -> None:
    """``gc.freeze()`` once the app has started.

    After ``import feast`` and startup the process holds a few hundred thousand
    long-lived objects; every full (generation 2) collection walks them all,
    50-150 ms with the GIL held, which stalls every request in flight. Frozen
    objects are skipped by the collector (they live as long as the process
    anyway); objects created later are collected as usual.
    """
    import gc
    from contextlib import asynccontextmanager

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> Any:
        async with inner(app_) as state:
            gc.collect()
            gc.freeze()
            log.info("gc: froze %d startup objects", gc.get_freeze_count())
            yield state

    app.router.lifespan_context = lifespan


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options (shared by ``python -m`` and ``feature-platform serve``);
    defaults come from the settings (``FP_SERVER_*``)."""
    parser.add_argument("--host", help="default $FP_SERVER_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, help="default $FP_SERVER_PORT or 6566")
    parser.add_argument(
        "--workers",
        type=int,
        help="uvicorn worker processes, no recycling (default $FP_SERVER_WORKERS, 1)",
    )
    parser.add_argument(
        "--max-entity-rows",
        type=int,
        help=f"rows per read/push (default {DEFAULT_MAX_ENTITY_ROWS}, "
        "or $FP_SERVER_MAX_ENTITY_ROWS)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        help=f"request body cap (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--registry-ttl-sec",
        type=int,
        help=f"registry refresh period (default {DEFAULT_REGISTRY_TTL_SEC})",
    )
    parser.add_argument(
        "--tls-key-file",
        help="serve HTTPS with this key (with --tls-cert-file)",
    )
    parser.add_argument(
        "--tls-cert-file",
        help="serve HTTPS with this certificate chain",
    )
    parser.add_argument("--no-access-log", action="store_true")


def serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the app (one process) or the app factory (``--workers N``)."""
    current = settings()  # a bad FP_SERVER_* value fails here, before uvicorn
    profile = getattr(args, "profile", None)
    repo = getattr(args, "repo", None)
    limits = {
        "max_entity_rows": args.max_entity_rows,
        "max_body_bytes": args.max_body_bytes,
        "registry_ttl_sec": args.registry_ttl_sec,
    }
    for name, value in limits.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    key_file = args.tls_key_file or current.server_tls_key_file
    cert_file = args.tls_cert_file or current.server_tls_cert_file
    if bool(key_file) != bool(cert_file):
        raise ValueError("HTTPS needs both --tls-key-file and --tls-cert-file")
    workers = args.workers or current.server_workers
    from feature_platform.config import load_repo_config

    load_repo_config(profile, repo=repo)  # fail fast on a bad profile

    import uvicorn

    options: dict[str, Any] = {
        "host": args.host or current.server_host,
        "port": args.port or current.server_port,
        "access_log": not args.no_access_log,
        "timeout_keep_alive": 30,
        "ssl_keyfile": key_file,
        "ssl_certfile": cert_file,
        "log_level": current.server_log_level,
    }
    if workers == 1:
        uvicorn.run(create_app(profile, repo, **limits), **options)
        return 0
    # Worker processes build their own app from the environment they inherit:
    # the one place the package hands values on through it, explicitly.
    import os

    for var, value in {
        "FEATURE_PLATFORM_PROFILE": profile,
        "FEATURE_PLATFORM_REPO": repo,
        "FP_SERVER_MAX_ENTITY_ROWS": args.max_entity_rows,
        "FP_SERVER_MAX_BODY_BYTES": args.max_body_bytes,
        "FP_SERVER_REGISTRY_TTL_SEC": args.registry_ttl_sec,
    }.items():
        if value is not None:
            os.environ[var] = str(value)
    uvicorn.run(
        "feature_platform.server:create_app", factory=True, workers=workers, **options
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m feature_platform.server``: serve the profile's store with uvicorn."""
    parser = argparse.ArgumentParser(
        prog="python -m feature_platform.server",
        description="Feast feature server with request validation (uvicorn).",
    )
    parser.add_argument("--profile", help="local, services or production")
    parser.add_argument(
        "--repo", help="feature repo directory (default: feature_repo/)"
    )
    add_serve_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
