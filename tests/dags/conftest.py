"""Airflow fixtures: one metadata DB (SQLite in a temp AIRFLOW_HOME) per session.

The environment is set when this conftest is imported, before anything imports
``airflow`` (its configuration is read once, at import).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.faults import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="fp_airflow_"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "1",
    }
)
os.environ.pop("FEATURE_PLATFORM_WEBHOOK_URL", None)
os.environ.pop("AIRFLOW_CONN_FEATURE_PLATFORM_WEBHOOK", None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` once per session (about 3 s)."""
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "db", "migrate"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


class Webhook:
    """A local Slack-compatible receiver on 127.0.0.1 recording JSON posts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.hooks: list[Callable[[dict[str, Any]], None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                message = json.loads(body)
                outer.messages.append(message)
                for hook in list(outer.hooks):
                    hook(message)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret"
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, event: str) -> list[dict[str, Any]]:
        return [
            m["feature_platform"]
            for m in self.messages
            if m.get("feature_platform", {}).get("event") == event
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("FEATURE_PLATFORM_WEBHOOK_URL", hook.url)
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port that tests stop and start."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def redis_dump(store: Any) -> dict[bytes, dict[bytes, bytes]]:
    """Every key of the store's project (keys end with the project name) -> hash."""
    import redis

    cfg = store.config.online_store
    host, port = cfg.connection_string.split(",")[0].split(":")
    client = redis.Redis(host=host, port=int(port))
    suffix = store.project.encode()
    dump = {}
    for key in client.scan_iter(match=b"*" + suffix, count=1000):
        if key.endswith(suffix):
            dump[key[: -len(suffix)]] = client.hgetall(key)
    return dump


def unique_project(prefix: str = "fp_dag") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
