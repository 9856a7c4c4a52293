"""The guard's authorization of the reads it answers (serving.auth).

Feast's enforcer decides over the repo's permissions; the authorizer keeps the
decision for a catalog snapshot, so a changed permission (a new snapshot) must
change the answer. The identity provider is not involved here (users are
given); tests/integration/test_auth_oidc.py runs the whole path.
"""

from __future__ import annotations

import pytest
from feast import FeatureView
from feast.permissions.action import AuthzedAction
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.permissions.user import User

from feature_platform.serving.auth import Authorizer, admin_role
from feature_platform.serving.errors import RequestError
from feature_platform.serving.snapshot import RegistrySnapshot

DRIVER_READ = {"features": ["driver_stats:avg_rating"], "entities": {"driver_id": [1]}}
SERVICE_READ = {
    "feature_service": "churn_prediction_service",
    "entities": {"customer_id": [1]},
}


def _denied(auth: Authorizer, body: dict, user: User, catalog: RegistrySnapshot) -> str:
    with pytest.raises(RequestError) as err:
        auth.authorize_read(body, user, catalog)
    assert err.value.status == 403 and err.value.code == "forbidden"
    return err.value.detail


def test_decisions_follow_the_permissions(local_store) -> None:
    auth = Authorizer(local_store, admin_role=admin_role(local_store))
    assert auth.admin_role == "platform-admin"  # permissions.py ADMIN_ROLE
    auth.enabled = True  # the local profile is no_auth; the rule is the same
    growth, model = User("gina", ["growth"]), User("churn-model", ["model"])
    first = RegistrySnapshot.from_store(local_store)

    assert "Requires roles" in _denied(auth, DRIVER_READ, growth, first)
    assert "Requires roles" in _denied(auth, DRIVER_READ, growth, first)  # kept
    auth.authorize_read(SERVICE_READ, model, first)
    _denied(auth, DRIVER_READ, model, first)
    _denied(auth, SERVICE_READ, User("nobody", []), first)

    local_store.apply(
        [
            Permission(
                name="growth_reads_drivers",
                types=[FeatureView],
                name_patterns=["driver_stats"],
                actions=[AuthzedAction.READ_ONLINE],
                policy=RoleBasedPolicy(roles=["growth"]),
            )
        ]
    )
    local_store.refresh_registry()
    second = RegistrySnapshot.from_store(local_store)
    assert second != first  # a changed permission is a new snapshot
    auth.authorize_read(DRIVER_READ, growth, second)  # granted now
    _denied(auth, DRIVER_READ, model, second)
