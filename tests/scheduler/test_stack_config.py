"""``make stack`` and docker-compose.yml read one file of ports and settings
(docker/stack.env); the stack's derived settings are the ones Airflow needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from feature_platform.profiles import read_env_file
from feature_platform.stack import ENV_FILE, Stack, StackError

ROOT = Path(__file__).resolve().parents[2]
STACK_ENV = read_env_file(ROOT / ENV_FILE)


def _published(service: dict) -> set[tuple[str, int]]:
    out = set()
    for spec in service.get("ports", []):
        host, published, target = str(spec).split(":")
        out.add((host, int(published)))
        assert published == target
    return out


def test_compose_reads_the_stack_env_file() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        if name in ("postgres", "redis"):
            continue
        assert service.get("env_file") == str(ENV_FILE), name
    ports = {
        "airflow-apiserver": "FP_AIRFLOW_API_PORT",
        "feature-server": "FP_SERVER_PORT",
        "mlflow": "FP_MLFLOW_PORT",
    }
    for name, var in ports.items():
        assert _published(services[name]) == {("127.0.0.1", int(STACK_ENV[var]))}
    assert STACK_ENV["FP_MLFLOW_TRACKING_URI"] == (
        f"http://127.0.0.1:{STACK_ENV['FP_MLFLOW_PORT']}"
    )


def test_stack_environment(tmp_path: Path) -> None:
    env = Stack(state_dir=tmp_path, overrides={"FP_PG_PASSWORD": "p@ss"}).env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("postgresql+psycopg://postgres:p%40ss@")
    assert url.endswith("/" + STACK_ENV["FP_AIRFLOW_DATABASE"])
    api = env["FP_AIRFLOW_API_PORT"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        f"http://127.0.0.1:{api}/execution/"
    )
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] != api
    assert env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == str(
        tmp_path / "logs" / "airflow"
    )
    assert env["FP_MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{env['FP_MLFLOW_PORT']}"
    assert env["FP_MLFLOW_BACKEND_STORE_URI"].endswith(
        "/" + STACK_ENV["FP_MLFLOW_DATABASE"]
    )
    # Airflow derives postgresql+asyncpg from the URL: the driver must be there.
    import asyncpg  # noqa: F401

    # the JWT secret is generated once, private, and shared by every component
    secret = tmp_path / "jwt_secret"
    assert secret.stat().st_mode & 0o077 == 0
    assert Stack(state_dir=tmp_path).env()["AIRFLOW__API_AUTH__JWT_SECRET"] == (
        secret.read_text()
    )


def test_stack_refuses_the_log_server_on_the_api_port(tmp_path: Path) -> None:
    stack = Stack(
        state_dir=tmp_path,
        overrides={
            "FP_AIRFLOW_API_PORT": "8793",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8793",
        },
    )
    with pytest.raises(StackError, match="WORKER_LOG_SERVER_PORT"):
        stack.env()


def test_unknown_service_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="airflow-triggerer"):
        Stack(state_dir=tmp_path, services=("airflow-triggerer",))
