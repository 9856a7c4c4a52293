"""The platform's feature server as a real process (``-m feature_platform.server``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.faults import free_port, stop_process

STARTUP_TIMEOUT_S = 120


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = STARTUP_TIMEOUT_S,
) -> None:
    """Return once ``url``/health answers 200; fail with the server's log tail
    when the process exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def platform_server(
    repo: Path, log: Path, *, profile: str = "services", env: dict[str, str]
) -> Iterator[str]:
    """Serve ``repo`` on ``profile`` at a free loopback port; yields its URL once
    ``/health`` answers 200, stops the process afterwards."""
    port = free_port()
    full_env = {
        **os.environ,
        "FEAST_USAGE": "False",
        "FP_SERVER_LOG_LEVEL": "warning",
        **env,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "feature_platform.server",
                "--profile", profile, "--repo", str(repo),
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            ],
            env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop_process(proc)
