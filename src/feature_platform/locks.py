"""Serialize the platform's registry writers (apply, materialization) per project.

Feast's SQL registry updates objects read-modify-write without a lock: two
materializations that finish together each read a feature view, append their
interval and write it back, so one interval is lost; an ``apply`` racing a
materialization can write back a view without the interval just recorded.
``registry_lock`` makes every platform writer take one exclusive lock per
project, chosen from the store's registry config:

* PostgreSQL registry: a session-level ``pg_advisory_lock`` on the registry
  database, on a dedicated connection (so it is released by the server if the
  process dies), key = 64-bit hash of ``feature_platform:<project>``;
* SQLite registry (``sqlite:///...``) or a file registry: ``fcntl.flock`` on
  ``<registry file>.lock`` beside it (released by the kernel on exit);
* any other registry: no lock, with a warning (not supported by the platform).

The lock is re-entrant within a thread (``materialize_incremental`` calls
``materialize_window``), waits at most ``timeout`` seconds (default
``$FEATURE_PLATFORM_LOCK_TIMEOUT`` or 600) and then raises ``LockTimeout``
naming the holder. ``FEATURE_PLATFORM_REGISTRY_LOCK=off`` disables locking;
it exists only so the tests can show the race the lock prevents.

Readers (online reads, ``feast serve``) never take the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.errors import LockError, LockTimeout
from feature_platform.redact import redact_url

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

__all__ = [
    "LockError",
    "LockTimeout",
    "advisory_key",
    "lock_target",
    "locking_enabled",
    "registry_lock",
]

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 600.0
_POLL_S = 0.05
_held = threading.local()  # keys this thread holds -> depth


def locking_enabled() -> bool:
    """False only when ``FEATURE_PLATFORM_REGISTRY_LOCK`` is off/0/false/no."""
    from feature_platform.settings import settings

    return settings().registry_lock


def advisory_key(project: str) -> int:
    """Stable signed 64-bit key for ``pg_advisory_lock`` (not Python's hash())."""
    digest = hashlib.blake2b(
        f"feature_platform:{project}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_target(config: RepoConfig) -> tuple[str, str]:
    """What to lock for a registry config.

    ``("postgresql", url)``, ``("file", lock file path)`` or ``("none", reason)``.
    """
    registry: Any = config.registry
    path = str(getattr(registry, "path", registry) or "")
    registry_type = getattr(registry, "registry_type", "file")
    if registry_type == "sql" and path.startswith("postgresql"):
        return "postgresql", path
    if registry_type == "sql" and path.startswith("sqlite:///"):
        return "file", path[len("sqlite:///") :] + ".lock"
    if registry_type == "file" and "://" not in path:
        base = Path(path)
        if not base.is_absolute() and config.repo_path is not None:
            base = Path(config.repo_path) / base
        return "file", str(base) + ".lock"
    return "none", f"registry {registry_type} {path.split('://')[0]!r}"


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    from feature_platform.settings import settings

    return settings().lock_timeout_s


@contextlib.contextmanager
def _pg_lock(url: str, project: str, timeout: float) -> Iterator[None]:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = (
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    key = advisory_key(project)
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(1, int(min(timeout, 10))),
            application_name=f"feature_platform lock {project}",
        )
    except psycopg.OperationalError as exc:
        raise LockError(
            f"cannot take the registry lock for project {project!r}: PostgreSQL "
            f"registry {redact_url(url)} is unreachable ({str(exc).strip()})"
        ) from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row and row[0]:
                break
            if time.monotonic() >= deadline:
                holder = conn.execute(
                    "SELECT l.pid, a.application_name FROM pg_locks l "
                    "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.classid = ((%s >> 32) & 4294967295)::oid "
                    "AND l.objid = (%s & 4294967295)::oid LIMIT 1",
                    (key, key),
                ).fetchone()
                who = f"pid {holder[0]} ({holder[1]})" if holder else "another session"
                raise LockTimeout(
                    f"registry lock for project {project!r} on {redact_url(url)} is "
                    f"held by {who}; gave up after {timeout:g}s (another apply or "
                    "materialization is running; retry later or raise "
                    "FEATURE_PLATFORM_LOCK_TIMEOUT)"
                )
            time.sleep(_POLL_S)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # closing releases it anyway
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


@contextlib.contextmanager
def _file_lock(path: str, project: str, timeout: float) -> Iterator[None]:
    import fcntl

    lock_path = Path(path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise LockError(f"cannot open registry lock file {lock_path}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"registry lock {lock_path} (project {project!r}) is held "
                        f"by another process; gave up after {timeout:g}s"
                    ) from None
                time.sleep(_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


@contextlib.contextmanager
def registry_lock(
    store: FeatureStore | RepoConfig,
    *,
    project: str | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold the project's exclusive registry-writer lock for the ``with`` block."""
    config: Any = getattr(store, "config", store)
    project = project or config.project
    if not locking_enabled():
        yield
        return
    kind, target = lock_target(config)
    ident = (kind, target, project)
    depth: dict[tuple[str, str, str], int] = _held.__dict__.setdefault("depth", {})
    if depth.get(ident):
        depth[ident] += 1
        try:
            yield
        finally:
            depth[ident] -= 1
        return
    wait = _timeout(timeout)
    manager: contextlib.AbstractContextManager[None]
    if kind == "postgresql":
        manager = _pg_lock(target, project, wait)
    elif kind == "file":
        manager = _file_lock(target, project, wait)
    else:
        log.warning("no registry lock for %s: writers are not serialized", target)
        manager = contextlib.nullcontext()
    started = time.monotonic()
    with manager:
        waited = time.monotonic() - started
        if waited > 1:
            log.info("waited %.1fs for the registry lock of %s", waited, project)
        depth[ident] = 1
        try:
            yield
        finally:
            depth.pop(ident, None)
