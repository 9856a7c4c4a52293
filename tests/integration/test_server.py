"""The HTTP feature server as a real process on the services profile.

One server per module (``python -m feature_platform.server`` on a free 127.0.0.1
port, PostgreSQL registry + Redis), reads compared with the brute-force
reference, pushes read back, every bad request answered with a 4xx, and a
bounded burst of bad requests that does not disturb correct ones.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import PROJECT, TEST_END, make_repo
from tests.error_bodies import error_body
from tests.integration.faults import stop_process
from tests.integration.served import wait_healthy
from tests.reference import latest_offline_values

pytestmark = pytest.mark.integration

MAX_ROWS = 50  # the server's batch limit in these tests
REQUEST_TIMEOUT_S = 15
BODY_TIMEOUT_S = 2  # the server's FP_SERVER_BODY_TIMEOUT_S in these tests


@dataclass
class Server:
    url: str
    store: Any
    repo: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(
            self.url + path, json=body, timeout=REQUEST_TIMEOUT_S, **kwargs
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(
    services_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_incremental
    from feature_platform.profiles import get_store

    project = f"{PROJECT}_srv_{uuid.uuid4().hex[:4]}"
    repo = make_repo(tmp_path_factory.mktemp("server_repo"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATURE_PLATFORM_PROJECT", project)
        store = get_store("services", repo=repo)
        apply_definitions(store)
        materialize_incremental(store, TEST_END)
        port = _free_port()
        log = tmp_path_factory.mktemp("server_log") / "server.log"
        env = {
            **os.environ,
            "FEAST_USAGE": "False",
            "FP_SERVER_LOG_LEVEL": "warning",
            "FP_SERVER_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            # Request handling is this module's subject; authentication and
            # RBAC are test_auth_oidc's (the profile's oidc, switched off here).
            "FP_AUTH": "no_auth",
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "feature_platform.server",
                    "--profile", "services", "--repo", str(repo),
                    "--host", "127.0.0.1", "--port", str(port),
                    "--max-entity-rows", str(MAX_ROWS), "--no-access-log",
                ],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc, log)
            yield Server(url=url, store=store, repo=repo, proc=proc, log=log)
        finally:
            stop_process(proc)
            store.teardown()


def _columns(response: httpx.Response) -> dict[str, list[Any]]:
    """Feast's response ({metadata.feature_names, results[].values}) as columns."""
    body = response.json()
    names = body["metadata"]["feature_names"]
    return {name: r["values"] for name, r in zip(names, body["results"], strict=True)}


def _expected(server: Server, table: str, key: str, ttl: pd.Timedelta) -> pd.DataFrame:
    """What the online store holds (latest row per entity materialized up to
    TEST_END), restricted to values that stay within ttl for the next 15
    minutes: the server nulls values past their ttl at read time."""
    source = pd.read_parquet(server.repo / "data" / f"{table}.parquet")
    latest = latest_offline_values(source, key, TEST_END, ttl=ttl)
    fresh_until = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=15) - ttl
    return latest[latest["event_timestamp"] > fresh_until].set_index(key)


def test_read_with_feature_service_matches_reference(server: Server) -> None:
    customers = _expected(server, "customer_stats", "customer_id", pd.Timedelta(days=3))
    sample = customers.sample(20, random_state=3)
    ids = [int(c) for c in sample.index]
    response = server.post(
        "/get-online-features",
        {
            "feature_service": "churn_prediction_service",
            "entities": {"customer_id": ids},
        },
    )
    assert response.status_code == 200, response.text
    got = _columns(response)
    assert got["customer_id"] == ids
    assert got["total_orders"] == [int(v) for v in sample["total_orders"]]
    assert got["lifetime_value"] == pytest.approx(list(sample["lifetime_value"]))


def test_read_with_feature_list_matches_reference(server: Server) -> None:
    drivers = _expected(server, "driver_stats", "driver_id", pd.Timedelta(hours=6))
    ids = [int(d) for d in drivers.index[:10]] + [999_999]  # the last is unknown
    response = server.post(
        "/get-online-features",
        {
            "features": ["driver_stats:total_trips", "driver_stats:acceptance_rate"],
            "entities": {"driver_id": ids},
        },
    )
    assert response.status_code == 200, response.text
    got = _columns(response)
    assert got["total_trips"][:-1] == [int(v) for v in drivers["total_trips"][:10]]
    assert got["acceptance_rate"][:-1] == pytest.approx(
        list(drivers["acceptance_rate"][:10])
    )
    assert got["total_trips"][-1] is None


def test_a_form_encoded_body_is_read_as_json(server: Server) -> None:
    """``curl -d '{...}'`` without a JSON content type still works."""
    drivers = _expected(server, "driver_stats", "driver_id", pd.Timedelta(hours=6))
    driver = int(drivers.index[0])
    body = {
        "features": ["driver_stats:total_trips"],
        "entities": {"driver_id": [driver]},
    }
    response = httpx.post(
        server.url + "/get-online-features",
        content=json.dumps(body),
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    assert _columns(response)["total_trips"] == [
        int(drivers.loc[driver, "total_trips"])
    ]


def test_pushed_values_are_visible_to_the_next_read(server: Server) -> None:
    from feast import FileSource, PushSource

    from feature_platform.online import read_online

    view = server.store.get_feature_view("driver_stats")
    # Materialization and PIT joins keep reading the batch source.
    assert isinstance(view.stream_source, PushSource)
    assert isinstance(view.batch_source, FileSource)
    assert view.batch_source.path.endswith("driver_stats.parquet")

    drivers = _expected(server, "driver_stats", "driver_id", pd.Timedelta(hours=6))
    ids = [int(d) for d in drivers.index[20:23]]
    now = datetime.now(UTC).isoformat()
    pushed = {
        "driver_id": ids,
        "event_timestamp": [now] * 3,
        "avg_rating": [1.25, 2.5, 3.75],
        "total_trips": [7, 8, 9],
        "acceptance_rate": [0.11, 0.22, 0.33],
        "avg_delivery_time_min": [11.5, 12.5, 13.5],
    }
    push = server.post("/push", {"push_source_name": "driver_stats_push", "df": pushed})
    assert push.status_code == 200, push.text

    response = server.post(
        "/get-online-features",
        {
            "features": ["driver_stats:avg_rating", "driver_stats:total_trips"],
            "entities": {"driver_id": ids},
        },
    )
    assert response.status_code == 200, response.text
    got = _columns(response)
    assert got["avg_rating"] == pushed["avg_rating"]
    assert got["total_trips"] == pushed["total_trips"]
    # The SDK path reads the same online store.
    sdk = read_online(
        server.store,
        [{"driver_id": d} for d in ids],
        features=["driver_stats:total_trips"],
    )
    assert sdk["total_trips"] == pushed["total_trips"]
    # Drivers that were not pushed keep their materialized values.
    other = int(drivers.index[24])
    response = server.post(
        "/get-online-features",
        {"features": ["driver_stats:total_trips"], "entities": {"driver_id": [other]}},
    )
    assert _columns(response)["total_trips"] == [int(drivers.loc[other, "total_trips"])]

    # A materialization run over the same window (older batch rows) does not
    # overwrite the newer pushed values.
    from feature_platform.materialize import materialize_window

    materialize_window(
        server.store, TEST_END - pd.Timedelta(hours=6), TEST_END, views=["driver_stats"]
    )
    response = server.post(
        "/get-online-features",
        {"features": ["driver_stats:total_trips"], "entities": {"driver_id": ids}},
    )
    assert _columns(response)["total_trips"] == pushed["total_trips"]


def test_values_past_their_ttl_are_null(server: Server) -> None:
    """feast#6821: Feast's online read returns values older than the view's
    ttl as present; the server nulls them (status OUTSIDE_MAX_AGE)."""
    now = pd.Timestamp.now(tz="UTC")
    stale, fresh = now - pd.Timedelta(hours=7), now  # driver_stats ttl is 6 h
    df = {
        "driver_id": [990_001, 990_002],
        "event_timestamp": [stale.isoformat(), fresh.isoformat()],
        "avg_rating": [1.5, 2.5],
        "total_trips": [1, 2],
        "acceptance_rate": [0.1, 0.2],
        "avg_delivery_time_min": [10.0, 20.0],
    }
    push = server.post("/push", {"push_source_name": "driver_stats_push", "df": df})
    assert push.status_code == 200, push.text
    response = server.post(
        "/get-online-features",
        {
            "features": ["driver_stats:avg_rating"],
            "entities": {"driver_id": [990_001, 990_002]},
        },
    )
    assert response.status_code == 200, response.text
    column = response.json()["results"][1]
    assert column["values"] == [None, 2.5]
    assert column["statuses"] == ["OUTSIDE_MAX_AGE", "PRESENT"]


def test_push_online_and_offline_reaches_the_batch_source(server: Server) -> None:
    """``"to": "online_and_offline"`` also appends to the batch source, so what
    an offline-vs-online comparison expects (the latest offline row) is the
    pushed value too."""
    drivers = _expected(server, "driver_stats", "driver_id", pd.Timedelta(hours=6))
    driver = int(drivers.index[26])
    now = datetime.now(UTC).isoformat()
    pushed = {
        "driver_id": [driver],
        "event_timestamp": [now],
        "avg_rating": [2.75],
        "total_trips": [4321],
        "acceptance_rate": [0.42],
        "avg_delivery_time_min": [33.5],
    }
    body = {"push_source_name": "driver_stats_push", "df": pushed}
    response = server.post("/push", {**body, "to": "online_and_offline"})
    assert response.status_code == 200, response.text

    source = pd.read_parquet(server.repo / "data" / "driver_stats.parquet")
    latest = latest_offline_values(
        source, "driver_id", pd.Timestamp.now(tz="UTC"), ttl=pd.Timedelta(hours=6)
    ).set_index("driver_id")
    assert latest.loc[driver, "total_trips"] == 4321
    online = _columns(
        server.post(
            "/get-online-features",
            {
                "features": ["driver_stats:total_trips"],
                "entities": {"driver_id": [driver]},
            },
        )
    )
    assert online["total_trips"] == [4321]

    # The platform's skew check (offline latest vs online) expects the pushed row.
    from feature_platform.skew import check_online_skew

    pushed_at = pd.Timestamp(now).to_pydatetime()
    report = check_online_skew(
        server.store,
        start=pushed_at - timedelta(seconds=1),
        end=datetime.now(UTC),
        views=["driver_stats"],
    )
    view = report["views"]["driver_stats"]
    assert view["sampled"] == 1 and view["mismatches"] == 0, view


# ------------------------------------------------------------------ bad requests

READ = "/get-online-features"
DRIVER_READ = {
    "features": ["driver_stats:avg_rating"],
    "entities": {"driver_id": [5000]},
}
NOW = "2026-01-01T00:00:00Z"
PUSH_DF = {
    "driver_id": [5000],
    "event_timestamp": [NOW],
    "avg_rating": [4.0],
    "total_trips": [1],
    "acceptance_rate": [0.5],
    "avg_delivery_time_min": [20.0],
}


def _push(**df_changes: Any) -> dict[str, Any]:
    df = {**PUSH_DF, **df_changes}
    return {
        "push_source_name": "driver_stats_push",
        "df": {k: v for k, v in df.items() if v is not None},
    }


# (id, path, body: dict -> JSON, bytes -> raw, status, error code, text in detail)
BAD_REQUESTS: list[tuple[str, str, Any, int, str, str]] = [
    ("unknown-feature-service", READ,
     {"feature_service": "nope", "entities": {"driver_id": [1]}},
     404, "unknown_feature_service", "'nope'"),
    ("unknown-feature", READ,
     {"features": ["driver_stats:nope"], "entities": {"driver_id": [1]}},
     404, "unknown_feature", "['nope'] in feature view 'driver_stats'"),
    ("unknown-feature-view", READ,
     {"features": ["nope:avg_rating"], "entities": {"driver_id": [1]}},
     404, "unknown_feature_view", "'nope'"),
    ("feature-ref-without-view", READ,
     {"features": ["avg_rating"], "entities": {"driver_id": [1]}},
     400, "invalid_feature_reference", "'<feature_view>:<feature>'"),
    ("no-features", READ, {"entities": {"driver_id": [1]}},
     400, "invalid_request", "feature_service"),
    ("service-and-features", READ,
     {"feature_service": "driver_matching_service", **DRIVER_READ},
     400, "invalid_request", "not both"),
    ("missing-entity-key", READ,
     {"features": ["driver_stats:avg_rating"], "entities": {"customer_id": [1]}},
     400, "missing_entity_key", "['driver_id']"),
    ("missing-key-of-service", READ,
     {"feature_service": "driver_matching_service", "entities": {"driver_id": [1]}},
     400, "missing_entity_key", "['customer_id']"),
    ("extra-entity-key", READ,
     {"features": ["driver_stats:avg_rating"],
      "entities": {"driver_id": [1], "customer_id": [2]}},
     400, "unexpected_entity_key", "['customer_id']"),
    ("empty-entities", READ, {"features": ["driver_stats:avg_rating"], "entities": {}},
     400, "invalid_request", "entities"),
    ("no-entities", READ, {"features": ["driver_stats:avg_rating"]},
     400, "invalid_request", "entities is required"),
    ("key-as-string", READ,
     {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": ["5000"]}},
     400, "invalid_value", "entities.driver_id[0] must be an integer"),
    ("key-as-float", READ,
     {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": [5000.5]}},
     400, "invalid_value", "must be an integer, got 5000.5"),
    ("key-out-of-range", READ,
     {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": [2**70]}},
     400, "invalid_value", "out of range for a 64-bit integer"),
    ("key-null", READ,
     {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": [None]}},
     400, "invalid_value", "is null"),
    ("key-not-a-list", READ,
     {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": 5000}},
     400, "invalid_request", "must be a list"),
    ("ragged-entities", READ,
     {"feature_service": "driver_matching_service",
      "entities": {"driver_id": [1, 2], "customer_id": [3]}},
     400, "ragged_columns", "different lengths"),
    ("unknown-field", READ, {**DRIVER_READ, "feature_services": "x"},
     400, "invalid_request", "feature_services"),
    ("batch-over-limit", READ,
     {"features": ["driver_stats:avg_rating"],
      "entities": {"driver_id": list(range(MAX_ROWS + 1))}},
     413, "batch_too_large", f"limit is {MAX_ROWS}"),
    ("body-over-limit", READ, b"{" + b" " * (2 << 20) + b"}",
     413, "body_too_large", "larger than"),
    ("empty-body", READ, b"", 400, "empty_body", "empty"),
    ("malformed-json", READ, b'{"entities": {"driver_id": [1]', 400, "invalid_json",
     "not valid JSON"),
    ("json-array", READ, b"[1, 2]", 400, "invalid_request", "JSON object"),
    ("json-null", READ, b"null", 400, "invalid_request", "JSON object"),
    ("not-utf8", READ, b"\xff\xfe{", 400, "invalid_json", "not valid JSON"),
    ("push-unknown-source", "/push", {"push_source_name": "nope", "df": PUSH_DF},
     404, "unknown_push_source", "driver_stats_push"),
    ("push-missing-column", "/push", _push(avg_rating=None),
     400, "missing_column", "['avg_rating']"),
    ("push-extra-column", "/push", _push(speed=[1]),
     400, "unexpected_column", "['speed']"),
    ("push-key-as-string", "/push", _push(driver_id=["x"]),
     400, "invalid_value", "df.driver_id[0] must be an integer"),
    ("push-value-wrong-type", "/push", _push(avg_rating=["high"]),
     400, "invalid_value", "df.avg_rating[0] must be a number"),
    ("push-bad-timestamp", "/push", _push(event_timestamp=["yesterday"]),
     400, "invalid_timestamp", "not an ISO-8601"),
    ("push-naive-timestamp", "/push", _push(event_timestamp=["2026-01-01T00:00:00"]),
     400, "invalid_timestamp", "no timezone"),
    ("push-ragged", "/push", _push(driver_id=[5000, 5001]),
     400, "ragged_columns", "different lengths"),
    ("push-bad-mode", "/push", {**_push(), "to": "redis"},
     400, "invalid_request", "to must be one of"),
    ("push-over-limit", "/push",
     _push(**{k: v * (MAX_ROWS + 1) for k, v in PUSH_DF.items()}),
     413, "batch_too_large", f"limit is {MAX_ROWS}"),
    ("push-malformed-json", "/push", b"{", 400, "invalid_json", "not valid JSON"),
]  # fmt: skip


def _send(server: Server, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(
            server.url + path,
            content=body,
            headers={"content-type": "application/json"},
            timeout=REQUEST_TIMEOUT_S,
        )
    return server.post(path, body)


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_request_gets_a_clear_4xx(
    server: Server, path: str, body: Any, status: int, code: str, text: str
) -> None:
    from feature_platform.serving.errors import FEAST_ERROR_CLASSES

    response = _send(server, path, body)
    assert response.status_code == status, response.text
    error = error_body(response)  # Feast's error detail: Feast's clients raise it
    assert error["error"] == code
    assert text in error["detail"], error["detail"]
    assert error["class"] == FEAST_ERROR_CLASSES.get(code, "FeastError")


def test_feasts_remote_client_reads_the_servers_4xx(server: Server) -> None:
    """Feast's own remote online store client (``online_store: type: remote``)
    raises the Feast error the server's body names, with its message (not a
    bare RuntimeError with a log line about an invalid error detail)."""
    from feast import FeatureStore
    from feast.errors import FeastError
    from feast.repo_config import RepoConfig

    remote = FeatureStore(
        config=RepoConfig(
            project=server.store.project,
            provider="local",
            registry=server.store.config.registry,
            online_store={"type": "remote", "path": server.url},
            entity_key_serialization_version=3,
            auth={"type": "no_auth"},
        )
    )
    refs = ["driver_stats:avg_rating"]
    rows = [{"driver_id": d} for d in range(5000, 5000 + MAX_ROWS + 1)]
    with pytest.raises(FeastError, match=f"the limit is {MAX_ROWS} per request"):
        remote.get_online_features(features=refs, entity_rows=rows)
    got = remote.get_online_features(features=refs, entity_rows=rows[:2]).to_dict()
    assert got["driver_id"] == [5000, 5001]


def test_bad_push_writes_nothing(server: Server) -> None:
    """A rejected push (one bad row of two) leaves the online store as it was."""
    drivers = _expected(server, "driver_stats", "driver_id", pd.Timedelta(hours=6))
    ids = [int(d) for d in drivers.index[30:32]]
    read = {"features": ["driver_stats:total_trips"], "entities": {"driver_id": ids}}
    before = _columns(server.post(READ, read))["total_trips"]
    body = _push(
        driver_id=ids,
        event_timestamp=[NOW, "not a time"],
        avg_rating=[1.0, 1.0],
        total_trips=[1, 1],
        acceptance_rate=[0.1, 0.1],
        avg_delivery_time_min=[1.0, 1.0],
    )
    assert server.post("/push", body).status_code == 400
    assert _columns(server.post(READ, read))["total_trips"] == before


def test_server_keeps_serving_through_a_burst_of_bad_requests(server: Server) -> None:
    """200 bad requests from 8 threads, interleaved with good reads: every bad
    one gets its 4xx, every good one its correct values, none a 5xx or a hang."""
    drivers = _expected(server, "driver_stats", "driver_id", pd.Timedelta(hours=6))
    ids = [int(d) for d in drivers.index[40:45]]
    good = {"features": ["driver_stats:total_trips"], "entities": {"driver_id": ids}}
    expected = [int(v) for v in drivers["total_trips"][40:45]]
    cheap = [c for c in BAD_REQUESTS if c[0] != "body-over-limit"]
    jobs: list[tuple[str, Any, int | None]] = []
    for i in range(200):
        _, path, body, status, _code, _text = cheap[i % len(cheap)]
        jobs.append((path, body, status))
        if i % 6 == 0:
            jobs.append((READ, good, None))

    def run(job: tuple[str, Any, int | None]) -> tuple[int | None, int, Any]:
        path, body, status = job
        response = _send(server, path, body)
        return status, response.status_code, response

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.monotonic() - started
    server_errors = [r.text for _, got, r in results if got >= 500]
    assert not server_errors, server_errors[:3]
    wrong = [
        (want, got) for want, got, _ in results if want is not None and got != want
    ]
    assert not wrong, wrong[:5]
    good_responses = [r for want, _, r in results if want is None]
    assert len(good_responses) == 34
    for response in good_responses:
        assert response.status_code == 200
        assert _columns(response)["total_trips"] == expected
    # Still healthy and correct afterwards.
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    assert _columns(server.post(READ, good))["total_trips"] == expected
    print(f"burst: {len(jobs)} requests in {elapsed:.2f}s")


def test_unreachable_online_store_is_a_503(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same registry with Redis pointed at a closed port: a clear 503, not a
    500 (in-process app, so no second server start)."""
    from fastapi.testclient import TestClient

    from feature_platform.profiles import get_store
    from feature_platform.server import build_app

    monkeypatch.setenv("FP_REDIS_PORT", str(_free_port()))  # nothing listens
    monkeypatch.setenv("FP_AUTH", "no_auth")  # as the module's server
    store = get_store("services", repo=server.repo)
    with TestClient(build_app(store), raise_server_exceptions=False) as client:
        response = client.post(
            READ,
            json={
                "features": ["driver_stats:avg_rating"],
                "entities": {"driver_id": [1]},
            },
        )
    assert response.status_code == 503, response.text
    error = error_body(response)
    assert error["error"] == "unavailable"
    assert "online store unavailable" in error["detail"]


def _read_http_response(sock: socket.socket) -> str:
    """Read one whole HTTP/1.1 response (headers and the Content-Length body):
    a single recv() may return the headers alone."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode()
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_a_stalled_body_gets_a_408_and_others_are_served(server: Server) -> None:
    """A client that announces 100 bytes and sends 10 is cut off after the body
    timeout (2 s here) with a 408; a good read meanwhile is answered at once."""
    with socket.create_connection(
        ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    ) as s:
        s.sendall(
            b"POST /get-online-features HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"entities'
        )
        started = time.monotonic()
        good = server.post(READ, DRIVER_READ)
        assert good.status_code == 200
        assert time.monotonic() - started < BODY_TIMEOUT_S
        s.settimeout(30)
        reply = _read_http_response(s)
        waited = time.monotonic() - started
    assert reply.startswith("HTTP/1.1 408"), reply[:200]
    assert "body_timeout" in reply
    assert BODY_TIMEOUT_S - 0.5 < waited < BODY_TIMEOUT_S + 10
