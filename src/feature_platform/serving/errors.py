"""Errors of the feature server's request checks, and its limits' defaults."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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


class RequestError(Exception):
    """A client error with ``status``: ``{"error": code, "detail": message}``,
    or, for 401 and 403, Feast's error detail (``feast_error_detail``)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, str] | str:
        """The JSON body: Feast's error detail for 401/403 (so Feast's remote
        client raises ``FeastPermissionError``), else code and message."""
        if self.status in (401, 403):
            return feast_error_detail(self)
        return {"error": self.code, "detail": self.detail}


def feast_error_detail(error: RequestError) -> str:
    """A 401/403 as Feast's feature server reports a ``FeastPermissionError``:
    the body is a JSON string holding ``{"module", "class", "message"}``
    (``FeastError.to_error_detail``), which Feast's REST clients turn back into
    the typed error (``FeastError.from_error_detail``); the platform's code and
    message ride along as ``error`` and ``detail``."""
    import json

    from feast.errors import FeastPermissionError

    detail = json.loads(FeastPermissionError(error.detail).to_error_detail())
    detail.update(error=error.code, detail=error.detail)
    return json.dumps(detail)


def _bad(detail: str, code: str = "invalid_request") -> RequestError:
    return RequestError(400, code, detail)


def _not_found(detail: str, code: str) -> RequestError:
    return RequestError(404, code, detail)
