"""A real Airflow deployment for the tests: ``feature_platform.stack`` starts the
api-server, dag-processor and scheduler (LocalExecutor) on a private PostgreSQL
metadata database, with an MLflow server, private ports, a private
``redis-server``, a private Feast project and registry database, and a local
webhook receiver. One stack per module (starting it is the slow part); every
process is stopped and every database dropped afterwards.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_repo
from tests.dags.conftest import Webhook
from tests.integration.faults import RedisServer

RETRY_DELAY_S = 5  # the tests' FEATURE_PLATFORM_RETRY_DELAY_SECONDS


def listen_port() -> int:
    """A free port below the kernel's ephemeral range (32768+): a port from
    ``bind(0)`` may be handed to an outgoing connection (PostgreSQL, Redis
    clients) in the minutes before the server listens on it."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


class Api:
    """Airflow's REST API (v2) as user admin of the simple auth manager."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        token = self._call(
            "POST", "/auth/token", {"username": "admin", "password": password}
        )
        self.token = token["access_token"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | (
                {"Authorization": f"Bearer {self.token}"}
                if hasattr(self, "token")
                else {}
            ),
        )
        # A busy machine can keep the one api-server worker (which also serves
        # the tasks' execution API) from answering quickly: reads are retried.
        attempts = 5 if method == "GET" else 1
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                raise AssertionError(
                    f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}"
                ) from None
            except (TimeoutError, urllib.error.URLError):
                if attempt == attempts - 1:
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        return self._call("GET", "/api/v2" + path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", "/api/v2" + path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._call("PATCH", "/api/v2" + path, body)

    # ------------------------------------------------------------- helpers
    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.patch(f"/dags/{dag_id}", {"is_paused": paused})

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns?order_by=-run_after&limit=50")[
            "dag_runs"
        ]

    def wait_for_run(
        self,
        dag_id: str,
        *,
        run_id: str | None = None,
        run_type: str | None = None,
        timeout: float = 420,
    ) -> dict[str, Any]:
        """The run (by id, or the newest of a type) once it has finished."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [
                r
                for r in self.runs(dag_id)
                if (run_id is None or r["dag_run_id"] == run_id)
                and (run_type is None or r["run_type"] == run_type)
            ]
            if runs and runs[0]["state"] in ("success", "failed"):
                return runs[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id} {run_id or run_type}: not done: {runs[:1]}"
                )
            time.sleep(3)

    def task_instances(self, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
        tis = self.get(
            f"/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}/taskInstances?limit=100"
        )["task_instances"]
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti
            for ti in tis
        }

    def states(self, run: dict[str, Any]) -> dict[str, tuple[str | None, int]]:
        return {
            k: (ti["state"], ti["try_number"])
            for k, ti in self.task_instances(run).items()
        }

    def xcom(self, run: dict[str, Any], task_id: str) -> Any:
        entry = self.get(
            f"/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}/taskInstances/"
            f"{task_id}/xcomEntries/return_value?deserialize=true"
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def tries(self, run: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
        return self.get(
            f"/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}/taskInstances/"
            f"{task_id}/tries"
        )["task_instances"]


@dataclass
class Deployment:
    stack: Any
    api: Api
    repo: Path
    redis: RedisServer
    webhook: Webhook
    env: dict[str, str]
    store: Any


def _drop_databases(names: list[str]) -> None:
    import psycopg

    from tests.conftest import _pg_admin_dsn

    conn = psycopg.connect(_pg_admin_dsn(), connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str]
) -> Iterator[Deployment]:
    from feature_platform.profiles import get_store
    from feature_platform.stack import Stack

    tag = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp("stack")
    repo = make_repo(root / "repo")
    redis = RedisServer(listen_port())
    redis.start()
    webhook = Webhook()
    databases = {
        "FP_PG_DATABASE": f"fp_sched_{tag}",
        "FP_AIRFLOW_DATABASE": f"fp_sched_{tag}_airflow",
        "FP_MLFLOW_DATABASE": f"fp_sched_{tag}_mlflow",
    }
    env = {
        **databases,
        "FEATURE_PLATFORM_PROFILE": "services",
        "FEATURE_PLATFORM_REPO": str(repo),
        "FEATURE_PLATFORM_PROJECT": f"fp_sched_{tag}",
        "FEATURE_PLATFORM_ARTIFACTS": str(root / "artifacts"),
        "FEATURE_PLATFORM_RETRY_DELAY_SECONDS": str(RETRY_DELAY_S),
        "FEATURE_PLATFORM_WEBHOOK_URL": webhook.url,
        "FP_REDIS_HOST": "127.0.0.1",
        "FP_REDIS_PORT": str(redis.port),
        "FP_AIRFLOW_API_PORT": str(listen_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(listen_port()),
        "FP_SERVER_PORT": str(listen_port()),
        "FP_MLFLOW_PORT": str(listen_port()),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    stack = Stack(
        state_dir=root / "state",
        overrides=env,
        services=(
            "airflow-apiserver",
            "airflow-dag-processor",
            "airflow-scheduler",
            "mlflow",
        ),
        init=("apply",),
    )
    mp = pytest.MonkeyPatch()
    try:
        t0 = time.monotonic()
        stack.up(timeout=600)
        print(f"\nstack up in {time.monotonic() - t0:.0f} s")
        api = Api(stack.api_url, stack.admin_password())
        deadline = time.monotonic() + 300
        wanted = {
            "feast_materialization_pipeline",
            "feast_materialization_pipeline_every_2_hours",
            "feast_backfill",
            "feast_training",
        }
        while not wanted <= {d["dag_id"] for d in api.get("/dags?limit=100")["dags"]}:
            assert time.monotonic() < deadline, (
                "the dag-processor did not parse the DAGs"
            )
            time.sleep(2)
        assert api.get("/importErrors")["total_entries"] == 0
        # The test process reads the same store the tasks write.
        for key in ("FP_PG_DATABASE", "FEATURE_PLATFORM_PROJECT", "FP_REDIS_PORT"):
            mp.setenv(key, env[key])
        store = get_store("services", repo=repo)
        yield Deployment(stack, api, repo, redis, webhook, env, store)
    finally:
        stopped_at = time.monotonic()
        stack.down()
        assert stack.running() == []
        print(f"stack down in {time.monotonic() - stopped_at:.0f} s")
        mp.undo()
        webhook.close()
        redis.stop()
        _drop_databases(list(databases.values()))
