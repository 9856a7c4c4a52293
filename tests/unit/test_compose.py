"""docker-compose.yml is consistent with the profiles and the Makefile.

No docker engine runs here, so the compose file is checked by construction: it
loads, every service has a pinned image or the project build, the platform
containers get every variable the ``services`` profile needs (with the same
defaults as ``profiles/services.env``), hosts and ports point at the right
services, and the feature server listens where ``make serve`` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROFILE = ROOT / "feature_repo" / "profiles" / "services.yaml"
PROFILE_ENV = ROOT / "feature_repo" / "profiles" / "services.env"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")

PLATFORM = ["init", "feature-server"]
AIRFLOW = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
]
INFRA = {"postgres": 5432, "redis": 6379}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _profile_vars() -> set[str]:
    return {m.group(1) for m in _REF.finditer(PROFILE.read_text())}


def _profile_defaults() -> dict[str, str]:
    out = {}
    for line in PROFILE_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _makefile_default(name: str) -> str:
    match = re.search(
        rf"^{name}\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE
    )
    assert match, f"Makefile has no `{name} ?=` default"
    return match.group(1)


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for spec in service.get("ports", []):
        target = (
            spec["target"] if isinstance(spec, dict) else str(spec).rsplit(":", 1)[-1]
        )
        ports.add(int(str(target).split("/")[0]))
    return ports


def _flag(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def test_the_expected_services_exist(services: dict[str, Any]) -> None:
    assert set(services) == set(PLATFORM) | set(AIRFLOW) | set(INFRA) | {"mlflow"}


def test_mlflow_tracking_server(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    """PostgreSQL backend store (database ``mlflow``), artifacts in a volume the
    image creates, the port the platform containers' tracking URI names."""
    mlflow = services["mlflow"]
    assert mlflow["image"] == services["init"]["image"]
    script = " ".join(mlflow["command"])
    assert "mlflow server" in script
    assert "@postgres:5432/mlflow" in script
    assert (
        "--port 5000" in script and "--artifacts-destination /app/mlartifacts" in script
    )
    assert _container_ports(mlflow) == {5000}
    assert "/app/mlartifacts" in _image_dirs()
    assert "CREATE DATABASE mlflow" in compose["configs"]["postgres-init"]["content"]
    for name in PLATFORM + AIRFLOW:
        assert _env(services[name])["FP_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


@pytest.mark.parametrize("name", PLATFORM + AIRFLOW)
def test_platform_services_build_the_project_image(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    build = service["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == "docker/Dockerfile"
    # One image for every platform container.
    assert service["image"] == services["init"]["image"]


@pytest.mark.parametrize(
    ("name", "repo"), [("postgres", "postgres"), ("redis", "redis")]
)
def test_infra_images_are_pinned(
    services: dict[str, Any], name: str, repo: str
) -> None:
    image = services[name]["image"]
    name_part, _, tag = image.partition(":")
    assert name_part == repo
    assert tag and tag != "latest" and tag[0].isdigit(), image


@pytest.mark.parametrize("name", PLATFORM + AIRFLOW)
def test_platform_env_satisfies_the_services_profile(
    services: dict[str, Any], name: str
) -> None:
    env = _env(services[name])
    assert env["FEATURE_PLATFORM_PROFILE"] == "services"
    missing = _profile_vars() - set(env)
    assert not missing, f"{name} lacks {sorted(missing)} used by services.yaml"
    # Hosts are the compose services, ports their container ports.
    assert env["FP_PG_HOST"] == "postgres"
    assert env["FP_REDIS_HOST"] == "redis"
    assert int(env["FP_PG_PORT"]) == INFRA["postgres"]
    assert int(env["FP_REDIS_PORT"]) == INFRA["redis"]
    # The same defaults as a laptop run (profiles/services.env).
    defaults = _profile_defaults()
    for key, value in env.items():
        match = _REF.fullmatch(value)
        if match and match.group(1) == key and match.group(2) == ":-":
            assert match.group(3) == defaults.get(key), (name, key)
    # Secrets are required from the environment, never defaulted.
    for secret in ("FP_PG_PASSWORD", "FP_REDIS_PASSWORD"):
        match = _REF.fullmatch(env[secret])
        assert match and match.group(1) == secret and match.group(2) == ":?", env[
            secret
        ]


def test_ports_match_the_profile_defaults(services: dict[str, Any]) -> None:
    defaults = _profile_defaults()
    assert INFRA["postgres"] == int(defaults["FP_PG_PORT"])
    assert INFRA["redis"] == int(defaults["FP_REDIS_PORT"])
    for name, port in INFRA.items():
        assert _container_ports(services[name]) == {port}
        for spec in services[name].get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), (
                f"{name} published beyond loopback"
            )


def test_postgres_and_redis_use_the_platform_credentials(
    services: dict[str, Any],
) -> None:
    pg = _env(services["postgres"])
    platform = _env(services["init"])
    assert pg["POSTGRES_USER"] == platform["FP_PG_USER"]
    assert pg["POSTGRES_PASSWORD"] == platform["FP_PG_PASSWORD"]
    assert pg["POSTGRES_DB"] == platform["FP_PG_DATABASE"]
    redis = services["redis"]
    assert _env(redis)["FP_REDIS_PASSWORD"] == platform["FP_REDIS_PASSWORD"]
    script = " ".join(redis["command"])
    assert "requirepass" in script and "$$FP_REDIS_PASSWORD" in script
    for name in INFRA:
        assert services[name].get("healthcheck"), f"{name} needs a healthcheck"


def test_feature_server_matches_make_serve(services: dict[str, Any]) -> None:
    server = services["feature-server"]
    port = int(_makefile_default("PORT"))
    command = server["command"]
    assert command[:2] == ["feature-platform", "serve"]
    assert int(_flag(command, "--port")) == port
    assert _flag(command, "--host") == "0.0.0.0"  # reachable through the port map
    assert _container_ports(server) == {port}
    probe = " ".join(server["healthcheck"]["test"])
    assert f":{port}/health" in probe
    assert server["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_init_applies_and_materializes(services: dict[str, Any]) -> None:
    init = services["init"]
    script = " ".join(init["command"])
    assert "feature-platform apply" in script
    assert "feature-platform materialize" in script
    for dep in INFRA:
        assert init["depends_on"][dep]["condition"] == "service_healthy"


def test_airflow_components(services: dict[str, Any], compose: dict[str, Any]) -> None:
    commands = {name: services[name]["command"] for name in AIRFLOW}
    assert commands["airflow-init"] == ["airflow", "db", "migrate"]
    assert commands["airflow-apiserver"][:2] == ["airflow", "api-server"]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    api_port = int(_flag(commands["airflow-apiserver"], "--port"))
    assert _container_ports(services["airflow-apiserver"]) == {api_port}
    for name in AIRFLOW:
        env = _env(services[name])
        dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
        mounts = services[name]["volumes"]
        assert f"./dags:{dags}:ro" in mounts, f"{name} does not mount ./dags"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            f"http://airflow-apiserver:{api_port}/"
        )
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        if name != "airflow-init":
            assert (
                services[name]["depends_on"]["airflow-init"]["condition"]
                == "service_completed_successfully"
            )
    assert (ROOT / "dags").is_dir()
    assert "CREATE DATABASE airflow" in compose["configs"]["postgres-init"]["content"]


def test_named_volumes_are_declared(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
            else:
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def _dockerfile_lines() -> list[str]:
    """Dockerfile instructions with line continuations joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [line for line in lines if line]


def _image_dirs() -> set[str]:
    """Directories the image creates: WORKDIR, COPY destinations, ``mkdir -p``."""
    workdir, dirs = "/", set()
    for line in _dockerfile_lines():
        instruction, _, rest = line.partition(" ")
        if instruction == "WORKDIR":
            workdir = rest.strip()
            dirs.add(workdir)
        elif instruction == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            if len(parts) == 2:  # one source (a directory here) -> its destination
                dirs.add(str(Path(workdir) / parts[1]).rstrip("/"))
        elif instruction == "RUN":
            for match in re.finditer(r"mkdir -p ((?:/\S+\s*)+)", rest):
                dirs.update(match.group(1).split())
    return dirs


def test_dockerfile_matches_the_platform_containers(services: dict[str, Any]) -> None:
    """Mount points exist in the image (so volumes are writable by its user) and
    the containers point FEATURE_PLATFORM_REPO where the image put the repo."""
    assert DOCKERFILE.is_file()
    env_match = re.search(r"FEATURE_PLATFORM_REPO=(\S+)", DOCKERFILE.read_text())
    assert env_match, "docker/Dockerfile sets no FEATURE_PLATFORM_REPO"
    image_dirs = _image_dirs()
    assert "/app/feature_repo" in image_dirs  # the parser really read the file
    for name in PLATFORM + AIRFLOW:
        env = _env(services[name])
        assert env["FEATURE_PLATFORM_REPO"] == env_match.group(1)
        assert env["FEATURE_PLATFORM_DATA_DIR"] in image_dirs
        assert env["FEATURE_PLATFORM_ARTIFACTS"] in image_dirs
        for mount in services[name].get("volumes", []):
            target = str(mount).split(":")[1]
            assert target in image_dirs, f"{name}: {target} is not created by the image"
        if name in AIRFLOW:
            assert env["AIRFLOW_HOME"] in image_dirs
            assert env["AIRFLOW__CORE__DAGS_FOLDER"] in image_dirs
