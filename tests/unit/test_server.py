"""feature_platform.server in-process on the embedded profile (no services).

The HTTP integration test (tests/integration/test_server.py) runs the real
process on PostgreSQL + Redis; these check the pieces: the registry catalog, the
guard's body handling, option validation, and a read/push round trip through
Feast's app with the guard in front.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feature_platform.server import add_serve_arguments, serve
from feature_platform.serving.errors import FEAST_ERROR_CLASSES, RequestError
from feature_platform.serving.requests import check_push, check_read
from feature_platform.serving.snapshot import RegistrySnapshot
from tests.conftest import make_repo
from tests.error_bodies import error_body


@pytest.fixture(scope="module")
def catalog(applied_local_store) -> RegistrySnapshot:
    return RegistrySnapshot.from_store(applied_local_store)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Feast's app + guard on a repo of its own (the test pushes into it)."""
    from fastapi.testclient import TestClient

    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store
    from feature_platform.server import build_app

    repo = make_repo(tmp_path_factory.mktemp("server"))
    store = get_store("local", repo=repo)
    apply_definitions(store)
    app = build_app(store, max_entity_rows=3, max_body_bytes=2048)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.repo = repo  # type: ignore[attr-defined]
        yield c


def test_catalog_reflects_the_definitions(catalog: RegistrySnapshot) -> None:
    assert set(catalog.services) == {
        "churn_prediction_service",
        "churn_prediction_service_v2",
        "driver_matching_service",
    }
    driver = catalog.views["driver_stats"]
    assert driver.keys == {"driver_id": "int64"}
    assert driver.ttl == timedelta(hours=6)
    assert catalog.views["customer_stats"].ttl == timedelta(days=3)
    assert driver.features == {
        "avg_rating": "float",
        "total_trips": "int64",
        "acceptance_rate": "float",
        "avg_delivery_time_min": "float",
    }
    push = catalog.push_sources["driver_stats_push"]
    assert push.views == ("driver_stats",)
    assert push.timestamp_field == "event_timestamp"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"feature_service": "driver_matching_service",
          "entities": {"driver_id": [1], "customer_id": [2]}}, None),
        ({"features": ["customer_stats:total_orders"],
          "entities": {"customer_id": [1, 2, 3]}}, None),
        ({"features": ["customer_stats:total_orders"],
          "entities": {"customer_id": [1, 2, 3, 4]}}, "batch_too_large"),
        ({"features": ["customer_stats:total_orders"],
          "entities": {"customer_id": [True]}}, "invalid_value"),
        ({"features": ["customer_stats:total_orders"],
          "entities": {"customer_id": [2**63]}}, "invalid_value"),
        ({"features": ["customer_stats:total_orders"],
          "entities": {"customer_id": [-(2**63)]}}, None),
        ({"features": ["customer_stats:total_orders", "driver_stats:avg_rating"],
          "entities": {"customer_id": [1]}}, "missing_entity_key"),
        ({"features": ["customer_stats:a:b"], "entities": {"customer_id": [1]}},
         "invalid_feature_reference"),
        ({"features": "customer_stats:total_orders", "entities": {"customer_id": [1]}},
         "invalid_request"),
        ({"features": ["customer_stats:total_orders"], "entities": {"customer_id": [1]},
          "full_feature_names": "yes"}, "invalid_request"),
    ],
)  # fmt: skip
def test_check_read(
    catalog: RegistrySnapshot, payload: dict[str, Any], code: str | None
) -> None:
    if code is None:
        check_read(payload, lambda fresh: catalog, 3)
        return
    with pytest.raises(RequestError) as info:
        check_read(payload, lambda fresh: catalog, 3)
    assert info.value.code == code
    assert 400 <= info.value.status < 500


def _push_df(**changes: Any) -> dict[str, Any]:
    df = {
        "driver_id": [5000],
        "event_timestamp": ["2026-01-01T00:00:00+00:00"],
        "avg_rating": [None],  # features may be null
        "total_trips": [3],
        "acceptance_rate": [1],  # an int is a valid Float64
        "avg_delivery_time_min": [2.5],
    }
    df.update(changes)
    return {"push_source_name": "driver_stats_push", "df": df}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_push_df(), None),
        ({**_push_df(), "to": "online_and_offline"}, None),
        (_push_df(total_trips=[3.5]), "invalid_value"),
        (_push_df(total_trips=[2**64]), "invalid_value"),
        (_push_df(driver_id=[2**70]), "invalid_value"),
        (_push_df(acceptance_rate=[2**70]), "invalid_value"),
        (_push_df(acceptance_rate=[1.2e21]), None),
        (_push_df(driver_id=[None]), "invalid_value"),
        (_push_df(event_timestamp=[1767225600]), "invalid_timestamp"),
        (_push_df(event_timestamp=["2026-01-01 00:00"]), "invalid_timestamp"),
        ({"df": _push_df()["df"]}, "invalid_request"),
        ({"push_source_name": "driver_stats_push"}, "invalid_request"),
    ],
)
def test_check_push(
    catalog: RegistrySnapshot, payload: dict[str, Any], code: str | None
) -> None:
    if code is None:
        check_push(payload, lambda fresh: catalog, 3)
        return
    with pytest.raises(RequestError) as info:
        check_push(payload, lambda fresh: catalog, 3)
    assert info.value.code == code


def test_read_and_push_round_trip_in_process(client: Any) -> None:
    now = datetime.now(UTC).isoformat()
    body = _push_df(driver_id=[7001], event_timestamp=[now], avg_rating=[3.5])
    assert client.post("/push", json=body).status_code == 200
    response = client.post(
        "/get-online-features",
        json={
            "features": ["driver_stats:avg_rating"],
            "entities": {"driver_id": [7001]},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][1]["values"] == [3.5]


def test_chunked_body_over_the_limit_is_413(client: Any) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: streamed
        for _ in range(10):
            yield b" " * 512

    response = client.post(
        "/get-online-features",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert error_body(response)["error"] == "body_too_large"


@pytest.mark.parametrize(
    ("status", "code", "feast_class"),
    [
        (400, "invalid_value", "FeastError"),
        (413, "batch_too_large", "FeastError"),
        (401, "unauthenticated", "FeastPermissionError"),
        (403, "forbidden", "FeastPermissionError"),
        *[(404, code, name) for code, name in FEAST_ERROR_CLASSES.items()],
    ],
)
def test_error_bodies_are_feasts_error_detail(
    status: int, code: str, feast_class: str
) -> None:
    """Feast's REST clients (``FeastError.from_error_detail``) raise the Feast
    error each body names, with the platform's message."""
    from feast import errors

    body = RequestError(status, code, "what was wrong").body()
    raised = errors.FeastError.from_error_detail(body)
    assert type(raised) is getattr(errors, feast_class)
    assert isinstance(raised, errors.FeastError)
    assert str(raised) == "what was wrong"
    assert json.loads(body)["error"] == code


def test_other_requests_pass_through_to_feasts_routes(client: Any) -> None:
    """What the guard does not answer reaches Feast's own app and routes (not
    /health, which the platform replaces): Feast's OpenAPI document, Feast's
    router (405 for a method its route does not take) and Feast's endpoint
    (a read with full feature names, which only Feast's path serves)."""
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert {"/get-online-features", "/push"} <= set(schema.json()["paths"])
    wrong_method = client.get("/get-online-features")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    read = client.post(
        "/get-online-features",
        json={
            "features": ["driver_stats:avg_rating"],
            "entities": {"driver_id": [7002]},
            "full_feature_names": True,
        },
    )
    assert read.status_code == 200, read.text
    assert read.json()["metadata"]["feature_names"] == [
        "driver_id",
        "driver_stats__avg_rating",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-key-file", "k.pem"], "both --tls-key-file and --tls-cert-file"),
        (["--max-entity-rows", "0"], "--max-entity-rows must be positive"),
    ],
)
def test_bad_serve_options_fail_before_starting(
    argv: list[str], message: str, sample_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve() passes options on through os.environ: setenv so they are undone.
    for var in ("FP_SERVER_MAX_ENTITY_ROWS", "FEATURE_PLATFORM_PROFILE"):
        monkeypatch.setenv(var, "")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(sample_repo))
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    with pytest.raises(ValueError, match=message):
        serve(args)


def test_catalog_cache_survives_a_registry_outage(
    applied_local_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed refresh keeps the last snapshot; with none yet it is a 503."""
    from feature_platform.serving.snapshot import _SnapshotCache

    cache = _SnapshotCache(applied_local_store, ttl=0)  # rebuild on every call
    first = cache.get()

    def registry_down(cls: type, store: Any) -> RegistrySnapshot:
        raise ConnectionError("registry down")

    monkeypatch.setattr(RegistrySnapshot, "from_store", classmethod(registry_down))
    assert cache.get(fresh=True) is first
    with pytest.raises(RequestError) as info:
        _SnapshotCache(applied_local_store, ttl=0).get()
    assert info.value.status == 503
    assert info.value.code == "registry_unavailable"
    assert "registry down" in info.value.detail


def test_stale_values_are_null_unless_ttl_enforcement_is_off(client: Any) -> None:
    """With enforcement (the default) a value past its view's ttl is null with
    OUTSIDE_MAX_AGE; Feast's own read (enforce_ttl=False) returns it as present
    (feast#6821)."""
    from fastapi.testclient import TestClient

    from feature_platform.profiles import PLAIN_FEAST_LOCAL, get_store
    from feature_platform.server import build_app

    stale = datetime.now(UTC).replace(microsecond=0).timestamp() - 7 * 3600
    body = _push_df(
        driver_id=[7002],
        event_timestamp=[datetime.fromtimestamp(stale, UTC).isoformat()],
        avg_rating=[1.5],
    )
    assert client.post("/push", json=body).status_code == 200
    read = {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": [7002]}}
    column = client.post("/get-online-features", json=read).json()["results"][1]
    assert column["values"] == [None]
    assert column["statuses"] == ["OUTSIDE_MAX_AGE"]

    raw_store = get_store("local", repo=client.repo, overrides=PLAIN_FEAST_LOCAL)
    with TestClient(build_app(raw_store, enforce_ttl=False)) as raw:
        column = raw.post("/get-online-features", json=read).json()["results"][1]
    assert column["values"] == [1.5]
    assert column["statuses"] == ["PRESENT"]


def test_fuzzed_bodies_never_get_a_5xx(client: Any) -> None:
    """400 randomly mutated read/push bodies (fixed seed): every answer is a 2xx
    or a 4xx with an error code, never a 5xx."""
    import json
    import random

    rng = random.Random(20261126)
    atoms: list[Any] = [
        *(None, True, 0, -1, 5001, 1.5, 2**70, 1e300, "", "x", "5001"),
        *([], {}, [1], {"a": 1}, "driver_stats:avg_rating", "é\x00"),
        *("churn_prediction_service", "2026-01-01T00:00:00Z"),
    ]
    names = [
        *("features", "feature_service", "entities", "full_feature_names"),
        *("driver_id", "customer_id", "push_source_name", "df", "to"),
        *("event_timestamp", "avg_rating", "total_trips", "acceptance_rate"),
    ]

    def value(depth: int = 0) -> Any:
        roll = rng.random()
        if depth < 3 and roll < 0.25:
            return {
                rng.choice(names): value(depth + 1) for _ in range(rng.randint(0, 3))
            }
        if depth < 3 and roll < 0.45:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return rng.choice(atoms)

    def mutate(body: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(json.dumps(body))
        for _ in range(rng.randint(1, 3)):
            target = body
            while rng.random() < 0.6:
                inner = [k for k, v in target.items() if isinstance(v, dict) and v]
                if not inner:
                    break
                target = target[rng.choice(inner)]
            key = rng.choice([*target, *names])
            if rng.random() < 0.2:
                target.pop(key, None)
            else:
                target[key] = value() if rng.random() < 0.5 else [value()]
        return body

    now = datetime.now(UTC).isoformat()
    bases = [
        ("/get-online-features",
         {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": [5001]}}),
        ("/push", _push_df(event_timestamp=[now])),
    ]  # fmt: skip
    statuses: dict[int, int] = {}
    for i in range(400):
        path, base = bases[i % 2]
        response = client.post(path, content=json.dumps(mutate(base)))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (path, response.text)
        if response.status_code >= 400:
            assert error_body(response)["error"], response.text
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > 100, statuses


def test_catalog_refresh_runs_in_the_background(
    applied_local_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due refresh never makes a request wait: the last snapshot is served
    while a background thread rebuilds it."""
    import threading

    from feature_platform.serving.snapshot import _SnapshotCache

    cache = _SnapshotCache(applied_local_store, ttl=0)  # due on every call
    first = cache.get()
    started, release = threading.Event(), threading.Event()
    newer = RegistrySnapshot(views={}, services={}, push_sources={})

    def slow_registry(cls: type, store: Any) -> RegistrySnapshot:
        started.set()
        release.wait(timeout=30)
        return newer

    monkeypatch.setattr(RegistrySnapshot, "from_store", classmethod(slow_registry))
    assert cache.get() is first  # starts the refresh
    assert started.wait(timeout=30)
    assert cache.get() is first  # refresh in flight: still answered
    release.set()
    for _ in range(3000):
        if cache.get() is newer:
            break
        threading.Event().wait(0.01)
    assert cache.get() is newer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", True), ("1", True), ("true", True), ("0", False), ("off", False),
     ("maybe", ValueError)],
)  # fmt: skip
def test_server_flags(
    raw: str, expected: bool | type, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.settings import settings

    monkeypatch.setenv("FP_SERVER_FAST_READS", raw)
    if expected is ValueError:
        with pytest.raises(ValueError, match="FP_SERVER_FAST_READS"):
            settings()
    else:
        assert settings().server_fast_reads is expected


def test_bad_server_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from feature_platform.errors import ConfigError
    from feature_platform.settings import settings

    monkeypatch.setenv("FP_SERVER_MAX_ENTITY_ROWS", "0")
    with pytest.raises(ConfigError, match="FP_SERVER_MAX_ENTITY_ROWS.*greater than 0"):
        settings()
    monkeypatch.setenv("FP_SERVER_MAX_ENTITY_ROWS", "ten")
    with pytest.raises(ConfigError, match="FP_SERVER_MAX_ENTITY_ROWS"):
        settings()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/materialize", {"start_ts": None, "end_ts": None}),
        ("POST", "/materialize-incremental", {"end_ts": "2026-11-29T00:00:00"}),
        ("POST", "/write-to-online-store", {"df": {"": None}, "feature_view_name": ""}),
        ("POST", "/search", {}),
        ("POST", "/retrieve-online-documents", {}),
        ("GET", "/v1/vector_stores", None),
        ("POST", "/chat", {}),
    ],
)
def test_admin_and_unused_endpoints_are_closed(
    client: Any, method: str, path: str, body: Any
) -> None:
    """Feast's endpoints that write around the platform (no gate, lock or pii
    masking) or that it does not serve answer 403 with a JSON error."""
    from feast.errors import FeastError, FeastPermissionError

    r = client.request(method, path, json=body)
    assert r.status_code == 403, r.text
    # Feast's error detail: Feast's REST clients raise FeastPermissionError.
    assert isinstance(FeastError.from_error_detail(r.json()), FeastPermissionError)
    error = json.loads(r.json())
    assert error["error"] == "endpoint_disabled"
    detail = error["detail"]
    assert error["message"].endswith(detail)  # "Permission error:\n" + detail
    assert path in detail
    # Admin endpoints point to the platform's way; the document, vector and
    # chat endpoints stay closed whatever FP_SERVER_ADMIN_ENDPOINTS says.
    assert ("POST /push" in detail) == path.startswith(("/materialize", "/write"))
    assert ("no document or vector" in detail) != ("POST /push" in detail)


def test_admin_endpoints_need_an_authenticated_profile(
    applied_local_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.errors import ConfigError
    from feature_platform.server import build_app

    monkeypatch.setenv("FP_SERVER_ADMIN_ENDPOINTS", "1")
    with pytest.raises(ConfigError, match="needs an authenticated profile"):
        build_app(applied_local_store)


_NOW = "2026-11-29T00:00:00Z"
_DRIVER_ROW = {
    "driver_id": [7],
    "event_timestamp": [_NOW],
    "avg_rating": [4.5],
    "total_trips": [3],
    "acceptance_rate": [0.5],
    "avg_delivery_time_min": [12.0],
}


def _window(**fields: Any) -> dict[str, Any]:
    return {"start_ts": "2026-11-28T00:00:00Z", "end_ts": _NOW, **fields}


def _write(view: str = "driver_stats", **columns: Any) -> dict[str, Any]:
    return {"feature_view_name": view, "df": {**_DRIVER_ROW, **columns}}


@pytest.mark.parametrize(
    ("check", "body", "status", "says"),
    [
        # /materialize: Feast answers these with a 500 (or runs 1970 -> now).
        ("materialize", {"start_ts": None}, 400, "start_ts is required"),
        ("materialize", _window(start_ts="yesterday"), 400, "ISO-8601"),
        ("materialize", _window(end_ts="2026-11-29T00:00:00"), 400, "timezone"),
        ("materialize", _window(start_ts=_NOW), 400, "before end_ts"),
        ("materialize", {"disable_event_timestamp": True}, 400, "is a window"),
        ("materialize", _window(feature_views=["x"]), 404, "unknown feature view"),
        ("materialize", _window(feature_views=[]), 400, "feature_views is empty"),
        ("materialize", _window(version="v2"), 400, "version"),
        ("materialize", [], 400, "JSON object"),
        ("materialize", _window(feature_views=["driver_stats"]), None, ""),
        ("materialize_incremental", {"end_ts": "2026-11-29"}, 400, "timezone"),
        ("materialize_incremental", {"end_ts": _NOW, "x": 1}, 400, "unknown field"),
        ("materialize_incremental", {"end_ts": _NOW}, None, ""),
        # /write-to-online-store: Feast answers a malformed df with a 500.
        (
            "write",
            {"df": {"": None}, "feature_view_name": ""},
            400,
            "feature_view_name",
        ),
        ("write", _write("nope"), 404, "unknown feature view"),
        ("write", {**_write(), "df": {"driver_id": [7]}}, 400, "missing column"),
        ("write", _write(avg_rating=["x"]), 400, "must be a number"),
        ("write", _write(event_timestamp=["2026-11-29"]), 400, "timezone"),
        ("write", _write(), None, ""),
    ],
)
def test_admin_endpoint_bodies_are_validated(
    catalog: RegistrySnapshot, check: str, body: Any, status: int | None, says: str
) -> None:
    """What the admin endpoints accept once FP_SERVER_ADMIN_ENDPOINTS opens them
    (for the admin role): a clear 4xx naming the problem, never Feast's 500."""
    from feature_platform.serving import requests

    function = getattr(requests, f"check_{check}")
    if status is None:
        function(body, lambda fresh: catalog, 10)
        return
    with pytest.raises(RequestError) as err:
        function(body, lambda fresh: catalog, 10)
    assert err.value.status == status
    assert says in err.value.detail, err.value.detail
