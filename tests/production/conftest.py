"""The production profile against a BigQuery emulator, PostgreSQL and Redis.

``bigquery_emulator`` starts ``bqemulator`` (its own environment,
``.tools/bqemulator`` from ``make bqemulator``; the patches it runs with are in
``emulator/launch.py``) on free loopback ports for the session and stops it
afterwards. Its log is attached to every failed test's report. Missing
emulator environment, or an emulator that does not come up: skipped locally,
a FAILURE under ``CI=true`` (like PostgreSQL and Redis).

``production_env`` points the production profile at it: PostgreSQL registry in
this session's database, loopback Redis, a fake Google credential, a dataset of
this session, the Storage Read API of the emulator
(``FP_BQ_STORAGE_READ_ENDPOINT``) and a non-default pii salt.
``seeded_repo`` loads the sample sources with ``feature-platform load``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    PROJECT,
    ROOT,
    SESSION_ID,
    _service_unavailable,
    make_repo,
)

# The Airflow fixtures of tests/dags (metadata DB, webhook receiver), shared.
from tests.dags.conftest import airflow_db, webhook  # noqa: F401

EMULATOR_PYTHON = ROOT / ".tools" / "bqemulator" / "bin" / "python"
LAUNCHER = Path(__file__).parent / "emulator" / "launch.py"
GCP_PROJECT = "fp-emulator"
DATASET = f"fp_{SESSION_ID}"
STARTUP_TIMEOUT_S = 90.0


@dataclass
class Emulator:
    rest_port: int
    grpc_port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


_RUNNING: list[Emulator] = []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """``bqemulator`` on free loopback ports for the session."""
    if not EMULATOR_PYTHON.is_file():
        _service_unavailable(
            "BigQuery emulator",
            FileNotFoundError(f"{EMULATOR_PYTHON} is missing: run `make bqemulator`"),
        )
    home = tmp_path_factory.mktemp("bqemulator")
    log = home / "bqemulator.log"
    rest, grpc_port = _free_port(), _free_port()
    env = {
        **os.environ,
        # Avro/ORC extensions would be downloaded (no network): not needed.
        "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
        "BQEMU_UPLOAD_STAGING_DIR": str(home / "uploads"),
        "BQEMU_LOG_LEVEL": "warning",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(EMULATOR_PYTHON),
                str(LAUNCHER),
                "start",
                "--rest-port",
                str(rest),
                "--grpc-port",
                str(grpc_port),
                "--project",
                GCP_PROJECT,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
    emulator = Emulator(rest, grpc_port, log, process)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _healthy(emulator.rest_url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _service_unavailable(
                "BigQuery emulator",
                RuntimeError(
                    f"not healthy on {emulator.rest_url} (exit code "
                    f"{process.poll()}); its log {log}:\n{emulator.log_tail()}"
                ),
            )
        time.sleep(0.2)
    _RUNNING.append(emulator)
    try:
        yield emulator
    finally:
        _RUNNING.remove(emulator)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """A failed production test's report carries the emulator's log (its path
    and its tail): the emulator's side of a failure is not lost."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _RUNNING:
        emulator = _RUNNING[-1]
        report.sections.append(
            (f"bqemulator log ({emulator.log})", emulator.log_tail())
        )


def _write_credentials(path: Path) -> Path:
    """An ``authorized_user`` credential with a token that never expires: the
    Google clients send it, the emulator accepts any token, nothing refreshes."""
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "emulator",
                "client_secret": "emulator",
                "refresh_token": "emulator",
                "token": "emulator",
                "expiry": "2999-01-01T00:00:00Z",
            }
        )
    )
    return path


@pytest.fixture(scope="session")
def production_env(
    bigquery_emulator: Emulator,
    services_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Every variable of the production profile, pointed at the emulator, this
    session's PostgreSQL database and the loopback Redis. Set for each test of
    this folder (``_production_environment``) and around the setup of its
    module fixtures (``environment``), never for the rest of the session."""
    home = tmp_path_factory.mktemp("production_env")
    return {
        "BIGQUERY_EMULATOR_HOST": bigquery_emulator.rest_url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(
            _write_credentials(home / "credentials.json")
        ),
        "GOOGLE_CLOUD_PROJECT": GCP_PROJECT,
        "FP_GCP_PROJECT": GCP_PROJECT,
        "FEATURE_PLATFORM_BQ_DATASET": DATASET,
        "FP_BQ_LOCATION": "US",
        "FP_BQ_STORAGE_READ_ENDPOINT": bigquery_emulator.grpc_endpoint,
        "FP_PG_USER": os.environ.get("FP_PG_USER", "postgres"),
        "FP_PG_PASSWORD": os.environ.get("FP_PG_PASSWORD", ""),
        "FP_PG_HOST": os.environ.get("FP_PG_HOST", "127.0.0.1"),
        "FP_PG_PORT": os.environ.get("FP_PG_PORT", "5432"),
        "FP_PG_DATABASE": services_env["FP_PG_DATABASE"],
        "FP_REDIS_HOST": os.environ.get("FP_REDIS_HOST", "127.0.0.1"),
        "FP_REDIS_PORT": os.environ.get("FP_REDIS_PORT", "6379"),
        "FP_REDIS_PASSWORD": os.environ.get("FP_REDIS_PASSWORD", ""),
        "FP_REDIS_SSL": "false",
        # Only a feature server validates tokens against it (not started here).
        "FP_OIDC_DISCOVERY_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
        "FP_OIDC_CLIENT_ID": "feature-platform",
        "FEATURE_PLATFORM_PII_SALT": f"production-test-salt-{SESSION_ID}",
        "FP_MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[pytest.MonkeyPatch]:
    """``values`` set in the environment until the block ends; the profile the
    process loaded last (``profiles._ACTIVE``) is restored then too."""
    from feature_platform import profiles

    active = dict(profiles._ACTIVE)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in values.items():
                mp.setenv(key, value)
            yield mp
    finally:
        profiles._ACTIVE.clear()
        profiles._ACTIVE.update(active)


@pytest.fixture(autouse=True)
def _production_environment(production_env: dict[str, str]) -> Iterator[None]:
    with environment(production_env):
        yield


@pytest.fixture(scope="session")
def seeded_repo(
    production_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A repo with the small sample data, loaded into the emulator's dataset by
    the real command: ``feature-platform --profile production load``."""
    import pandas as pd

    repo = make_repo(tmp_path_factory.mktemp("production_repo"))
    # The warehouse holds the raw addresses (the sample writer masks them at
    # ingestion with the dev salt): the platform must mask them on every write.
    path = repo / "data" / "customer_stats.parquet"
    customers = pd.read_parquet(path)
    customers["email"] = [f"customer.{i}@example.com" for i in customers["customer_id"]]
    customers.to_parquet(path, index=False)
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("feature-platform")),
            "--profile",
            "production",
            "load",
            "--from",
            str(repo / "data"),
        ],
        env={**os.environ, **production_env, "FEATURE_PLATFORM_REPO": str(repo)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout)
    assert set(summary["tables"]) == {
        f"{DATASET}.customer_stats",
        f"{DATASET}.driver_stats",
    }
    return repo


def production_store(repo: Path, monkeypatch: pytest.MonkeyPatch, tag: str) -> Any:
    """A production-profile store of ``repo`` on a Feast project of its own
    (own registry rows and Redis keys), definitions applied."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    monkeypatch.setenv(
        "FEATURE_PLATFORM_PROJECT", f"{PROJECT}_{tag}{uuid.uuid4().hex[:6]}"
    )
    store = get_store("production", repo=repo)
    apply_definitions(store)
    return store


def bigquery_client() -> Any:
    from google.cloud import bigquery

    return bigquery.Client(project=GCP_PROJECT, location="US")


class JobCounter:
    """BigQuery jobs the emulator ran between ``start()`` and ``stop()`` (by
    job id: the emulator's clock does not order creation times reliably)."""

    def __init__(self) -> None:
        self.client = bigquery_client()
        self.before: set[str] = set()
        self.jobs: list[Any] = []

    def _all(self) -> dict[str, Any]:
        return {j.job_id: j for j in self.client.list_jobs(all_users=True)}

    def start(self) -> JobCounter:
        self.before = set(self._all())
        return self

    def stop(self) -> dict[str, Any]:
        jobs = self._all()
        self.jobs = [jobs[j] for j in sorted(set(jobs) - self.before)]
        return summarize_jobs(self.jobs)


# BigQuery's on-demand minimum: every table a query references is billed at
# least 10 MB (https://cloud.google.com/bigquery/pricing#on_demand_pricing).
MIN_BILLED_BYTES_PER_TABLE = 10 * 1024 * 1024


def summarize_jobs(jobs: list[Any]) -> dict[str, Any]:
    """Jobs by type, the bytes the emulator reported, and the bytes BigQuery
    would bill at least (10 MB per source table a query reads)."""
    by_type: dict[str, int] = {}
    tables_read = 0
    reported = 0
    for job in jobs:
        by_type[job.job_type] = by_type.get(job.job_type, 0) + 1
        if job.job_type == "query":
            text = job.query or ""
            tables_read += sum(
                f"{DATASET}.{t}" in text for t in ("customer_stats", "driver_stats")
            )
            reported += int(job.total_bytes_processed or 0)
    return {
        "jobs": len(jobs),
        "by_type": dict(sorted(by_type.items())),
        "source_table_reads": tables_read,
        "bytes_processed_reported_by_emulator": reported,
        "min_billed_bytes": tables_read * MIN_BILLED_BYTES_PER_TABLE,
    }


COSTS_OUT = "FP_BIGQUERY_COSTS_OUT"
COSTS_COMMAND = (
    "make bench-bigquery-costs  # FP_BIGQUERY_COSTS_OUT=benchmarks/results/"
    "bigquery_costs.json pytest -m production"
)


@pytest.fixture(scope="session")
def results() -> Iterator[dict[str, Any]]:
    """BigQuery jobs per run, filled by the tests. With ``$FP_BIGQUERY_COSTS_OUT``
    set (``make bench-bigquery-costs``) they are written there at the end of
    the session, with the commit and command (docs/running/production.md
    renders that file)."""
    collected: dict[str, Any] = {}
    yield collected
    out = os.environ.get(COSTS_OUT)
    if not out or not collected:
        return
    from datetime import UTC, datetime

    from benchmarks.harness import provenance

    payload = {
        "name": "bigquery_costs",
        **provenance(COSTS_COMMAND),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()),
        "emulator": "bqemulator 1.4.0 (tests/production/emulator)",
        "min_billed_bytes_per_table": MIN_BILLED_BYTES_PER_TABLE,
        "results": dict(sorted(collected.items())),
    }
    Path(out).write_text(json.dumps(payload, indent=2) + "\n")
