"""Entities: the join keys every feature view and request is keyed by."""

from __future__ import annotations

import os

from feast import Entity, Project, ValueType

# The project name can be overridden (tests use a fresh one per run so their
# Redis keys and registry rows never collide); feature_platform.config applies
# the same variable to the RepoConfig so the two always agree.
project = Project(
    name=os.environ.get("FEATURE_PLATFORM_PROJECT", "feature_platform"),
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
