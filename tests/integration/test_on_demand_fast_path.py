"""Which read path answers a request with on-demand features (issue 24 item 3).

On the services profile (Redis, the platform's plugin and server), a read of
``churn_prediction_service_v2`` (stored features + ``checkout_value``) should be
answered by the platform's fast path, as v1 is: ``PlatformOnlineResponse`` from
``FeatureStore.get_online_features`` and a body from the server's
``FastReads`` (the stored inputs read on the fast path, the outputs computed
from the decoded columns by the view's own transformation, no response proto;
the values: tests/*/test_on_demand_equality.py, tests/unit/test_on_demand_fast.py).
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import TEST_END

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's fast reads serve unauthenticated profiles (with auth on,
    the request guard enables them per request: serving.auth)."""
    monkeypatch.setenv("FP_AUTH", "no_auth")


@pytest.fixture
def ready(services_store):
    from feature_platform.materialize import materialize_window

    materialize_window(
        services_store,
        TEST_END - pd.Timedelta(days=3),
        TEST_END,
        views=["customer_stats"],
    )
    repo = services_store.repo_path
    ids = sorted(
        int(c)
        for c in pd.read_parquet(repo / "data" / "customer_stats.parquet")[
            "customer_id"
        ].unique()
    )[:100]
    return services_store, ids


def _read(store, service: str, rows):
    return store.get_online_features(
        features=store.get_feature_service(service), entity_rows=rows
    )


def test_stored_features_take_the_fast_path(ready) -> None:
    from feature_platform.online_store.store import PlatformOnlineResponse
    from feature_platform.serving.fast_reads import FastReads
    from feature_platform.serving.snapshot import RegistrySnapshot

    store, ids = ready
    response = _read(store, "churn_prediction_service", [{"customer_id": ids[0]}])
    assert isinstance(response, PlatformOnlineResponse)
    reads = FastReads(store)
    assert reads.enabled
    body = {
        "feature_service": "churn_prediction_service",
        "entities": {"customer_id": ids[:3]},
    }
    assert reads.respond(body, RegistrySnapshot.from_store(store)) is not None


@pytest.mark.parametrize("batch", [1, 100])
def test_on_demand_features_take_the_fast_path_sdk(ready, batch: int) -> None:
    from feature_platform.online_store.store import PlatformOnlineResponse

    store, ids = ready
    rows = [{"customer_id": c, "cart_value": 42.0} for c in ids[:batch]]
    response = _read(store, "churn_prediction_service_v2", rows)
    assert isinstance(response, PlatformOnlineResponse)
    # computed from the decoded columns (online_store.on_demand), not by
    # Feast's transform over a response proto
    assert response.plan.on_demand_plan is not None
    assert [r.plan.name for r in response.on_demand] == ["checkout_value"]
    got = response.to_dict()
    # The service's columns only: request data and inputs dropped, as Feast does.
    assert set(got) == {
        "customer_id",
        "total_orders",
        "avg_order_amount",
        "lifetime_value",
        "churn_risk_score",
        "cart_to_avg_ratio",
        "cart_share_of_lifetime",
        "is_first_order",
    }
    assert all(len(v) == batch for v in got.values())


def test_on_demand_features_take_the_fast_path_http(ready) -> None:
    from feature_platform.serving.fast_reads import FastReads
    from feature_platform.serving.snapshot import RegistrySnapshot

    store, ids = ready
    reads = FastReads(store)
    body = {
        "feature_service": "churn_prediction_service_v2",
        "entities": {"customer_id": ids[:3], "cart_value": [1.0, 2.0, 3.0]},
    }
    assert reads.respond(body, RegistrySnapshot.from_store(store)) is not None
