"""RBAC per team with Feast's permission model (applied with the other definitions).

Who may do what, enforced by Feast itself (``feast.permissions.enforcer`` via the
security manager of the feature server, registry server and offline server when
``auth`` is ``oidc`` or ``kubernetes``; the local profile runs ``no_auth``):

* the growth team (role ``growth``) owns ``customer*`` / ``churn*`` /
  ``checkout*`` objects (customer entity, customer_stats view and source, the
  churn services, the checkout_value on-demand view and its request source);
* the logistics team (role ``logistics``) owns ``driver*`` objects;
* models (role ``model``) read only through feature services, never views;
* logistics may read ``customer_stats`` (driver_matching_service joins
  ``preferred_category``), but never write it; every role may describe objects;
* ``platform-admin`` may do everything (applies from CI run as this role).

Ownership is matched by ``name_patterns``, not ``required_tags``: Feast 0.67
matches ``required_tags`` against a ``resource.required_tags`` attribute that
feature views, services and sources do not have, so a tag filter silently
matches every object (tests/unit/test_permissions.py pins this down).
"""

from __future__ import annotations

from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
from feast.data_source import DataSource
from feast.feast_object import ALL_RESOURCE_TYPES
from feast.permissions.action import ALL_ACTIONS, READ, AuthzedAction
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy

TEAM_ROLES = ("growth", "logistics")
MODEL_ROLE = "model"
ADMIN_ROLE = "platform-admin"
# Name patterns (re.fullmatch) of the objects each team owns.
TEAM_OBJECTS = {
    "growth": ["customer.*", "churn.*", "checkout.*"],
    "logistics": ["driver.*"],
}
_OWNED_TYPES = [FeatureView, OnDemandFeatureView, FeatureService, DataSource, Entity]

growth_owns_customer_objects = Permission(
    name="growth_owns_customer_objects",
    types=_OWNED_TYPES,
    name_patterns=TEAM_OBJECTS["growth"],
    actions=ALL_ACTIONS,
    policy=RoleBasedPolicy(roles=["growth"]),
    tags={"team": "growth"},
)

logistics_owns_driver_objects = Permission(
    name="logistics_owns_driver_objects",
    types=_OWNED_TYPES,
    name_patterns=TEAM_OBJECTS["logistics"],
    actions=ALL_ACTIONS,
    policy=RoleBasedPolicy(roles=["logistics"]),
    tags={"team": "logistics"},
)

logistics_reads_customer_stats = Permission(
    name="logistics_reads_customer_stats",
    types=[FeatureView],
    name_patterns=["customer_stats"],
    actions=[AuthzedAction.DESCRIBE, *READ],
    policy=RoleBasedPolicy(roles=["logistics"]),
    tags={"team": "growth", "grant": "cross-team-read"},
)

models_read_feature_services = Permission(
    name="models_read_feature_services",
    types=[FeatureService],
    actions=[AuthzedAction.DESCRIBE, *READ],
    policy=RoleBasedPolicy(roles=[MODEL_ROLE, *TEAM_ROLES]),
    tags={"team": "ml-platform"},
)

everyone_describes = Permission(
    name="everyone_describes",
    types=ALL_RESOURCE_TYPES,
    actions=[AuthzedAction.DESCRIBE],
    policy=RoleBasedPolicy(roles=[*TEAM_ROLES, MODEL_ROLE, ADMIN_ROLE]),
    tags={"team": "ml-platform"},
)

platform_admin_all = Permission(
    name="platform_admin_all",
    types=ALL_RESOURCE_TYPES,
    actions=ALL_ACTIONS,
    policy=RoleBasedPolicy(roles=[ADMIN_ROLE]),
    tags={"team": "ml-platform"},
)
