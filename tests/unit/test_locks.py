"""The registry-writer lock: target selection, file lock exclusion, timeouts."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from feature_platform.locks import (
    LockTimeout,
    advisory_key,
    lock_target,
    locking_enabled,
    registry_lock,
)


def _config(path: str, registry_type: str = "sql", repo: str = "/repo"):
    registry = SimpleNamespace(registry_type=registry_type, path=path)
    return SimpleNamespace(registry=registry, project="p1", repo_path=repo)


@pytest.mark.parametrize(
    ("registry_type", "path", "expected"),
    [
        (
            "sql",
            "postgresql+psycopg://u:pw@127.0.0.1:5432/db",
            ("postgresql", "postgresql+psycopg://u:pw@127.0.0.1:5432/db"),
        ),
        ("sql", "sqlite:////data/registry.db", ("file", "/data/registry.db.lock")),
        ("file", "data/registry.pb", ("file", "/repo/data/registry.pb.lock")),
        ("file", "/abs/registry.pb", ("file", "/abs/registry.pb.lock")),
    ],
)
def test_lock_target(registry_type: str, path: str, expected: tuple[str, str]) -> None:
    assert lock_target(_config(path, registry_type)) == expected


def test_unsupported_registry_is_not_locked() -> None:
    kind, why = lock_target(_config("mysql://x/y"))
    assert kind == "none" and "mysql" in why
    with registry_lock(_config("mysql://x/y")):  # warns, does not fail
        pass


def test_advisory_key_is_stable_signed_64_bit_and_per_project() -> None:
    # Fixed value: must not change between processes or Python versions.
    assert advisory_key("feature_platform") == advisory_key("feature_platform")
    assert advisory_key("a") != advisory_key("b")
    for name in ["a", "b", "feature_platform", "fp_1234"]:
        assert -(2**63) <= advisory_key(name) < 2**63


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("on", True), ("off", False), ("0", False), ("false", False)],
)
def test_locking_enabled(monkeypatch, value: str | None, enabled: bool) -> None:
    if value is None:
        monkeypatch.delenv("FEATURE_PLATFORM_REGISTRY_LOCK", raising=False)
    else:
        monkeypatch.setenv("FEATURE_PLATFORM_REGISTRY_LOCK", value)
    assert locking_enabled() is enabled


def _hold(db: str, ready, release) -> None:
    with registry_lock(_config(f"sqlite:///{db}")):
        ready.set()
        release.wait(30)


def test_file_lock_excludes_other_processes_and_times_out(tmp_path: Path) -> None:
    db = str(tmp_path / "registry.db")
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(db, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"registry\.db\.lock.*held by another"):
            with registry_lock(_config(f"sqlite:///{db}"), timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3
        # Another project's lock file is separate only per registry: same file.
        release.set()
        holder.join(30)
        with registry_lock(_config(f"sqlite:///{db}"), timeout=5):
            pass  # free again once the holder exits
    finally:
        release.set()
        holder.join(30)
        if holder.is_alive():
            holder.kill()


def test_lock_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path / 'r.db'}")
    with registry_lock(config, timeout=0.5):
        with registry_lock(config, timeout=0.5):  # would time out if not re-entrant
            pass
        with registry_lock(config, timeout=0.5):
            pass


def test_disabled_lock_does_not_exclude(tmp_path: Path, monkeypatch) -> None:
    db = str(tmp_path / "registry.db")
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(db, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        monkeypatch.setenv("FEATURE_PLATFORM_REGISTRY_LOCK", "off")
        with registry_lock(_config(f"sqlite:///{db}"), timeout=0.1):
            pass
    finally:
        release.set()
        holder.join(30)


def test_local_apply_and_materialize_take_the_lock(local_store) -> None:
    """With the lock held elsewhere, apply and materialize wait, then time out."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_incremental
    from tests.conftest import TEST_END

    db = lock_target(local_store.config)[1][: -len(".lock")]
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(db, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.MonkeyPatch.context() as mpatch:
            mpatch.setenv("FEATURE_PLATFORM_LOCK_TIMEOUT", "0.3")
            with pytest.raises(LockTimeout):
                apply_definitions(local_store)
            with pytest.raises(LockTimeout):
                materialize_incremental(local_store, TEST_END)
        release.set()
        holder.join(30)
        assert materialize_incremental(local_store, TEST_END)["rows_total"] > 0
    finally:
        release.set()
        holder.join(30)
