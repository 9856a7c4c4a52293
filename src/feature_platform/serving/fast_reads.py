"""``/get-online-features`` answered by the online store plugin's read.

The same read as ``FeatureStore.get_online_features`` on the platform's
profiles (``PlatformRedisOnlineStore.fast_read``: the one plan cache, the
circuit breaker, the ttl rule) rendered as Feast's JSON
(``online_store.response.json_body``), in the worker-thread hop of the
request's validation: without Feast's endpoint's per-request registry lookups,
proto assembly and thread hops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feature_platform.feature_refs import view_of

if TYPE_CHECKING:
    from feast import FeatureStore


from feature_platform.errors import is_unavailable
from feature_platform.serving.snapshot import RegistrySnapshot

log = logging.getLogger(__name__)

# Why a read went to Feast's endpoint instead (the label of
# fp_serving_fast_path_fallbacks_total):
UNSUPPORTED = "unsupported"  # a read only Feast's path serves (planned)
FEAST_ERROR = "feast_error"  # Feast rejects the request: its endpoint says why
ERROR = "error"  # a fault of the fast path: a bug to fix (logged with its trace)
FALLBACK_REASONS = (UNSUPPORTED, FEAST_ERROR, ERROR)


class FastReads:
    """``/get-online-features`` answered by the online store plugin's fast read.

    Same JSON as Feast's endpoint, ttl rule included. What it does not cover
    (another online store, on-demand views written to the online store or
    aggregating, views Feast would not serve now,
    join key maps, full feature names, version metadata, duplicate or
    colliding names) goes to Feast's endpoint: ``respond`` returns ``None``.
    Every such fallback is counted (``on_fallback``, ``/metrics``) and logged
    once per request shape and reason; a fault of the fast path is logged with
    its traceback.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        enforce_ttl: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        from feast.errors import FeastError

        from feature_platform.feast_compat import provider
        from feature_platform.online_store.reader import (
            UnsupportedRead,
            check_store_config,
        )

        # What ``respond`` catches (imported here: the module loads at --help).
        self._unsupported, self._feast_error = UnsupportedRead, FeastError

        auth = getattr(store.config.auth_config, "type", "no_auth")
        self._online = provider(store).online_store
        try:
            check_store_config(store.config)
            self.supported = hasattr(self._online, "fast_read")
        except UnsupportedRead:
            self.supported = False
        # On an authenticated profile the request guard enables it: the guard
        # authorizes each read before answering it (serving.auth).
        self.enabled = self.supported and auth == "no_auth"
        self._store = store
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        self._logged: set[tuple[str, Any]] = set()
        self._lock = threading.Lock()
        # Called with each view read it serves (``serving.metrics`` counts rows
        # and nulls) and with the reason of each fallback; set by ``build_app``.
        self.observe: Callable[[Any], None] | None = None
        self.on_fallback: Callable[[str], None] | None = None

    def respond(
        self, payload: dict[str, Any], catalog: RegistrySnapshot
    ) -> bytes | None:
        """The response body for a validated read, or ``None`` for Feast's path."""
        if not self.enabled:
            return None
        service = payload.get("feature_service")
        features = payload.get("features") or []
        request: Any = service if service is not None else features
        try:
            self._check_covered(payload, service, features, catalog)
            store = self._store
            response = self._online.fast_read(
                store.config,
                request,
                payload["entities"],
                store.registry,
                store.project,
                False,
                now_s=None if self._clock is None else self._clock(),
                enforce_ttl=self._enforce_ttl,
            )
        except self._unsupported as exc:
            self._fallback(UNSUPPORTED, payload, exc)
            return None
        except self._feast_error as exc:
            self._fallback(FEAST_ERROR, payload, exc)
            return None
        except Exception as exc:
            if is_unavailable(exc):
                raise  # the online store is down: a 503, on any path
            self._fallback(ERROR, payload, exc)
            return None
        body = response.to_json_bytes()
        if self.observe is not None:
            for view in response.reads:
                self.observe(view)
            for outputs in response.on_demand_reads():
                self.observe(outputs)
        return body

    def _check_covered(
        self,
        payload: dict[str, Any],
        service: str | None,
        features: list[str],
        catalog: RegistrySnapshot,
    ) -> None:
        unsupported = self._unsupported
        if payload.get("full_feature_names"):
            raise unsupported("full feature names")
        if payload.get("include_feature_view_version_metadata"):
            raise unsupported("feature view version metadata")
        if service is not None:
            views = [v for v, _f, _m in catalog.services.get(service, ())]
        else:
            if len(set(features)) != len(features):
                raise unsupported("duplicate feature references")
            views = [view_of(ref) for ref in features]
        for name in views:
            view = catalog.views.get(name)
            if view is not None and not view.servable:
                # Disabled, or materializing without
                # serve_features_while_materializing: Feast answers its error.
                raise unsupported(f"view {name!r} is not servable now")

    def _fallback(self, reason: str, payload: dict[str, Any], exc: Exception) -> None:
        service = payload.get("feature_service")
        shape: Any = (
            ("service", service)
            if service is not None
            else tuple(payload.get("features") or [])
        )
        if self.on_fallback is not None:
            self.on_fallback(reason)
        with self._lock:
            first = (reason, shape) not in self._logged
            if first:
                if len(self._logged) > 1024:
                    self._logged.clear()
                self._logged.add((reason, shape))
        if not first:
            return
        if reason == ERROR:
            log.error(
                "fast read path failed for %s; Feast's endpoint answers (logged "
                "once, counted in fp_serving_fast_path_fallbacks_total)",
                shape,
                exc_info=exc,
            )
        else:
            log.info("Feast's endpoint answers %s (%s): %s", shape, reason, exc)
