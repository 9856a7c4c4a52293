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
  checks it against a cached snapshot of the registry (``RegistrySnapshot``)
  before Feast sees it. Each problem is a 4xx with Feast's error detail
  (``serving.errors.error_detail``: Feast's remote client re-raises it as a
  Feast error), carrying the platform's ``error`` code and ``detail``; correct
  requests are replayed to Feast unchanged (so a ``curl -d`` without a JSON
  content type works too).
* exception handlers that turn Feast errors into their own 4xx status with
  Feast's own body, an unreachable online store into a 503, and keep 500 for
  real server faults (the same body form).

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
(``feature_platform.settings.Settings``):
``FP_SERVER_MAX_ENTITY_ROWS`` (rows per read or push, default 1000),
``FP_SERVER_MAX_BODY_BYTES`` (default 1 MiB) and ``FP_SERVER_BODY_TIMEOUT_S``
(seconds to receive a body, default 10); ``FP_SERVER_FAST_READS=0`` sends every
read through Feast's endpoint and ``FP_SERVER_GC_FREEZE=0`` skips the freeze.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from feast import FeatureStore

    from feature_platform.serving.auth import Authorizer


from feature_platform.errors import is_unavailable
from feature_platform.serving.errors import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_ENTITY_ROWS,
    DEFAULT_REGISTRY_TTL_SEC,
    RequestError,
    error_detail,
)
from feature_platform.serving.fast_reads import FastReads
from feature_platform.serving.guard import RequestGuard
from feature_platform.serving.metrics import mount_metrics
from feature_platform.serving.snapshot import RegistrySnapshot, _SnapshotCache

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ENTITY_ROWS",
    "RegistrySnapshot",
    "FastReads",
    "RequestError",
    "RequestGuard",
    "build_app",
    "create_app",
    "add_serve_arguments",
    "main",
    "serve",
]

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
    cache = _SnapshotCache(store, ttl=max(1, registry_ttl_sec))
    app = get_app(store, registry_ttl_sec=registry_ttl_sec)
    _health_with_online_store(app, store)

    async def feast_error(request: Request, exc: Exception) -> JSONResponse:
        # Feast's own error body (what `feast serve` answers): Feast's remote
        # client raises the same typed error from it.
        assert isinstance(exc, FeastError)
        status = exc.http_status_code()
        if status >= 500:
            log.error("feast error on %s: %s", request.url.path, exc)
        return JSONResponse(status_code=status, content=exc.to_error_detail())

    async def invalid_body(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content=error_detail(422, "invalid_request", "; ".join(problems)),
        )

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, FeastError):
            return await feast_error(request, exc)
        if is_unavailable(exc):
            log.error("online store unavailable on %s: %s", request.url.path, exc)
            return JSONResponse(
                status_code=503,
                content=error_detail(
                    503, "unavailable", f"online store unavailable: {exc}"
                ),
            )
        log.exception("internal error on %s", request.url.path, exc_info=exc)
        return JSONResponse(
            status_code=500,
            content=error_detail(500, "internal_error", f"{type(exc).__name__}: {exc}"),
        )

    app.add_exception_handler(FeastError, feast_error)
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(Exception, server_error)

    from feature_platform.settings import settings  # pydantic: not at --help

    current = settings()
    if current.server_admin_endpoints and store.config.auth_config.type == "no_auth":
        from feature_platform.errors import ConfigError

        raise ConfigError(
            "FP_SERVER_ADMIN_ENDPOINTS=1 needs an authenticated profile (auth: "
            "oidc or kubernetes, with an admin role in feature_repo/permissions.py); "
            "this profile's auth is no_auth, which would open the endpoints to anyone"
        )
    fast = FastReads(store, enforce_ttl=enforce_ttl) if fast_reads else None
    app.add_middleware(
        RequestGuard,
        catalog=lambda fresh: cache.get(fresh=fresh),
        max_entity_rows=max_entity_rows or current.server_max_entity_rows,
        max_body_bytes=max_body_bytes or current.server_max_body_bytes,
        body_timeout_s=current.server_body_timeout_s,
        fast_reads=fast,
        admin_endpoints=current.server_admin_endpoints,
        auth=_authorizer(store),
    )
    # GET /metrics: latency of every read/push, rows and nulls served per view
    # (the monitor scrapes it); added last, so its timing wraps the guard.
    metrics = mount_metrics(app, multiprocess=current.server_workers > 1)
    if fast is not None:
        fast.observe = metrics.observe_view
        fast.on_fallback = metrics.observe_fallback
    return app


def _authorizer(store: FeatureStore) -> Authorizer:
    """Authentication and RBAC on the guard's path (``serving.auth``); the admin
    role comes from the repo's permissions.py only when auth is on."""
    from feature_platform.serving.auth import Authorizer, admin_role

    on = store.config.auth_config.type != "no_auth"
    return Authorizer(store, admin_role=admin_role(store) if on else "")


def _health_with_online_store(app: FastAPI, store: FeatureStore) -> None:
    """``GET /health``: Feast's registry check plus the online store (a PING
    through the store's circuit breaker); 503 with the reason when either is
    down."""
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    from feature_platform.feast_compat import provider, remove_feast_route

    remove_feast_route(app, "/health")

    def check() -> tuple[int, dict[str, str]]:
        try:
            store.registry.list_projects(allow_cache=True)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return 503, {"registry": f"unavailable: {type(exc).__name__}"}
        online = provider(store).online_store
        ping = getattr(online, "ping", None)
        if ping is not None:
            try:
                ping(store.config)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return 503, {"registry": "ok", "online_store": str(exc)}
        return 200, {"registry": "ok", "online_store": "ok"}

    # response_model=None: the return annotation is not a model (and, imported
    # in this function, not resolvable when FastAPI builds /openapi.json).
    @app.get("/health", response_model=None)
    async def health() -> JSONResponse:
        status, body = await run_in_threadpool(check)
        return JSONResponse(status_code=status, content=body)


def create_app(
    profile: str | None = None, repo: str | None = None, **limits: Any
) -> FastAPI:
    """The served app: the profile's store, limits from ``limits`` or the settings
    (``feature_platform.settings.Settings``: ``FP_SERVER_*``). uvicorn calls it
    without arguments in each worker process (``--factory``)."""
    from feature_platform.profiles import get_store
    from feature_platform.settings import settings  # pydantic: not at --help

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
    from feature_platform.settings import settings  # pydantic: not at --help

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
    from feature_platform.profiles import load_repo_config

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
    import atexit
    import os
    import shutil
    import tempfile

    # One directory for every worker's metric values (prometheus_client's
    # multiprocess mode, the variables feast.metrics reads too): /metrics on
    # any worker adds up all of them (serving.metrics).
    metrics_dir = tempfile.mkdtemp(prefix="fp_serving_metrics_")
    atexit.register(shutil.rmtree, metrics_dir, ignore_errors=True)
    for var, value in {
        "FEATURE_PLATFORM_PROFILE": profile,
        "FEATURE_PLATFORM_REPO": repo,
        "FP_SERVER_MAX_ENTITY_ROWS": args.max_entity_rows,
        "FP_SERVER_MAX_BODY_BYTES": args.max_body_bytes,
        "FP_SERVER_REGISTRY_TTL_SEC": args.registry_ttl_sec,
        "FP_SERVER_WORKERS": workers,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "PROMETHEUS_MULTIPROCESS_DIR": metrics_dir,
    }.items():
        if value is not None:
            os.environ[var] = str(value)
    uvicorn.run(
        "feature_platform.serving.app:create_app",
        factory=True,
        workers=workers,
        **options,
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
