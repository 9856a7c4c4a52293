"""Entities: the join keys every feature view and request is keyed by."""

from __future__ import annotations

from feast import Entity, Project, ValueType

from feature_platform.profiles import project_name

# The project name can be overridden (tests use a fresh one per run so their
# Redis keys and registry rows never collide); feature_platform.profiles gives
# the RepoConfig and these definitions the same name.
project = Project(
    name=project_name(),
    description="Customer churn and driver matching features",
    tags={"owner": "ml-platform@example.com"},
)

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A customer of the marketplace, keyed by the CRM customer id.",
    owner="growth@example.com",
    tags={"team": "growth"},
)

driver = Entity(
    name="driver",
    join_keys=["driver_id"],
    value_type=ValueType.INT64,
    description="A delivery driver, keyed by the fleet system's driver id.",
    owner="logistics@example.com",
    tags={"team": "logistics"},
)
