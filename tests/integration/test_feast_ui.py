"""Feast's bundled UI (`make ui`: ``scripts/feast <profile> ui``) on a profile's
SQL registry, opened in headless Chromium (Debian ``chromium``, installed by
``make test`` through ``scripts/ensure-chromium``).

It runs on the local profile (SQL registry on SQLite, a private repo copy): the
services profile authenticates with OIDC, and the UI then sends the browser to
the identity provider's login page, which a headless test cannot pass; the plain
``feast`` CLI reads the profile's yaml as is, so ``FP_AUTH=no_auth`` does not
reach it.

The rendered pages must list the project's feature views and feature services
(rows of the UI's tables, linking to their detail pages). The screenshot of the
feature view page is kept under ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "test-artifacts"
START_TIMEOUT = 180  # feast ui imports Feast + the REST registry API (slow, shared CPU)
BROWSER_TIMEOUT = 120  # one headless page load, rendering included
VIEWS = ("customer_stats", "driver_stats", "checkout_value")  # + on-demand
SERVICES = (
    "churn_prediction_service",
    "churn_prediction_service_v2",
    "driver_matching_service",
)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = (
            "chromium is not installed: `make test` installs it "
            "(scripts/ensure-chromium: apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing browser is a failure)")
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class UI:
    url: str
    project: str
    log: Path


@pytest.fixture
def feast_ui(
    local_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UI]:
    """``scripts/feast local ui`` (what `make ui` runs) on a private repo with the
    definitions applied; stopped afterwards."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    # The local yaml names its project literally (the plain feast CLI needs no
    # environment): apply under that name, in this test's own registry file.
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", "feature_platform")
    store = get_store("local", repo=local_repo)
    apply_definitions(store)
    port = _free_port()
    env = {**os.environ, "FEATURE_PLATFORM_REPO": str(local_repo)}
    log = tmp_path / "feast-ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "feast"), "local", "ui"]
            + ["--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"feast ui exited {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    log_text = log.read_text()
                    pytest.fail(f"feast ui not up in {START_TIMEOUT} s:\n{log_text}")
                time.sleep(1)
        yield UI(url=url, project=store.project, log=log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def _browse(url: str, profile_dir: Path, *extra: str) -> str:
    """One headless Chromium page load (its stdout); the virtual time budget lets
    the UI's scripts fetch the registry and render before the DOM is dumped.
    Chromium's helper processes share its process group, stopped on a timeout."""
    argv = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile_dir}",
        "--window-size=1400,900",
        "--virtual-time-budget=20000",
        *extra,
        url,
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish {url} in {BROWSER_TIMEOUT} s")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err[-2000:]}"
    return out


def test_feast_ui_lists_views_and_services(feast_ui: UI, tmp_path: Path) -> None:
    _chromium()
    # The UI server reads the profile's registry: this repo's project is there.
    with urllib.request.urlopen(f"{feast_ui.url}/projects-list.json", timeout=10) as r:
        projects = r.read().decode()
    assert f'"id":"{feast_ui.project}"' in projects

    base = f"{feast_ui.url}/p/{feast_ui.project}"
    views_dom = _browse(f"{base}/feature-view", tmp_path / "c1", "--dump-dom")
    services_dom = _browse(f"{base}/feature-service", tmp_path / "c2", "--dump-dom")
    for name in VIEWS:
        assert f'data-test-subj="row-{name}"' in views_dom, views_dom[-2000:]
        assert f'href="/p/{feast_ui.project}/feature-view/{name}"' in views_dom
    for name in SERVICES:
        assert f'data-test-subj="row-{name}"' in services_dom, services_dom[-2000:]
        assert f'href="/p/{feast_ui.project}/feature-service/{name}"' in services_dom

    # The on-demand view's page: its inputs (the stored view, the request
    # source and its field with the field's description and unit tag), outputs,
    # the transformation's source and the service consuming it.
    odfv_dom = _browse(
        f"{base}/feature-view/checkout_value", tmp_path / "c4", "--dump-dom"
    )
    for text in (
        "customer_stats",
        "checkout_request",
        "cart_value",
        "Value of the cart at checkout, EUR",
        '"tags":{"unit":"EUR"}',
        "cart_share_of_lifetime",
        "lifetimes",  # a name only the function body uses (highlighted code)
    ):
        assert text in odfv_dom, (text, odfv_dom[-3000:])
    service = "churn_prediction_service_v2"  # consuming it, linked
    assert f'href="/p/{feast_ui.project}/feature-service/{service}"' in odfv_dom
    # Its tags: the project page groups the feature views by tag, the on-demand
    # view among them: version v1 is driver_stats and checkout_value (the
    # services carry no v1 tag), team growth customer_stats and checkout_value.
    # Feast 0.67 shows no more of an on-demand view's metadata: its page has no
    # owner, description or tags panel (a stored view's has) and the list's tag
    # filter skips it. The registry holds them
    # (tests/unit/test_transformations.py); `feature-platform catalog` shows them.
    home = _browse(base, tmp_path / "c5", "--dump-dom")
    for badge in ("v1 (2)", "v2 (1)", "growth (2)", "logistics (1)"):
        assert f'title="{badge}"' in home, (badge, home[-3000:])

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "feast-ui-feature-views.png"
    shot.unlink(missing_ok=True)
    _browse(f"{base}/feature-view", tmp_path / "c3", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
