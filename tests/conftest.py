"""Shared fixtures: temporary feature repos, small sample data, real services.

* Each test session uses a fresh Feast project name (``fp_<hex>``), so Redis keys
  and registry rows never collide with another run or with ``make demo``.
* ``services_env`` creates a fresh PostgreSQL database for the session and points
  the ``services`` profile at it (plus the loopback Redis). When PostgreSQL or
  Redis is unreachable the test is skipped locally but FAILS under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feature_platform.sample_data import SampleSpec, write_sample_data

ROOT = Path(__file__).resolve().parents[1]
REPO_SRC = ROOT / "feature_repo"
SESSION_ID = uuid.uuid4().hex[:8]
PROJECT = f"fp_{SESSION_ID}"
# Sample data ends at the last full hour, so "now" windows always cover it.
TEST_END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
SMALL_SPEC = SampleSpec(customers=600, drivers=60, days=20, seed=7, end=TEST_END)

os.environ["FEATURE_PLATFORM_PROJECT"] = PROJECT
os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.pop("FEATURE_PLATFORM_DATA_DIR", None)
os.environ.pop("FEATURE_PLATFORM_PROFILE", None)


@pytest.fixture(autouse=True)
def _restore_profile_env() -> Iterator[None]:
    """Keep one test's profile (the active profile ``profiles.load_repo_config``
    records, and the variables a test sets) from leaking into the next."""
    from feature_platform import profiles

    keys = ("FEATURE_PLATFORM_OFFLINE", "FEATURE_PLATFORM_PROJECT")
    saved = {k: os.environ.get(k) for k in keys}
    active = dict(profiles._ACTIVE)
    yield
    profiles._ACTIVE.clear()
    profiles._ACTIVE.update(active)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def copy_repo(dst: Path) -> Path:
    """A copy of feature_repo/ (definitions + profiles) without data or state."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in REPO_SRC.iterdir():
        if path.name in {"data", "__pycache__"}:
            continue
        if path.is_dir():
            shutil.copytree(
                path, dst / path.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(path, dst / path.name)
    return dst


def make_repo(dst: Path, spec: SampleSpec = SMALL_SPEC) -> Path:
    repo = copy_repo(dst)
    write_sample_data(repo / "data", spec)
    return repo


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only repo with small sample data (do not materialize into it)."""
    return make_repo(tmp_path_factory.mktemp("sample_repo"))


@pytest.fixture(scope="session")
def applied_local_store(sample_repo: Path):
    """The local-profile store of ``sample_repo`` with definitions applied."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    store = get_store("local", repo=sample_repo)
    apply_definitions(store)
    return store


@pytest.fixture
def local_repo(tmp_path: Path) -> Path:
    """A fresh repo with small sample data, for tests that write state."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def local_store(local_repo: Path):
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    store = get_store("local", repo=local_repo)
    apply_definitions(store)
    return store


# ---------------------------------------------------------------- real services


def _service_unavailable(name: str, exc: Exception) -> None:
    message = f"{name} is not reachable on 127.0.0.1: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(message)


def _pg_admin_dsn() -> str:
    host = os.environ.get("FP_PG_HOST", "127.0.0.1")
    port = os.environ.get("FP_PG_PORT", "5432")
    user = os.environ.get("FP_PG_USER", "postgres")
    password = os.environ.get("FP_PG_PASSWORD", "")
    return f"host={host} port={port} user={user} password={password} dbname=postgres"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    import psycopg

    name = f"fp_test_{SESSION_ID}"
    try:
        conn = psycopg.connect(_pg_admin_dsn(), connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any connection failure
        _service_unavailable("PostgreSQL", exc)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(scope="session")
def redis_available() -> None:
    import redis

    host = os.environ.get("FP_REDIS_HOST", "127.0.0.1")
    port = int(os.environ.get("FP_REDIS_PORT", "6379"))
    try:
        redis.Redis(host=host, port=port, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        _service_unavailable("Redis", exc)


@pytest.fixture(scope="session")
def services_env(pg_database: str, redis_available: None) -> Iterator[dict[str, str]]:
    """Point the ``services`` profile at this session's database and Redis."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FP_PG_DATABASE", pg_database)
        yield {"FP_PG_DATABASE": pg_database, "FEATURE_PLATFORM_PROJECT": PROJECT}


@contextmanager
def fresh_services_store(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tag: str = "",
    *,
    plain_feast: bool = False,
) -> Iterator[Any]:
    """A services-profile store on its own Feast project (own Redis keys and
    registry rows), definitions applied; its Redis keys are removed afterwards.
    With ``plain_feast`` it runs Feast's stock Redis store and local engine (the
    baseline the platform's plugins are compared with)."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import PLAIN_FEAST, get_store

    monkeypatch.setenv(
        "FEATURE_PLATFORM_PROJECT", f"{PROJECT}_{tag}{uuid.uuid4().hex[:6]}"
    )
    store = get_store(
        "services", repo=repo, overrides=PLAIN_FEAST if plain_feast else None
    )
    apply_definitions(store)
    try:
        yield store
    finally:
        store.teardown()


@pytest.fixture
def services_store(
    services_env: dict[str, str], local_repo: Path, monkeypatch: pytest.MonkeyPatch
):
    """A services-profile store (PostgreSQL registry + Redis) with definitions applied.

    Each test gets its own Feast project (so its own Redis keys and registry
    rows); its Redis keys are removed afterwards.
    """
    with fresh_services_store(local_repo, monkeypatch) as store:
        yield store


def hours_ago(hours: float) -> datetime:
    return TEST_END - timedelta(hours=hours)
