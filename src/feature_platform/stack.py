"""``make stack``: what docker-compose.yml runs, as local processes (no docker).

Airflow 3 ``api-server``, ``dag-processor`` and ``scheduler`` (LocalExecutor, a
PostgreSQL metadata database), the feature server and an MLflow tracking server
(PostgreSQL backend store, local artifact directory), on the machine's
PostgreSQL and Redis (the ``services`` profile, ``FP_PG_*`` / ``FP_REDIS_*``).

* **One source of truth**: ports and settings come from ``docker/stack.env``, the
  file every docker-compose service reads too (``env_file``); the PostgreSQL and
  Redis defaults from ``feature_repo/profiles/services.env``. A variable set in
  the environment wins over both (``profiles.child_environment``).
* **Logs in one place**: ``.stack/logs/<service>.log``, Airflow's task and
  dag-processor logs under ``.stack/logs/airflow/``. State (AIRFLOW_HOME, the
  JWT secret, MLflow artifacts, pid files) under ``.stack/``.
* ``down`` stops every process group it started (by the pids it recorded) and
  waits until none is left.

Tests start a private stack (own ports, database names, Redis, state dir) with
:class:`Stack` directly (``tests/stack/``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from feature_platform.errors import BadInput, StackError
from feature_platform.profiles import child_environment, read_env_file

__all__ = ["ENV_FILE", "SERVICES", "Stack", "StackError", "main"]

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = Path("docker") / "stack.env"
SERVICES = ("airflow-apiserver", "airflow-dag-processor", "airflow-scheduler")
OPTIONAL = ("feature-server", "mlflow")
INIT_STEPS = ("generate", "apply", "materialize")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class Stack:
    """The stack rooted at ``root`` (the checkout: ``dags/``, ``docker/stack.env``).

    ``overrides`` win over the environment and the env files (tests set private
    ports, databases and Redis with it); ``services`` picks what runs besides
    Airflow; ``init`` the platform steps before the services start (compose's
    ``init`` container: sample data if missing, apply, materialize).
    """

    root: Path = ROOT
    state_dir: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    services: Sequence[str] = SERVICES + OPTIONAL
    init: Sequence[str] = INIT_STEPS

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.state = Path(self.state_dir or self.root / ".stack").resolve()
        self.logs = self.state / "logs"
        self.pids = self.state / "pids"
        self.airflow_home = self.state / "airflow"
        unknown = set(self.services) - set(SERVICES + OPTIONAL)
        if unknown:
            raise BadInput(f"unknown stack service(s) {sorted(unknown)}")

    # ----------------------------------------------------------------- settings
    def env(self) -> dict[str, str]:
        """The environment of every stack process."""
        defaults = {
            **read_env_file(self.root / "feature_repo" / "profiles" / "services.env"),
            **read_env_file(self.root / ENV_FILE),
        }
        env = child_environment(defaults, self.overrides)
        pg = (
            f"{quote(env['FP_PG_USER'])}:{quote(env.get('FP_PG_PASSWORD', ''))}"
            f"@{env['FP_PG_HOST']}:{env['FP_PG_PORT']}"
        )
        api = env["FP_AIRFLOW_API_PORT"]
        if api == env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]:
            raise StackError(
                f"FP_AIRFLOW_API_PORT and AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT "
                f"are both {api}: the scheduler's log server would take the API's "
                "port"
            )
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "dags"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                    f"postgresql+psycopg://{pg}/{env['FP_AIRFLOW_DATABASE']}"
                ),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                    f"http://127.0.0.1:{api}/execution/"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": api,
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "airflow"),
                "FP_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{env['FP_MLFLOW_PORT']}",
                "FP_MLFLOW_BACKEND_STORE_URI": (
                    f"postgresql+psycopg://{pg}/{env['FP_MLFLOW_DATABASE']}"
                ),
            }
        )
        return env

    def _secret(self, name: str) -> str:
        path = self.state / name
        if not path.is_file():
            self.state.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env()['FP_AIRFLOW_API_PORT']}"

    def admin_password(self) -> str:
        """The Airflow UI/REST password of user ``admin`` (simple auth manager)."""
        path = self.airflow_home / "simple_auth_manager_passwords.json.generated"
        if not path.is_file():
            self.airflow_home.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"admin": secrets.token_urlsafe(16)}))
            path.chmod(0o600)
        return str(json.loads(path.read_text())["admin"])

    def commands(self, env: dict[str, str]) -> dict[str, list[str]]:
        airflow = _bin("airflow")
        return {
            "airflow-apiserver": [airflow, "api-server"],
            "airflow-dag-processor": [airflow, "dag-processor"],
            "airflow-scheduler": [airflow, "scheduler"],
            "feature-server": [
                _bin("feature-platform"),
                "--profile",
                env["FEATURE_PLATFORM_PROFILE"],
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                env["FP_SERVER_PORT"],
            ],
            "mlflow": [
                _bin("mlflow"),
                "server",
                "--backend-store-uri",
                env["FP_MLFLOW_BACKEND_STORE_URI"],
                "--artifacts-destination",
                str(self.state / "mlartifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                env["FP_MLFLOW_PORT"],
                "--workers",
                "1",
            ],
        }

    def health_urls(self, env: dict[str, str]) -> dict[str, str]:
        return {
            "airflow-apiserver": (
                f"http://127.0.0.1:{env['FP_AIRFLOW_API_PORT']}/api/v2/monitor/health"
            ),
            "feature-server": f"http://127.0.0.1:{env['FP_SERVER_PORT']}/health",
            "mlflow": f"http://127.0.0.1:{env['FP_MLFLOW_PORT']}/health",
        }

    # --------------------------------------------------------------- lifecycle
    def up(self, *, timeout: float = 600.0) -> None:
        """Create the databases, migrate, run the init steps, start every
        service and wait until each is healthy (``down`` on failure)."""
        if self.running():
            raise StackError(
                f"a stack is already running from {self.state} "
                f"({', '.join(self.running())}): run `make stack-down` first"
            )
        env = self.env()
        for path in (self.logs, self.pids, self.airflow_home):
            path.mkdir(parents=True, exist_ok=True)
        self.admin_password()
        self._create_databases(env)
        self._run("airflow-db-migrate", [_bin("airflow"), "db", "migrate"], env)
        self._init_platform(env)
        commands = self.commands(env)
        try:
            for name in self.services:
                self._start(name, commands[name], env)
            self._wait_healthy(env, time.monotonic() + timeout)
        except BaseException:
            self.down()
            raise

    def _create_databases(self, env: dict[str, str]) -> None:
        import psycopg

        conn = psycopg.connect(
            host=env["FP_PG_HOST"],
            port=env["FP_PG_PORT"],
            user=env["FP_PG_USER"],
            password=env.get("FP_PG_PASSWORD", ""),
            dbname="postgres",
            connect_timeout=10,
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for key in (
                    "FP_PG_DATABASE",
                    "FP_AIRFLOW_DATABASE",
                    "FP_MLFLOW_DATABASE",
                ):
                    cur.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (env[key],)
                    )
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE DATABASE "{env[key]}"')
        finally:
            conn.close()

    def _init_platform(self, env: dict[str, str]) -> None:
        fp = [_bin("feature-platform"), "--profile", env["FEATURE_PLATFORM_PROFILE"]]
        data = Path(env.get("FEATURE_PLATFORM_REPO") or self.root / "feature_repo")
        for step in self.init:
            if step == "generate":
                if (data / "data" / "driver_stats.parquet").is_file():
                    continue
                self._run("init-generate", [*fp, "generate"], env)
            elif step in ("apply", "materialize"):
                self._run(f"init-{step}", [*fp, step], env)
            else:
                raise BadInput(f"unknown init step {step!r} (one of {INIT_STEPS})")

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        own_group: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the repo root, its output appended to logs/<name>.log."""
        with (self.logs / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                argv,
                env=env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=own_group,
            )

    def _run(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        proc = self._spawn(name, argv, env)
        try:
            code = proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        if code != 0:
            log = self.logs / f"{name}.log"
            raise StackError(f"{name} failed (exit {code}):\n{_tail(log)}")

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # its own process group: down stops the tree
        proc = self._spawn(name, argv, env, own_group=True)
        (self.pids / f"{name}.pid").write_text(str(proc.pid))

    def _wait_healthy(self, env: dict[str, str], deadline: float) -> None:
        urls = self.health_urls(env)
        pending = [n for n in self.services if n in urls]
        while pending or not self._airflow_components_healthy(urls):
            for name in self.services:
                if not _alive(self._pid(name)):
                    raise StackError(
                        f"{name} exited during start-up; "
                        f"{self.logs / (name + '.log')}:\n"
                        f"{_tail(self.logs / (name + '.log'))}"
                    )
            pending = [n for n in pending if not _http_ok(urls[n])]
            if time.monotonic() > deadline:
                raise StackError(f"not healthy in time: {pending or 'airflow'}")
            time.sleep(1.0)

    def _airflow_components_healthy(self, urls: dict[str, str]) -> bool:
        """The API's health report lists the scheduler and dag-processor."""
        try:
            with urllib.request.urlopen(urls["airflow-apiserver"], timeout=5) as r:
                health = json.load(r)
        except (OSError, ValueError):
            return False
        wanted = {"metadatabase", "scheduler", "dag_processor"}
        return all(
            (health.get(part) or {}).get("status") == "healthy" for part in wanted
        )

    def _pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        return int(path.read_text()) if path.is_file() else None

    def running(self) -> list[str]:
        """The services whose recorded process group still has a process."""
        return [n for n in SERVICES + OPTIONAL if _alive(self._pid(n))]

    def down(self, *, timeout: float = 30.0) -> list[str]:
        """Stop every process group the stack started; returns their names."""
        stopped = []
        for name in SERVICES + OPTIONAL:
            pid = self._pid(name)
            if pid is None:
                continue
            if _alive(pid):
                _signal_group(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + timeout
        for name in stopped:
            pid = self._pid(name)
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                assert pid is not None
                _signal_group(pid, signal.SIGKILL)
        for name in SERVICES + OPTIONAL:
            pid = self._pid(name)
            while _alive(pid) and time.monotonic() < deadline + 10:
                time.sleep(0.2)
            (self.pids / f"{name}.pid").unlink(missing_ok=True)
        return stopped


def _alive(pgid: int | None) -> bool:
    """Whether any process of the group ``pgid`` is left (zombies reaped)."""
    if pgid is None:
        return False
    try:
        os.waitpid(pgid, os.WNOHANG)  # reap our own child if it exited
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _group_has_live_process(pgid)


def _group_has_live_process(pgid: int) -> bool:
    """``killpg(0)`` also succeeds for zombies: look for a non-zombie member."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/stack",
        description="Run docker-compose.yml's services as local processes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start (logs in .stack/logs/)")
    up.add_argument(
        "--no-init", action="store_true", help="skip generate/apply/materialize"
    )
    sub.add_parser("down", help="stop everything the stack started")
    sub.add_parser("status", help="what runs, the URLs and the admin password file")
    args = parser.parse_args(argv)
    stack = Stack(init=() if getattr(args, "no_init", False) else INIT_STEPS)
    if args.command == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.command == "up":
        try:
            stack.up()
        except StackError as exc:
            print(f"stack: {exc}", file=sys.stderr)
            return 1
    env = stack.env()
    print(
        json.dumps(
            {
                "running": stack.running(),
                "airflow": stack.api_url,
                "airflow_user": "admin",
                "airflow_password_file": str(
                    stack.airflow_home / "simple_auth_manager_passwords.json.generated"
                ),
                "feature_server": f"http://127.0.0.1:{env['FP_SERVER_PORT']}",
                "mlflow": env["FP_MLFLOW_TRACKING_URI"],
                "logs": str(stack.logs),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
