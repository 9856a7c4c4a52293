"""The definitions in feature_repo/ match the product spec."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from feast.types import Float32, Float64, Int64, String

from feature_platform.definitions import apply_definitions, load_definitions


@pytest.fixture(scope="module")
def contents(sample_repo: Path):
    return load_definitions(sample_repo)


def test_entities(contents) -> None:
    entities = {e.name: e for e in contents.entities if e.name != "__dummy"}
    assert {n: e.join_key for n, e in entities.items()} == {
        "customer": "customer_id",
        "driver": "driver_id",
    }
    assert all(e.owner and e.description for e in entities.values())


@pytest.mark.parametrize(
    ("view", "ttl", "schema", "team"),
    [
        (
            "customer_stats",
            timedelta(days=3),
            {
                "total_orders": Int64,
                "avg_order_amount": Float64,
                "lifetime_value": Float64,
                "preferred_category": String,
                "churn_risk_score": Float32,
            },
            "growth",
        ),
        (
            "driver_stats",
            timedelta(hours=6),
            {
                "avg_rating": Float64,
                "total_trips": Int64,
                "acceptance_rate": Float64,
                "avg_delivery_time_min": Float32,
            },
            "logistics",
        ),
    ],
)
def test_feature_views(contents, view, ttl, schema, team) -> None:
    fv = {v.name: v for v in contents.feature_views}[view]
    assert fv.ttl == ttl
    declared = {f.name: f.dtype for f in fv.features}
    for name, dtype in schema.items():
        assert declared[name] == dtype, name
    assert fv.tags["team"] == team
    assert fv.owner and fv.description
    assert fv.batch_source.timestamp_field == "event_timestamp"


def test_customer_stats_tags_and_created_column(contents) -> None:
    fv = {v.name: v for v in contents.feature_views}["customer_stats"]
    assert fv.tags["version"] == "v2"
    assert fv.batch_source.created_timestamp_column == "created_timestamp"


def test_feature_services(contents) -> None:
    services = {
        s.name: sorted(f.name for p in s.feature_view_projections for f in p.features)
        for s in contents.feature_services
    }
    assert services["churn_prediction_service"] == sorted(
        ["total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score"]
    )
    assert services["driver_matching_service"] == sorted(
        ["avg_rating", "acceptance_rate", "avg_delivery_time_min", "preferred_category"]
    )
    assert all(s.owner and s.description for s in contents.feature_services)


def test_apply_is_idempotent_and_complete(local_store) -> None:
    registry = local_store.registry
    names = {v.name for v in local_store.list_feature_views()}
    assert names == {"customer_stats", "driver_stats"}
    again = apply_definitions(local_store)
    assert {v.name for v in local_store.list_feature_views()} == names
    assert again.objects["feature_services"] == [
        "churn_prediction_service",
        "churn_prediction_service_v2",
        "driver_matching_service",
    ]
    assert again.objects["on_demand_feature_views"] == ["checkout_value"]
    assert [v.name for v in local_store.list_on_demand_feature_views()] == [
        "checkout_value"
    ]
    assert registry.get_feature_service("churn_prediction_service", local_store.project)
