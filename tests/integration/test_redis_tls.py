"""The services profile against a Redis that requires TLS and a password.

A private redis-server (free 127.0.0.1 port, TLS only, ``requirepass``, certs
from a throwaway CA) stands in for a managed Redis. The profile's
``connection_string`` takes ``password=${FP_REDIS_PASSWORD}`` and
``ssl=${FP_REDIS_SSL}``; for a private CA the README's recipe is
``FP_REDIS_SSL=true,ssl_ca_certs=/path/ca.pem``. Both are exercised here, with
the failures that must stay failures (no TLS, wrong password).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from feature_platform import feast_compat

pytestmark = pytest.mark.integration


@dataclass
class TlsRedis:
    port: int
    password: str
    ca: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("feature-platform test CA"))
        .issuer_name(name("feature-platform test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "redis.pem",
        directory / "redis.key",
    )
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(
            pem,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (needed for the TLS test)")
    directory = tmp_path_factory.mktemp("tls_redis")
    ca, cert, key = _write_certs(directory)
    password = secrets.token_hex(16)
    port = _free_port()
    config = directory / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                "port 0",  # no plaintext listener
                f"tls-port {port}",
                f"tls-cert-file {cert}",
                f"tls-key-file {key}",
                f"tls-ca-cert-file {ca}",
                "tls-auth-clients no",
                f"requirepass {password}",
                'save ""',
                "appendonly no",
                f"dir {directory}",
            ]
        )
        + "\n"
    )
    log = directory / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, str(config)], stdout=out, stderr=out)
    try:
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            password=password,
            ssl=True,
            ssl_ca_certs=str(ca),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"TLS redis did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield TlsRedis(port=port, password=password, ca=ca)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def tls_env(
    tls_redis: TlsRedis, services_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> TlsRedis:
    monkeypatch.setenv("FP_REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("FP_REDIS_PORT", str(tls_redis.port))
    monkeypatch.setenv("FP_REDIS_PASSWORD", tls_redis.password)
    monkeypatch.setenv("FP_REDIS_SSL", f"true,ssl_ca_certs={tls_redis.ca}")
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", f"tls_{secrets.token_hex(4)}")
    return tls_redis


def _driver_row(driver_id: int, rating: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": [driver_id],
            "event_timestamp": [pd.Timestamp.now(tz="UTC")],
            "avg_rating": [rating],
            "total_trips": [42],
            "acceptance_rate": [0.5],
            "avg_delivery_time_min": [21.0],
        }
    )


def test_online_store_over_tls_with_password(
    tls_env: TlsRedis, local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.online import read_online
    from feature_platform.profiles import get_store
    from tests.conftest import TEST_END

    store = get_store("services", repo=local_repo)
    assert "ssl=true" in store.config.online_store.connection_string
    apply_definitions(store)
    try:
        store.push("driver_stats_push", _driver_row(5001, 4.25))
        got = read_online(
            store, [{"driver_id": 5001}], features=["driver_stats:avg_rating"]
        )
        assert got["avg_rating"] == [4.25]
        # The streaming writer over TLS (its sends go inline, not from the
        # sender thread), throttled and not, writes what plain reads find.
        from feature_platform.online_store import redis_pipe

        sockets: list[tuple[str, bool]] = []
        send = redis_pipe.RawPipe.send

        def spy(pipe: Any, payload: bytes) -> None:
            sockets.append((type(pipe._sock).__name__, pipe._queue is None))
            send(pipe, payload)

        monkeypatch.setattr(redis_pipe.RawPipe, "send", spy)
        for throttle in ("0", "5000"):
            monkeypatch.setenv("FP_MATERIALIZE_MAX_ROWS_PER_S", throttle)
            summary = materialize_window(
                store,
                TEST_END - dt.timedelta(days=3),
                TEST_END,
                views=["customer_stats"],
            )
            assert summary["views"]["customer_stats"]["rows"] > 100
        client = feast_compat.store_redis_client(store)
        keys = list(client.scan_iter(match=b"*" + store.project.encode(), count=1000))
        assert len(keys) > 100
        assert sockets and set(sockets) == {("SSLSocket", True)}
    finally:
        store.teardown()


@pytest.mark.parametrize(
    ("ssl", "password", "error"),
    [
        ("false", None, "connectionerror"),  # plaintext to a TLS-only port
        ("true,ssl_ca_certs={ca}", "wrong-password", "invalid username-password"),
        ("true", None, "certificate verify failed"),  # private CA not trusted
    ],
)
def test_misconfigured_tls_or_password_fails_clearly(
    tls_env: TlsRedis, local_repo: Path, monkeypatch: pytest.MonkeyPatch,
    ssl: str, password: str | None, error: str,
) -> None:  # fmt: skip
    import redis

    from feature_platform.profiles import get_store

    monkeypatch.setenv("FP_REDIS_SSL", ssl.format(ca=tls_env.ca))
    if password is not None:
        monkeypatch.setenv("FP_REDIS_PASSWORD", password)
    from feast.infra.online_stores.redis import RedisOnlineStore
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    store = get_store("services", repo=local_repo)
    # What Feast hands redis-py for this profile, minus redis-py's retries with
    # backoff (they only make the failure slower).
    nodes, params = RedisOnlineStore._parse_connection_string(
        store.config.online_store.connection_string
    )
    client = redis.Redis(
        host=nodes[0]["host"], port=int(nodes[0]["port"]), retry=Retry(NoBackoff(), 0),
        **params,
    )  # fmt: skip
    with pytest.raises(redis.exceptions.RedisError) as info:
        client.ping()
    message = f"{type(info.value).__name__}: {info.value}".lower()
    assert error in message, message
