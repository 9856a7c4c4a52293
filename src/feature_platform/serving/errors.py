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


# The Feast error class (``feast.errors``) a Feast client re-raises for each
# code; ``FeastPermissionError`` for a 401/403, ``FeastError`` for the rest.
FEAST_ERROR_CLASSES = {
    "unknown_feature_service": "FeatureServiceNotFoundException",
    "unknown_feature_view": "FeatureViewNotFoundException",
    "unknown_feature": "FeastObjectNotFoundException",
    "unknown_push_source": "PushSourceNotFoundException",
    "not_found": "FeastObjectNotFoundException",
}


class RequestError(Exception):
    """A client error with ``status``, code and message; its body is Feast's
    error detail (``error_detail``)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> str:
        """The JSON body: Feast's error detail (``error_detail``)."""
        return error_detail(self.status, self.code, self.detail)


def error_detail(status: int, code: str, detail: str) -> str:
    """An error as Feast's feature server reports one (``FeastError.to_error_detail``):
    the body is a JSON string holding ``{"module", "class", "message"}``, which
    Feast's REST clients (the remote online store, ``type: remote``) turn back
    into the typed error (``FeastError.from_error_detail``):
    ``FeastPermissionError`` for a 401/403, a not-found error for an unknown
    name (``FEAST_ERROR_CLASSES``), else ``FeastError``. The platform's code and
    message ride along as ``error`` and ``detail``."""
    import json

    name = (
        "FeastPermissionError"
        if status in (401, 403)
        else FEAST_ERROR_CLASSES.get(code, "FeastError")
    )
    return json.dumps(
        {
            "module": "feast.errors",
            "class": name,
            "message": detail,
            "error": code,
            "detail": detail,
        }
    )


def _bad(detail: str, code: str = "invalid_request") -> RequestError:
    return RequestError(400, code, detail)


def _not_found(detail: str, code: str) -> RequestError:
    return RequestError(404, code, detail)
