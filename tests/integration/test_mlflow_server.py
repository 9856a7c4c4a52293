"""Lineage against a real ``mlflow server`` with a PostgreSQL backend.

The fixture creates a private PostgreSQL database, starts ``mlflow server`` on
a free loopback port with that backend store and a temporary artifact
destination (artifacts proxied over HTTP, as on the ``services`` profile and
in docker compose), and removes both afterwards. Startup is bounded
(``STARTUP_TIMEOUT_S``); a server that does not come up fails the test with its
log, and a missing PostgreSQL fails under ``CI=true``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SESSION_ID, _pg_admin_dsn, _service_unavailable

SERVICE = "churn_prediction_service"
STARTUP_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_parts() -> dict[str, str]:
    """host, port, user, password of the test PostgreSQL (conftest's DSN)."""
    parts = dict(item.split("=", 1) for item in _pg_admin_dsn().split())
    return {k: parts[k] for k in ("host", "port", "user", "password")}


def _backend_uri(database: str) -> str:
    parts = _pg_parts()
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    return f"postgresql+psycopg://{auth}@{parts['host']}:{parts['port']}/{database}"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import psycopg

    database = f"fp_mlflow_{SESSION_ID}"
    try:
        admin = psycopg.connect(_pg_admin_dsn(), connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any connection failure
        _service_unavailable("PostgreSQL", exc)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    tmp = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    log = (tmp / "server.log").open("wb")
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen(
        [
            mlflow,
            "server",
            "--backend-store-uri",
            _backend_uri(database),
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        # MLflow 3 also starts job-runner processes (GenAI jobs) unless told not to.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as a whole
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server not up in {STARTUP_TIMEOUT_S} s: "
                    f"{(tmp / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def test_training_registers_on_a_postgres_backed_server(
    mlflow_server: str,
    local_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    from feature_platform.definitions import apply_definitions
    from feature_platform.lineage import model_lineage, models_consuming
    from feature_platform.profiles import get_store
    from feature_platform.training import (
        load_model,
        load_registered_model,
        predict,
        run_training,
    )

    monkeypatch.setenv("FP_MLFLOW_TRACKING_URI", mlflow_server)
    store = get_store("local", repo=local_repo)
    assert store.config.mlflow.tracking_uri == mlflow_server
    apply_definitions(store)
    labels = pd.read_parquet(local_repo / "data" / "churn_labels.parquet")
    summary = run_training(store, labels, model_dir=tmp_path / "copy")
    registered = summary["registered"]
    assert registered["tracking_uri"] == f"{mlflow_server}/..."  # redacted form
    assert registered["aliases"] == ["champion"]

    # The registry's rows are in the server's PostgreSQL database.
    database = f"fp_mlflow_{SESSION_ID}"
    with psycopg.connect(**_pg_parts(), dbname=database) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, version FROM model_versions")
        assert cur.fetchall() == [(SERVICE, registered["version"])]
        cur.execute("SELECT alias FROM registered_model_aliases")
        assert cur.fetchall() == [("champion",)]

    # Both directions, through the server (Feast's resolver included).
    needs = model_lineage(SERVICE, "champion", store=store)
    assert needs.run_id == registered["run_id"]
    assert needs.training_window == summary["training_window"]
    assert needs.rows == summary["rows"]
    consumers = models_consuming("customer_stats:lifetime_value", store=store)
    assert [str(m) for m in consumers] == [
        f"{SERVICE} v{registered['version']} @champion"
    ]
    assert models_consuming("driver_stats:avg_rating", store=store) == []

    # The model comes back over HTTP (proxied artifacts) and predicts exactly
    # like the local copy of the same model.
    served = load_registered_model(SERVICE, "champion", store=store)
    local = load_model(tmp_path / "copy")
    assert served.metadata == local.metadata
    frame = pd.DataFrame({f: [0.0, 10.0, None] for f in local.metadata["features"]})
    assert predict(served, frame).tolist() == predict(local, frame).tolist()
