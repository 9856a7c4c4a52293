"""The writer's raw Redis pipe against a real ``redis-server``: replies counted
and parsed from the raw stream, errors reported, a dead server noticed."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

pytestmark = pytest.mark.integration


def test_line_replies_counts_exactly_and_reports_errors(redis_available) -> None:
    """One-line replies are counted in the raw stream: the bytes after them
    (HGET replies) still parse, and an error reply is reported."""
    import os
    import uuid

    import redis

    from feature_platform.online_store.codec import command as _resp
    from feature_platform.online_store.redis_pipe import RawPipe

    client = redis.Redis(
        host=os.environ.get("FP_REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("FP_REDIS_PORT", "6379")),
    )
    prefix = f"fp_test_line_replies:{uuid.uuid4().hex}:".encode()
    keys = [prefix + b"%d" % i for i in range(30_000)]
    stamps = [Timestamp(seconds=1_700_000_000 + i) for i in range(len(keys))]
    pipe = RawPipe(client)
    try:
        pipe.send(
            b"".join(
                _resp(b"HSET", k, b"f", ts.SerializeToString())
                for k, ts in zip(keys, stamps, strict=True)
            )
        )
        pipe.send(b"".join(_resp(b"HGET", k, b"f") for k in keys[:3]))
        pipe.line_replies(len(keys))
        assert pipe.timestamps(3).tolist() == [
            ts.seconds * 1_000_000_000 for ts in stamps[:3]
        ]
        client.set(prefix + b"str", b"x")
        pipe.send(
            _resp(b"HSET", keys[0], b"f", b"w")
            + _resp(b"HSET", prefix + b"str", b"f", b"v")
        )
        with pytest.raises(RuntimeError, match="WRONGTYPE"):
            pipe.line_replies(2)
        assert client.hget(keys[0], b"f") == b"w"
    finally:
        pipe.close()
        client.delete(*keys, prefix + b"str")


def test_timestamps_parses_absent_runs_stored_values_and_errors(
    redis_available,
) -> None:
    """HGET replies parsed from the raw stream: runs of absent keys, stored
    timestamps (including the empty epoch-0 proto) across many receive
    buffers, the bytes after them kept for the next read, errors named."""
    import os
    import uuid

    import redis

    from feature_platform.online_store.codec import command as _resp
    from feature_platform.online_store.redis_pipe import ABSENT, RawPipe

    client = redis.Redis(
        host=os.environ.get("FP_REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("FP_REDIS_PORT", "6379")),
    )
    prefix = f"fp_test_timestamps:{uuid.uuid4().hex}:".encode()
    n = 60_000
    keys = [prefix + b"%d" % i for i in range(n)]
    expected = np.full(n, ABSENT, np.int64)
    stored = {}
    for i in range(0, n, 7):  # every 7th key has a stored event time
        ts = Timestamp(seconds=1_700_000_000 + i, nanos=(i % 3) * 1000)
        stored[keys[i]] = ts.SerializeToString()
        expected[i] = ts.seconds * 1_000_000_000 + ts.nanos
    stored[keys[14]] = b""  # epoch 0: an empty Timestamp message
    expected[14] = 0
    client.hset(keys[1], b"x", b"y")  # a hash without the field: absent
    with client.pipeline(transaction=False) as p:
        for k, v in stored.items():
            p.hset(k, b"_ts:v", v)
        p.execute()
    pipe = RawPipe(client)
    try:
        pipe.send(b"".join(_resp(b"HGET", k, b"_ts:v") for k in keys))
        pipe.send(_resp(b"HSET", keys[1], b"f", b"v"))  # a reply after them
        got = pipe.timestamps(n)
        np.testing.assert_array_equal(got, expected)
        pipe.line_replies(1)  # the HSET's reply was kept, not swallowed
        client.set(prefix + b"str", b"x")
        pipe.send(_resp(b"HGET", prefix + b"str", b"_ts:v"))
        with pytest.raises(RuntimeError, match="WRONGTYPE"):
            pipe.timestamps(1)
    finally:
        pipe.close()
        client.delete(*keys, prefix + b"str")


def test_pipe_reports_a_dead_redis_and_stops_its_sender(redis_available) -> None:
    """Redis dies while the sender thread is inside a large ``sendall``: the
    reader gets a connection error (no hang), and ``close`` ends the thread."""
    import time

    from feature_platform.online_store.codec import command as _resp
    from feature_platform.online_store.redis_pipe import RawPipe
    from tests.integration.faults import RedisServer

    server = RedisServer().start()
    try:
        pipe = RawPipe(server.client())
        big = b"".join(
            _resp(b"HSET", b"k%d" % i, b"f", b"x" * 100) for i in range(300_000)
        )
        pipe.send(big)
        pipe.send(big)  # queued behind the first: the sender is busy
        server.stop()
        t0 = time.monotonic()
        with pytest.raises(OSError):  # ConnectionError or a reset
            pipe.line_replies(600_000)
        pipe.close()
        assert time.monotonic() - t0 < 20
        assert pipe._thread is not None and not pipe._thread.is_alive()
    finally:
        server.stop()
