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
