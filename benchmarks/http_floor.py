"""The HTTP floor: a bare ASGI app on uvicorn with the feature server's options.

``python -m benchmarks.http_floor --port P --body-file F`` answers every
request (any path, any method) with the bytes of ``F`` as
``application/json``, after reading the request body: no routing, validation,
auth, metrics or read. uvicorn runs with what ``feature-platform serve``
passes it (no access log, keep-alive 30 s), so the ``http`` benchmark's
platform server is measured as a fraction of this floor in the same run.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]


def floor_app(body: bytes) -> Callable[..., Awaitable[None]]:
    """An ASGI app answering ``body`` (JSON) to every HTTP request."""
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
    ]

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request body, as the server's guard does
            message = await receive()
            more = bool(message.get("more_body", False))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(
        floor_app(args.body_file.read_bytes()),
        host="127.0.0.1",
        port=args.port,
        access_log=False,  # the server's options (serving.app.serve)
        timeout_keep_alive=30,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
