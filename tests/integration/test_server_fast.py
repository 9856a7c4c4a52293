"""The server's Redis fast read path answers exactly as Feast's endpoint does.

Two apps on the same services store (PostgreSQL registry + Redis): one with
``FastReads`` (the default), one with ``fast_reads=False`` (Feast's endpoint
behind the same guard and ttl rule). Every body must get the same status and
the same JSON, value by value, including the ttl rule's OUTSIDE_MAX_AGE cells.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from tests.conftest import TEST_END
from tests.error_bodies import error_body

pytestmark = pytest.mark.integration

CHURN = "churn_prediction_service"
DRIVER = "driver_matching_service"
STALE_DRIVER, NULL_DRIVER, STALE_CUSTOMER = 990001, 990002, 99000001


@pytest.fixture(autouse=True)
def _no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process apps without the profile's oidc (Feast's security manager is
    process-global; authentication is test_auth_oidc's subject)."""
    monkeypatch.setenv("FP_AUTH", "no_auth")


@pytest.fixture
def apps(services_store) -> Iterator[tuple[Any, Any, Any, dict[str, list[int]]]]:
    from fastapi.testclient import TestClient

    from feature_platform.materialize import materialize_incremental
    from feature_platform.server import build_app

    materialize_incremental(services_store, TEST_END)
    repo = services_store.repo_path
    ids = {
        "customer_id": sorted(
            int(c)
            for c in pd.read_parquet(repo / "data" / "customer_stats.parquet")[
                "customer_id"
            ].unique()
        ),
        "driver_id": sorted(
            int(d)
            for d in pd.read_parquet(repo / "data" / "driver_stats.parquet")[
                "driver_id"
            ].unique()
        ),
    }
    from feature_platform.profiles import get_store

    # One stale row per view (older than its ttl: 6 h, 3 days) and one with
    # a null feature, so the comparison covers the ttl rule and nulls.
    now = pd.Timestamp.now(tz="UTC")
    old = now - pd.Timedelta(days=4)
    drivers = pd.read_parquet(repo / "data" / "driver_stats.parquet").head(2)
    drivers["driver_id"] = [STALE_DRIVER, NULL_DRIVER]
    drivers["event_timestamp"] = [old, now]
    drivers["avg_delivery_time_min"] = [20.0, 21.5]
    drivers["avg_rating"] = [4.5, None]
    services_store.write_to_online_store("driver_stats", drivers)
    customers = pd.read_parquet(repo / "data" / "customer_stats.parquet").head(1)
    customers["customer_id"] = [STALE_CUSTOMER]
    customers["event_timestamp"] = [old]
    services_store.write_to_online_store("customer_stats", customers)
    ids["customer_id"].append(STALE_CUSTOMER)
    ids["driver_id"] += [STALE_DRIVER, NULL_DRIVER]

    # A store each: Feast's async Redis client is bound to one app's loop.
    feast_store = get_store("services", repo=repo)
    assert feast_store.project == services_store.project
    fast_app = build_app(services_store, max_entity_rows=1000)
    feast_app = build_app(feast_store, max_entity_rows=1000, fast_reads=False)
    with TestClient(fast_app) as fast, TestClient(feast_app) as feast:
        yield fast, feast, services_store, ids


def _bodies(ids: dict[str, list[int]]) -> list[dict[str, Any]]:
    customers = ids["customer_id"] + [-1, 987654321]  # two unknown keys
    drivers = ids["driver_id"] + [0]
    n = min(len(customers), len(drivers))
    return [
        {"feature_service": CHURN, "entities": {"customer_id": customers}},
        {"feature_service": CHURN, "entities": {"customer_id": customers[:1]}},
        {
            "feature_service": DRIVER,
            "entities": {"driver_id": drivers[:n], "customer_id": customers[:n]},
        },
        {  # entity keys in the other order, features interleaved across views
            "features": [
                "customer_stats:preferred_category",
                "driver_stats:avg_rating",
                "customer_stats:total_orders",
                "driver_stats:total_trips",
            ],
            "entities": {"customer_id": customers[:n], "driver_id": drivers[:n]},
        },
        {
            "features": ["driver_stats:avg_delivery_time_min"],
            "entities": {"driver_id": drivers},
        },
        {  # an on-demand view: its stored inputs on the fast path
            "feature_service": "churn_prediction_service_v2",
            "entities": {
                "customer_id": customers,
                "cart_value": [float(i % 7) * 10.5 for i in range(len(customers))],
            },
        },
        {  # full feature names: Feast's path in both apps
            "feature_service": CHURN,
            "entities": {"customer_id": customers[:3]},
            "full_feature_names": True,
        },
    ]


def test_fast_path_answers_exactly_like_feast(apps) -> None:
    fast, feast, _store, ids = apps
    for body in _bodies(ids):
        got, want = (
            fast.post("/get-online-features", json=body),
            feast.post("/get-online-features", json=body),
        )
        assert got.status_code == want.status_code == 200, (got.text, want.text)
        assert got.json() == want.json(), body
    # The comparison covers the ttl rule and unknown keys, not only fresh hits.
    churn = fast.post("/get-online-features", json=_bodies(ids)[0]).json()
    statuses = {s for r in churn["results"] for s in r["statuses"]}
    assert "PRESENT" in statuses
    driver = fast.post("/get-online-features", json=_bodies(ids)[4]).json()
    names = driver["metadata"]["feature_names"]
    column = dict(zip(names, driver["results"], strict=True))
    drivers = column["driver_id"]["values"]
    minutes = column["avg_delivery_time_min"]["values"]
    by_driver = dict(zip(drivers, minutes, strict=True))
    stale = column["avg_delivery_time_min"]["statuses"]
    assert stale[drivers.index(STALE_DRIVER)] == "OUTSIDE_MAX_AGE"
    assert by_driver[STALE_DRIVER] is None
    assert by_driver[NULL_DRIVER] == 21.5
    assert by_driver[0] is None  # unknown driver


def test_fast_path_is_used_for_redis_reads(apps) -> None:
    """FastReads answers service and list reads itself; full names go to Feast."""
    from feature_platform.serving.fast_reads import FastReads
    from feature_platform.serving.snapshot import RegistrySnapshot

    _fast, _feast, store, ids = apps
    reads = FastReads(store)
    catalog = RegistrySnapshot.from_store(store)
    assert reads.enabled
    bodies = _bodies(ids)
    for body in bodies[:5]:
        assert reads.respond(body, catalog) is not None, body
    assert reads.respond(bodies[5], catalog) is not None  # on-demand
    assert reads.respond(bodies[6], catalog) is None
    # A view Feast would not serve now (disabled, or materializing without
    # serve_features_while_materializing): Feast's path answers, with its error.
    blocked = dataclasses.replace(
        catalog,
        views={
            **catalog.views,
            "driver_stats": dataclasses.replace(
                catalog.views["driver_stats"], servable=False
            ),
        },
    )
    assert reads.respond(bodies[2], blocked) is None
    assert reads.respond(bodies[0], blocked) is not None  # churn: customer_stats


def test_bad_requests_are_still_rejected_before_the_fast_path(apps) -> None:
    fast, _feast, _store, ids = apps
    cases = [
        ({"feature_service": "nope", "entities": {"customer_id": [1]}}, 404),
        ({"feature_service": CHURN, "entities": {"customer_id": [1.5]}}, 400),
        ({"feature_service": CHURN, "entities": {"driver_id": [1]}}, 400),
        ({"features": ["customer_stats:nope"], "entities": {"customer_id": [1]}}, 404),
        (
            {
                "feature_service": CHURN,
                "entities": {"customer_id": [1], "driver_id": [2]},
            },
            400,
        ),
    ]
    for body, status in cases:
        response = fast.post("/get-online-features", json=body)
        assert response.status_code == status, (body, response.text)
        assert error_body(response)["error"], response.text


def _fallbacks(client: Any) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "fp_serving_fast_path_fallbacks":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["reason"]] = sample.value
    return out


def test_a_fast_path_fault_is_logged_once_and_counted(
    apps, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the fast path does not hide as slower reads: Feast's endpoint
    answers, the fault is logged once (with its traceback) and every fallback
    is counted in /metrics by reason."""
    import logging

    from feature_platform.serving.fast_reads import FastReads

    fast, feast, _store, ids = apps
    body = _bodies(ids)[1]
    before = _fallbacks(fast)
    # A read only Feast's path serves is counted, under its own reason.
    assert fast.post("/get-online-features", json=_bodies(ids)[6]).status_code == 200
    after = _fallbacks(fast)
    assert after["unsupported"] - before.get("unsupported", 0) == 1, (before, after)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a fast-path bug")

    monkeypatch.setattr(FastReads, "_check_covered", broken)
    with caplog.at_level(logging.INFO, logger="feature_platform.serving.fast_reads"):
        answers = [fast.post("/get-online-features", json=body) for _ in range(3)]
    want = feast.post("/get-online-features", json=body).json()
    assert all(a.status_code == 200 and a.json() == want for a in answers)
    faults = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(faults) == 1 and "a fast-path bug" in str(faults[0].exc_info[1])
    final = _fallbacks(fast)
    assert final["error"] - after.get("error", 0) == 3, (after, final)
    assert final["unsupported"] == after["unsupported"]
