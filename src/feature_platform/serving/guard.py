"""ASGI middleware: validate read/push bodies, answer fast reads, replay to Feast."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


from feature_platform.serving.catalog import Catalog
from feature_platform.serving.errors import DEFAULT_BODY_TIMEOUT_S, RequestError, _bad
from feature_platform.serving.fast_reads import FastReads
from feature_platform.serving.requests import check_push, check_read

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Feast's endpoints that write around the platform (a materialization without
# the gate and the lock, online writes without validation or pii masking) or
# that the platform does not serve (documents, vector stores): closed unless
# the server is started with FP_SERVER_ADMIN_ENDPOINTS=1 on an authenticated
# profile. /push stays open: it is validated (check_push) and masked.
CLOSED_PREFIXES = (
    "/materialize",
    "/write-to-online-store",
    "/search",
    "/retrieve-online-documents",
    "/v1/vector_stores",
    "/chat",
)

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
        admin_endpoints: bool = False,
    ) -> None:
        self.app = app
        self.admin_endpoints = admin_endpoints
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
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.admin_endpoints and path.startswith(CLOSED_PREFIXES):
            from starlette.responses import JSONResponse

            closed = RequestError(
                403,
                "endpoint_disabled",
                f"{scope.get('method', '')} {path} is disabled on this server: "
                "materialize with `feature-platform materialize` or the DAG (the "
                "validation gate, the lock and pii masking run there), write "
                "online values with POST /push. Set FP_SERVER_ADMIN_ENDPOINTS=1 "
                "on an authenticated server to open it for its admin role.",
            )
            response = JSONResponse(status_code=closed.status, content=closed.body())
            await response(scope, receive, send)
            return
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
