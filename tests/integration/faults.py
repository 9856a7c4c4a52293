"""Fault-injection helpers for the reliability tests (127.0.0.1, test-owned).

* ``free_port()``: a free loopback TCP port.
* ``RedisServer``: a private ``redis-server`` (nothing on disk) that a test can
  restart to simulate an emptied online store, never the shared one on 6379.
* ``TcpProxy``: a loopback TCP proxy in front of PostgreSQL that a test can
  ``cut()`` (listener closed, live connections reset: "connection refused",
  like a stopped server) and ``restore()``.
* ``services_repo_env``: environment for a subprocess on the services profile.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing tool is a failure)")
    pytest.skip(message)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Terminate ``proc``; kill it if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class RedisServer:
    """``redis-server --port N --save '' --appendonly no`` on 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("redis-server")
        if not self.binary:
            _fail_or_skip("redis-server binary not found")

    def start(self) -> RedisServer:
        import redis

        assert self.binary
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again: the data is gone (nothing is kept on disk)."""
        self.stop()
        self.start()

    def client(self):
        import redis

        return redis.Redis(port=self.port)


class TcpProxy:
    """Forward 127.0.0.1:<port> to an upstream; ``cut()``/``restore()`` it."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self) -> TcpProxy:
        self.restore()
        return self

    def restore(self) -> None:
        """Listen again (the registry database is 'back')."""
        if self._listener is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and reset every live connection ('PostgreSQL is down')."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stopped.set()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update({client, upstream})
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pipe, args=(src, dst), daemon=True
                ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


def set_cache_ttl(repo: Path, seconds: int) -> None:
    """Shorten the registry cache ttl in a test repo's services profile."""
    path = repo / "profiles" / "services.yaml"
    text = path.read_text()
    assert "cache_ttl_seconds: 60" in text
    path.write_text(
        text.replace("cache_ttl_seconds: 60", f"cache_ttl_seconds: {seconds}")
    )


def services_repo_env(repo: Path, **overrides: str) -> dict[str, str]:
    """Environment for a subprocess on ``repo``'s services profile."""
    env = dict(os.environ)
    for line in (repo / "profiles" / "services.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env.setdefault(key, value)
    env.update(
        FEATURE_PLATFORM_REPO=str(repo),
        FEATURE_PLATFORM_PROFILE="services",
        FEAST_USAGE="False",
    )
    env.update(overrides)
    return env
