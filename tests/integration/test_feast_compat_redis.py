"""The redis-py private symbols ``feature_platform.feast_compat`` touches,
pinned against a real ``redis-server`` (the unit pins are in
tests/unit/test_feast_compat.py)."""

from __future__ import annotations

import pytest

from feature_platform import feast_compat

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_client(redis_available):
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    yield client
    client.close()


def test_fail_fast_and_connection_socket(redis_client) -> None:
    feast_compat.fail_fast_redis(redis_client, connect_timeout_s=0.25, read_timeout_s=2)
    kwargs = redis_client.connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["socket_timeout"] == 2
    assert kwargs["retry"].get_retries() == 0
    conn = redis_client.connection_pool.get_connection()
    try:
        sock = feast_compat.connection_socket(conn)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(64).startswith(b"+PONG")
    finally:
        conn.disconnect()
        redis_client.connection_pool.release(conn)


def test_store_redis_client_is_the_stores_fail_fast_client(services_store) -> None:
    client = feast_compat.store_redis_client(services_store)
    assert client.ping()
    assert feast_compat.store_redis_client(services_store) is client  # built once
    assert client.connection_pool.connection_kwargs["retry"].get_retries() == 0
