"""Feast's own entry points carry the platform (services profile: PostgreSQL + Redis).

The platform lives in Feast's plugin points (online store, batch engine), so a
user who never calls a platform function still gets its behaviour:

* ``feast materialize`` (the plain CLI) writes byte-identical Redis hashes to the
  platform's ``materialize_window``, and waits for the project's registry lock;
* a value older than its view's ttl comes back null / ``OUTSIDE_MAX_AGE``
  through ``FeatureStore.get_online_features``, through ``feast serve`` and
  through Feast's remote online store client;
* a failed source validation writes nothing, through the platform's function
  and through ``feast materialize``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from feature_platform import feast_compat
from tests.conftest import ROOT, TEST_END, fresh_services_store
from tests.integration.faults import free_port, stop_process
from tests.integration.oidc import Issuer

pytestmark = pytest.mark.integration

FEAST = ROOT / "scripts" / "feast"
START = TEST_END - timedelta(days=10)
STALE_END = TEST_END - timedelta(days=1)  # every driver row > 6 h (its ttl) old


def _env(repo: Path, project: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "FEATURE_PLATFORM_REPO": str(repo),
        "FEATURE_PLATFORM_PROJECT": project,
        **extra,
    }


def _feast(repo: Path, project: str, *args: str, **extra: str) -> Any:
    return subprocess.run(
        [str(FEAST), "services", *args],
        env=_env(repo, project, **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _hashes(store: Any) -> dict[bytes, dict[bytes, bytes]]:
    client = feast_compat.store_redis_client(store)
    suffix = store.project.encode()
    return {
        key[: -len(suffix)]: client.hgetall(key)
        for key in client.scan_iter(match=b"*" + suffix, count=5000)
        if key.endswith(suffix)
    }


def _driver_ids(repo: Path, n: int = 5) -> list[int]:
    drivers = pd.read_parquet(repo / "data" / "driver_stats.parquet")
    return [int(d) for d in drivers["driver_id"].drop_duplicates().head(n)]


def test_feast_materialize_runs_the_platform_engine(
    services_store, local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.locks import registry_lock
    from feature_platform.materialize import materialize_window

    with fresh_services_store(local_repo, monkeypatch, tag="cli") as cli_store:
        # While another writer holds the project's lock, `feast materialize`
        # waits for it (and gives up after the lock timeout, writing nothing).
        with registry_lock(cli_store):
            held = _feast(
                local_repo,
                cli_store.project,
                "materialize",
                START.isoformat(),
                TEST_END.isoformat(),
                FEATURE_PLATFORM_LOCK_TIMEOUT="2",
            )
        assert held.returncode != 0
        assert "registry lock" in held.stderr + held.stdout, held.stderr[-2000:]
        assert _hashes(cli_store) == {}

        done = _feast(
            local_repo,
            cli_store.project,
            "materialize",
            START.isoformat(),
            TEST_END.isoformat(),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        ours = materialize_window(services_store, START, TEST_END)
        assert ours["rows_total"] > 500
        expected = _hashes(services_store)
        assert _hashes(cli_store) == expected
        # The engine recorded the interval (inside the lock) for every view.
        cli_store.refresh_registry()
        for view in cli_store.list_feature_views():
            assert view.most_recent_end_time is not None, view.name


def test_stale_values_are_withheld_on_every_read_path(
    services_store, local_repo: Path, oidc_issuer: Issuer
) -> None:
    """``feast serve`` runs the profile's oidc auth against the loopback issuer;
    the HTTP call and Feast's remote client send a logistics token."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from feature_platform.materialize import materialize_window

    materialize_window(services_store, START, STALE_END)
    ids = _driver_ids(local_repo)
    rows = [{"driver_id": d} for d in ids]
    refs = ["driver_stats:avg_rating", "driver_stats:total_trips"]

    # 1. The SDK, as a notebook calls it.
    response = services_store.get_online_features(features=refs, entity_rows=rows)
    values = response.to_dict()
    assert values["avg_rating"] == [None] * len(ids)
    assert values["total_trips"] == [None] * len(ids)
    statuses = {
        name: list(vector.statuses)
        for name, vector in zip(
            response.proto.metadata.feature_names.val,
            response.proto.results,
            strict=True,
        )
    }
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    assert statuses["avg_rating"] == [FieldStatus.OUTSIDE_MAX_AGE] * len(ids)

    # 2. `feast serve` (plain CLI) and 3. Feast's remote online store client.
    port = free_port()
    server = subprocess.Popen(
        [str(FEAST), "services", "serve", "--host", "127.0.0.1", "-p", str(port)],
        env=_env(local_repo, services_store.project, **oidc_issuer.env()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        token = oidc_issuer.token(["logistics"])
        caller = {"Authorization": f"Bearer {token}"}
        body = json.dumps({"features": refs, "entities": {"driver_id": ids}}).encode()
        reply = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(
                    f"{url}/get-online-features",
                    data=body,
                    headers={"Content-Type": "application/json", **caller},
                )
                with urllib.request.urlopen(request, timeout=10) as answer:
                    reply = json.loads(answer.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-3000:]  # type: ignore[union-attr]
                time.sleep(0.5)
        assert reply is not None, "feast serve did not answer"
        names = reply["metadata"]["feature_names"]
        result = dict(zip(names, reply["results"], strict=True))
        assert result["avg_rating"]["statuses"] == ["OUTSIDE_MAX_AGE"] * len(ids)
        assert result["avg_rating"]["values"] == [None] * len(ids)

        remote_config = RepoConfig(
            project=services_store.project,
            provider="local",
            registry=services_store.config.registry,
            online_store={"type": "remote", "path": url},
            entity_key_serialization_version=3,
            auth={"type": "oidc", "token": token},
        )
        remote = FeatureStore(config=remote_config)
        got = remote.get_online_features(features=refs, entity_rows=rows).to_dict()
        assert got["avg_rating"] == [None] * len(ids)
        assert got["total_trips"] == [None] * len(ids)
    finally:
        stop_process(server)

    # A fresh window: the same reads now return the values.
    materialize_window(services_store, STALE_END, TEST_END)
    fresh = services_store.get_online_features(features=refs, entity_rows=rows)
    assert all(v is not None for v in fresh.to_dict()["avg_rating"])


def _break_driver_source(repo: Path) -> None:
    path = repo / "data" / "driver_stats.parquet"
    frame = pd.read_parquet(path)
    recent = frame["event_timestamp"] >= pd.Timestamp(TEST_END - timedelta(days=2))
    frame.loc[recent, "acceptance_rate"] = 7.5  # outside [0, 1]
    frame.to_parquet(path, index=False)


def test_failed_validation_writes_nothing_on_every_path(
    services_store, local_repo: Path
) -> None:
    from feature_platform.errors import ValidationFailed
    from feature_platform.materialize import materialize_window

    _break_driver_source(local_repo)
    window = (TEST_END - timedelta(hours=4), TEST_END)

    with pytest.raises(ValidationFailed) as failed:
        materialize_window(services_store, *window)
    assert "acceptance_rate" in str(failed.value)
    assert _hashes(services_store) == {}

    out = _feast(
        local_repo,
        services_store.project,
        "materialize",
        window[0].isoformat(),
        window[1].isoformat(),
    )
    assert out.returncode != 0
    assert "acceptance_rate" in out.stderr + out.stdout, out.stderr[-2000:]
    assert _hashes(services_store) == {}
    services_store.refresh_registry()
    for view in services_store.list_feature_views():
        assert view.most_recent_end_time is None, view.name

    # The explicit, logged opt-out writes.
    written = materialize_window(services_store, *window, validate=False)
    assert written["rows_total"] > 0
    assert _hashes(services_store) != {}
