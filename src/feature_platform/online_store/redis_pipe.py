"""Pipelined Redis I/O of pre-packed commands: ``round_trip`` (one write and
its replies on a pooled connection: the reads', the writer's small batches) and
a raw, overlapped RESP pipelining connection (``RawPipe``, the bulk writer's).

redis-py's pipeline parses every reply into Python objects and sends and reads
in turn; a materialization sends millions of pre-packed commands (framed by
``codec``) and needs only to count their replies, or to parse one timestamp
each. ``RawPipe`` owns one connection of the client's pool for that: a sender
thread sends while the caller encodes, and the replies are read in bulk from
the raw byte stream.
"""

from __future__ import annotations

import queue
import re
import ssl
import threading
from typing import Any

import numpy as np

from feature_platform.online_store.codec import decode_timestamp_nanos

__all__ = ["ABSENT", "BULK_REPLY_TIMEOUT_S", "RawPipe", "round_trip"]

BULK_REPLY_TIMEOUT_S = 60.0
ABSENT = np.iinfo(np.int64).min  # no stored event time: any row is newer
# RESP2 null bulk strings (HGET of an absent key or field), 5 bytes each.
_NILS = re.compile(rb"(?:\$-1\r\n)+")


def round_trip(client: Any, commands: list[bytes]) -> list[Any]:
    """Send pre-packed commands on one pooled connection; read every reply."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([b"".join(commands)], check_health=False)
        replies = [conn.read_response() for _ in range(len(commands))]
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return replies


class RawPipe:
    """A dedicated Redis connection for raw, overlapped RESP pipelining.

    Commands go out with ``send`` and their replies are read later
    (``line_replies``, ``timestamps``), so Redis executes one batch
    while Python encodes the next. On a plain TCP socket a sender thread does
    the ``sendall`` (it blocks while Redis works through a batch, and releases
    the GIL meanwhile): without it the encoder waited on every batch's send,
    a third of a 1M-row materialization's wall time. At most two payloads wait
    for the thread (back pressure: memory stays bounded when Redis is the
    slower side). TLS sockets send inline (an ``SSLSocket`` is not safe for a
    concurrent send and receive). The connection is closed afterwards, never
    returned to the pool half-read.
    """

    QUEUED = 2

    def __init__(self, client: Any) -> None:
        from feature_platform.feast_compat import connection_socket

        self._pool = client.connection_pool
        self._conn = self._pool.get_connection()
        self._sock = connection_socket(self._conn)
        # Bulk writes wait longer than a read for their replies (the client's
        # read timeout is set for reads), but never forever.
        self._sock.settimeout(BULK_REPLY_TIMEOUT_S)
        self._rest = b""  # received, not yet counted or parsed
        self._send_error: BaseException | None = None
        self._queue: Any = None
        self._thread: Any = None
        if not isinstance(self._sock, ssl.SSLSocket):
            self._queue = queue.Queue(maxsize=self.QUEUED)
            self._thread = threading.Thread(
                target=self._sender, name="fp-redis-sender", daemon=True
            )
            self._thread.start()

    def _sender(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            try:
                self._sock.sendall(payload)
            except BaseException as exc:  # noqa: BLE001 - reported by the next send or read
                self._send_error = exc
                return

    def _check_sender(self) -> None:
        if self._send_error is not None:
            raise ConnectionError(
                f"sending to Redis failed: {self._send_error}"
            ) from self._send_error

    def send(self, payload: bytes) -> None:
        if not payload:
            return
        if self._queue is None:
            self._sock.sendall(payload)
            return
        while True:
            self._check_sender()
            try:
                self._queue.put(payload, timeout=0.5)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    self._check_sender()
                    raise ConnectionError("the Redis sender thread stopped") from None

    def _recv(self) -> bytes:
        self._check_sender()
        chunk = self._sock.recv(1 << 20)
        if not chunk:
            self._check_sender()
            raise ConnectionError("Redis closed the connection")
        return chunk

    def line_replies(self, count: int) -> None:
        """Wait for ``count`` one-line replies (``HSET``/``EXPIRE``: integers or
        errors) without parsing each: count CRLFs in the raw bytes (C speed;
        hiredis' per-reply Python loop was a tenth of a materialization's wall
        time). Bytes after them are kept for the next call."""
        if count <= 0:
            return
        chunks: list[bytes] = [self._rest] if self._rest else []
        seen = self._rest.count(b"\r\n")
        last = self._rest
        while seen < count:
            chunk = self._recv()
            seen += chunk.count(b"\r\n")
            seen += last.endswith(b"\r") and chunk.startswith(b"\n")  # split CRLF
            chunks.append(chunk)
            last = chunk
        buf = b"".join(chunks)
        # The end of the count-th line: smallest end with count CRLFs before it.
        lo, hi = 0, len(buf)
        while lo < hi:
            mid = (lo + hi) // 2
            if buf.count(b"\r\n", 0, mid) >= count:
                hi = mid
            else:
                lo = mid + 1
        mine, self._rest = buf[:lo], buf[lo:]
        if mine.startswith(b"-") or b"\n-" in mine:
            start = 0 if mine.startswith(b"-") else mine.index(b"\n-") + 1
            line = mine[start : mine.index(b"\r\n", start)]
            raise RuntimeError(
                f"Redis rejected a write: {line[1:].decode(errors='replace')}"
            )

    def timestamps(self, count: int) -> np.ndarray:
        """Nanoseconds of ``count`` ``HGET <key> _ts:<view>`` replies (``ABSENT``
        where the key or field is absent), parsed from the raw stream; bytes after
        them are kept. Runs of absent keys (a first load) are recognized a
        whole buffer at a time; a stored timestamp costs one decode."""
        out = np.full(count, ABSENT, np.int64)
        buf, pos, i = self._rest, 0, 0
        while i < count:
            nils = _NILS.match(buf, pos)  # a run of absent keys, in C
            if nils:
                run = min(count - i, (nils.end() - pos) // 5)
                i += run
                pos += run * 5
                continue
            end = buf.find(b"\r\n", pos)
            if end >= 0 and buf[pos] == 0x5F:  # RESP3 null
                i += 1
                pos = end + 2
                continue
            if end >= 0 and buf[pos] == 0x24:  # $<size>
                size = int(buf[pos + 1 : end])
                stop = end + 2 + max(size, 0) + (2 if size >= 0 else 0)
                if stop <= len(buf):
                    if size >= 0:
                        out[i] = decode_timestamp_nanos(buf[end + 2 : end + 2 + size])
                    i += 1
                    pos = stop
                    continue
            elif end >= 0:
                line = buf[pos:end].decode(errors="replace")
                raise RuntimeError(f"Redis answered a timestamp read with {line!r}")
            buf = buf[pos:] + self._recv()  # an incomplete reply: read on
            pos = 0
        self._rest = buf[pos:]
        return out

    def close(self) -> None:
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # the sender is stuck; the disconnect ends it
                pass
            if self._send_error is None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        self._conn.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.release(self._conn)
