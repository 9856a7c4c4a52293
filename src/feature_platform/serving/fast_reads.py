"""``/get-online-features`` answered from the online store plugin's reader.

Same JSON as Feast's endpoint (the plugin's freshness rule included), without
Feast's per-request registry lookups, proto assembly and thread hops.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feature_platform.feature_refs import view_of

if TYPE_CHECKING:
    from feast import FeatureStore


from feature_platform.serving.catalog import Catalog

log = logging.getLogger(__name__)

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
            self.supported = True
        except UnsupportedRead:
            self.supported = False
        # On an authenticated profile the request guard enables it: the guard
        # authorizes each read before answering it (serving.auth).
        self.enabled = self.supported and auth == "no_auth"
        self._store = store
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        self._catalog: Catalog | None = None
        self._readers: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        # Called with each view read it serves (``serving.metrics`` counts rows
        # and nulls); set by ``build_app``.
        self.observe: Callable[[Any], None] | None = None

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
            views = [view_of(ref) for ref in features]
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
            if self.observe is not None:
                self.observe(view)
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
