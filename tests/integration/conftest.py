"""Fixtures of the integration tests: a local OIDC issuer and a server behind it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, TEST_END, make_repo
from tests.integration.oidc import Issuer, running_issuer
from tests.integration.served import platform_server


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[Issuer]:
    """A loopback OIDC provider (discovery + JWKS) that mints test tokens."""
    with running_issuer() as issuer:
        yield issuer


@dataclass
class AuthedServer:
    url: str
    store: Any
    repo: Path
    issuer: Issuer
    log: Path


@pytest.fixture(scope="module")
def authed_server(
    services_env: dict[str, str],
    oidc_issuer: Issuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AuthedServer]:
    """The feature server on the services profile as shipped (auth: oidc against
    ``oidc_issuer``; permissions from feature_repo/permissions.py), with the admin
    endpoints opened (FP_SERVER_ADMIN_ENDPOINTS=1: admin role only); definitions
    applied and materialized on its own project."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_incremental
    from feature_platform.profiles import get_store

    repo = make_repo(tmp_path_factory.mktemp("authed_repo"))
    project = f"{PROJECT}_auth_{uuid.uuid4().hex[:4]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATURE_PLATFORM_PROJECT", project)
        for key, value in oidc_issuer.env().items():
            mp.setenv(key, value)
        store = get_store("services", repo=repo)
        assert store.config.auth_config.type == "oidc"
        apply_definitions(store)
        materialize_incremental(store, TEST_END)
        log = tmp_path_factory.mktemp("authed_log") / "server.log"
        try:
            with platform_server(
                repo, log, env={"FP_SERVER_ADMIN_ENDPOINTS": "1"}
            ) as url:
                yield AuthedServer(url, store, repo, oidc_issuer, log)
        finally:
            store.teardown()
