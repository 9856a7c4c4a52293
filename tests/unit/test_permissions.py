"""RBAC per team (feature_repo/permissions.py), enforced by Feast itself.

The permissions are applied to the registry with the other definitions; the
requests go through Feast's own feature server app (``feast.feature_server``)
with Feast's security manager and REST token extractor. Only the identity
provider is a stand-in: a token parser mapping test tokens to users and roles
(what OIDC or Kubernetes would return).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from feast import FeatureService, FeatureView
from feast.errors import FeastPermissionError
from feast.permissions.action import AuthzedAction
from feast.permissions.auth.auth_manager import AllowAll, AuthManager, set_auth_manager
from feast.permissions.auth.token_parser import TokenParser
from feast.permissions.enforcer import enforce_policy
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.permissions.security_manager import (
    SecurityManager,
    assert_permissions_to_update,
    no_security_manager,
    set_security_manager,
)
from feast.permissions.server.rest_token_extractor import RestTokenExtractor
from feast.permissions.user import User

from tests.conftest import TEST_END

USERS = {
    "growth-token": User("gina", ["growth"]),
    "logistics-token": User("lou", ["logistics"]),
    "model-token": User("churn-model", ["model"]),
    "admin-token": User("ci", ["platform-admin"]),
}


class TestTokens(TokenParser):
    """Stand-in identity provider: token -> user with roles."""

    async def user_details_from_access_token(self, access_token: str) -> User:
        return USERS[access_token]


@pytest.fixture(scope="module")
def secured(applied_local_store) -> Iterator[TestClient]:
    """Feast's feature server app with RBAC on (as with auth type oidc)."""
    from feast.feature_server import get_app

    store = applied_local_store
    assert {p.name for p in store.list_permissions()} >= {
        "growth_owns_customer_objects",
        "logistics_owns_driver_objects",
        "models_read_feature_services",
    }
    set_security_manager(
        SecurityManager(project=store.project, registry=store.registry)
    )
    set_auth_manager(
        AuthManager(token_parser=TestTokens(), token_extractor=RestTokenExtractor())
    )
    try:
        with TestClient(get_app(store), raise_server_exceptions=False) as client:
            yield client
    finally:
        no_security_manager()
        set_auth_manager(AllowAll())


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rows(key: str, ids: list[int], features: dict[str, list]) -> dict:
    ts = (TEST_END - timedelta(minutes=5)).isoformat()
    return {key: ids, "event_timestamp": [ts] * len(ids), **features}


CUSTOMER_WRITE = {
    "feature_view_name": "customer_stats",
    "df": _rows(
        "customer_id",
        [42],
        {
            "total_orders": [3],
            "avg_order_amount": [20.0],
            "lifetime_value": [60.0],
            "preferred_category": ["home"],
            "churn_risk_score": [0.1],
            "email": [None],
            "created_timestamp": [(TEST_END - timedelta(minutes=5)).isoformat()],
        },
    ),
}
DRIVER_WRITE = {
    "feature_view_name": "driver_stats",
    "df": _rows(
        "driver_id",
        [7],
        {
            "avg_rating": [4.9],
            "total_trips": [10],
            "acceptance_rate": [0.9],
            "avg_delivery_time_min": [20.0],
        },
    ),
}


@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        ("growth-token", CUSTOMER_WRITE, 200),  # owner writes its view
        ("logistics-token", CUSTOMER_WRITE, 403),  # other team: denied
        ("model-token", CUSTOMER_WRITE, 403),  # models never write
        ("logistics-token", DRIVER_WRITE, 200),
        ("growth-token", DRIVER_WRITE, 403),
        ("admin-token", DRIVER_WRITE, 200),
    ],
)
def test_writes_only_by_the_owning_team(secured, token, body, status) -> None:
    r = secured.post("/write-to-online-store", json=body, headers=_as(token))
    assert r.status_code == status, r.text
    if status == 403:
        assert "Permission" in r.text and body["feature_view_name"] in r.text


@pytest.mark.parametrize(
    ("token", "request_body", "status"),
    [
        # Models read through feature services ...
        ("model-token", {"feature_service": "churn_prediction_service"}, 200),
        # ... never straight from a feature view.
        ("model-token", {"features": ["customer_stats:total_orders"]}, 403),
        # Owners read their views; logistics is granted customer_stats reads
        # (driver_matching_service joins preferred_category); growth is not
        # granted driver_stats.
        ("growth-token", {"features": ["customer_stats:total_orders"]}, 200),
        ("logistics-token", {"features": ["customer_stats:preferred_category"]}, 200),
        ("growth-token", {"features": ["driver_stats:avg_rating"]}, 403),
        ("logistics-token", {"feature_service": "driver_matching_service"}, 200),
    ],
)
def test_reads_where_granted(secured, token, request_body, status) -> None:
    entities = (
        {"driver_id": [7], "customer_id": [42]}
        if "driver" in str(request_body)
        else {"customer_id": [42]}
    )
    r = secured.post(
        "/get-online-features",
        json={"entities": entities, **request_body},
        headers=_as(token),
    )
    assert r.status_code == status, r.text


def test_missing_token_is_rejected(secured) -> None:
    r = secured.post("/write-to-online-store", json=DRIVER_WRITE)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("roles", "view", "allowed"),
    [
        (["growth"], "customer_stats", True),
        (["logistics"], "customer_stats", False),
        (["logistics"], "driver_stats", True),
        (["model"], "driver_stats", False),
    ],
)
def test_registry_updates_follow_ownership(
    applied_local_store, roles, view, allowed
) -> None:
    """The check the registry server runs before applying a changed object."""
    store = applied_local_store
    sm = SecurityManager(project=store.project, registry=store.registry)
    set_security_manager(sm)
    try:
        sm.set_current_user(User("someone", roles))
        obj = store.get_feature_view(view)
        if allowed:
            assert_permissions_to_update(
                obj, store.registry.get_feature_view, store.project
            )
        else:
            with pytest.raises(FeastPermissionError, match=view):
                assert_permissions_to_update(
                    obj, store.registry.get_feature_view, store.project
                )
    finally:
        no_security_manager()


def test_required_tags_do_not_scope_feast_067_permissions(applied_local_store) -> None:
    """Why permissions.py scopes by name: a `required_tags` filter matches every
    view in Feast 0.67 (it reads a `required_tags` attribute views do not have)."""
    store = applied_local_store
    growth_by_tag = Permission(
        name="growth_by_tag",
        types=[FeatureView, FeatureService],
        required_tags={"team": "growth"},
        actions=[AuthzedAction.WRITE_ONLINE],
        policy=RoleBasedPolicy(roles=["growth"]),
    )
    driver_view = store.get_feature_view("driver_stats")
    assert driver_view.tags["team"] == "logistics"
    assert growth_by_tag.match_resource(driver_view)  # the trap
    granted = enforce_policy(
        [growth_by_tag],
        User("gina", ["growth"]),
        [driver_view],
        [AuthzedAction.WRITE_ONLINE],
    )
    assert granted == [driver_view]
    # The applied, name-scoped permissions deny the same write.
    with pytest.raises(FeastPermissionError):
        enforce_policy(
            store.list_permissions(),
            User("gina", ["growth"]),
            [driver_view],
            [AuthzedAction.WRITE_ONLINE],
        )


def test_permission_names_cover_every_object(applied_local_store) -> None:
    """Every view, service, source and entity has exactly one owning team."""
    import importlib.util
    import re

    from tests.conftest import REPO_SRC

    spec = importlib.util.spec_from_file_location(
        "fp_permissions_under_test", REPO_SRC / "permissions.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = applied_local_store
    names = [
        *(v.name for v in store.list_feature_views()),
        *(v.name for v in store.list_on_demand_feature_views()),
        *(s.name for s in store.list_feature_services()),
        *(s.name for s in store.list_data_sources()),
        *(e.name for e in store.list_entities()),
    ]
    for name in names:
        owners = [
            team
            for team, patterns in module.TEAM_OBJECTS.items()
            if any(re.fullmatch(p, name) for p in patterns)
        ]
        assert len(owners) == 1, (name, owners)
