"""ASGI middleware: validate read/push bodies, answer fast reads, replay to Feast."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast.permissions.user import User


from feature_platform.serving.auth import OPEN_PATHS, Authorizer
from feature_platform.serving.errors import DEFAULT_BODY_TIMEOUT_S, RequestError, _bad
from feature_platform.serving.fast_reads import FastReads
from feature_platform.serving.requests import (
    check_materialize,
    check_materialize_incremental,
    check_push,
    check_read,
    check_write,
)
from feature_platform.serving.snapshot import RegistrySnapshot

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Feast's endpoints that write around the platform (a materialization without
# the gate and the lock, online writes without pii masking): closed unless the
# server is started with FP_SERVER_ADMIN_ENDPOINTS=1 on an authenticated
# profile, and then only for the admin role (serving.auth), bodies validated.
# /push stays open: it is validated (check_push) and masked.
ADMIN_PREFIXES = ("/materialize", "/write-to-online-store")
# Feast's document, vector store and chat endpoints: the platform serves no
# document or vector features (Feast answers them with a 500), so they stay
# closed whatever the flag.
UNSERVED_PREFIXES = (
    "/search",
    "/retrieve-online-documents",
    "/v1/vector_stores",
    "/chat",
    "/ws/",
)
CLOSED_PREFIXES = ADMIN_PREFIXES + UNSERVED_PREFIXES

# ------------------------------------------------------------------ middleware


class RequestGuard:
    """ASGI middleware: validate read/push bodies, replay good ones to Feast."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        catalog: Callable[[bool], RegistrySnapshot],
        max_entity_rows: int,
        max_body_bytes: int,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        fast_reads: FastReads | None = None,
        admin_endpoints: bool = False,
        auth: Authorizer | None = None,
    ) -> None:
        self.app = app
        self.auth = auth if auth is not None and auth.enabled else None
        if fast_reads is not None and self.auth is not None:
            # Reads answered here are authorized here first (_handle).
            fast_reads.enabled = fast_reads.supported
        self.admin_endpoints = admin_endpoints
        self.catalog = catalog
        self.fast_reads = fast_reads if fast_reads and fast_reads.enabled else None
        self.max_rows = max_entity_rows
        self.max_body = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.checks: dict[
            str, Callable[[Any, Callable[[bool], RegistrySnapshot], int], None]
        ] = {
            "/get-online-features": check_read,
            "/push": check_push,
            # Reached only when FP_SERVER_ADMIN_ENDPOINTS opens them (admin role).
            "/materialize": check_materialize,
            "/materialize-incremental": check_materialize_incremental,
            "/write-to-online-store": check_write,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and str(scope.get("path", "")).startswith(
            CLOSED_PREFIXES
        ):
            await send({"type": "websocket.close", "code": 1008})
            return
        path = scope.get("path", "") if scope["type"] == "http" else ""
        closed_path = path.startswith(CLOSED_PREFIXES)
        if closed_path and (
            not self.admin_endpoints or path.startswith(UNSERVED_PREFIXES)
        ):
            what = f"{scope.get('method', '')} {path} is disabled on this server: "
            closed = RequestError(
                403,
                "endpoint_disabled",
                what + "the platform serves no document or vector features."
                if path.startswith(UNSERVED_PREFIXES)
                else what + "materialize with `feature-platform materialize` or the "
                "DAG (the validation gate, the lock and pii masking run there), "
                "write online values with POST /push. Set "
                "FP_SERVER_ADMIN_ENDPOINTS=1 on an authenticated server to open it "
                "for its admin role.",
            )
            await _respond(closed, scope, receive, send)
            return
        user: User | None = None
        if self.auth is not None and path and path not in OPEN_PATHS:
            try:
                user = await self.auth.authenticate(scope)
                if closed_path:
                    self.auth.require_admin(user, f"{scope.get('method', '')} {path}")
            except RequestError as exc:
                await _respond(exc, scope, receive, send)
                return
        check = self.checks.get(path) if path else None
        if check is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        from anyio import fail_after, to_thread

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
            answer = await to_thread.run_sync(self._handle, check, payload, fast, user)
        except RequestError as exc:
            await _respond(exc, scope, receive, send)
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
        check: Callable[[Any, Callable[[bool], RegistrySnapshot], int], None],
        payload: Any,
        fast: FastReads | None,
        user: User | None = None,
    ) -> bytes | None:
        check(payload, self.catalog, self.max_rows)
        if fast is None:
            return None
        if self.auth is not None:
            # Feast's endpoint authorizes what it answers; this is what it
            # would assert, for the reads answered here.
            self.auth.authorize_read(payload, user, self.catalog(False))
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


async def _respond(
    error: RequestError, scope: Scope, receive: Receive, send: Send
) -> None:
    """The error's body (Feast's error detail) with its status (and the
    ``WWW-Authenticate`` challenge of a 401)."""
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    response = JSONResponse(
        status_code=error.status, content=error.body(), headers=headers
    )
    await response(scope, receive, send)
