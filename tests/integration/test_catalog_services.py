"""The feature catalog on the services profile: definitions, feature services
and watermarks read from the PostgreSQL registry after a real materialization
into Redis."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import TEST_END

pytestmark = pytest.mark.integration


def test_catalog_reads_the_postgresql_registry(
    services_store, local_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from feature_platform.catalog import build_catalog, search
    from feature_platform.cli import main
    from feature_platform.materialize import materialize_window

    assert services_store.config.registry.path.startswith("postgresql+psycopg://")
    before = build_catalog(services_store, now=TEST_END)
    assert {v.name: v.freshness for v in before.views} == {
        "checkout_value": "on demand",
        "customer_stats": "never materialized",
        "driver_stats": "never materialized",
    }

    start = TEST_END - timedelta(hours=6)
    result = materialize_window(services_store, start, TEST_END)
    assert result["rows_total"] > 0

    # A second store on the same project: everything comes from PostgreSQL.
    from feature_platform.profiles import get_store

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    fresh_store = get_store("services", repo=local_repo)
    assert fresh_store.project == services_store.project
    catalog = build_catalog(fresh_store, now=TEST_END + timedelta(hours=1))
    views = {v.name: v for v in catalog.views if v.kind != "on_demand"}
    assert set(views) == {"customer_stats", "driver_stats"}
    assert [v.name for v in catalog.views if v.kind == "on_demand"] == [
        "checkout_value"
    ]
    for view in views.values():
        assert view.last_materialized == TEST_END.isoformat()
        assert view.age_seconds == 3600.0
        assert view.freshness == "fresh"
        assert view.owner.endswith("@example.com") and view.team
    # driver_stats (ttl 6 h) expires first; customer_stats (3 d) does not.
    later = build_catalog(fresh_store, now=TEST_END + timedelta(hours=6, seconds=1))
    assert {v.name: v.freshness for v in later.views} == {
        "checkout_value": "on demand",
        "customer_stats": "fresh",
        "driver_stats": "stale",
    }
    by_ref = {f.ref: f for f in catalog.features()}
    assert by_ref["customer_stats:lifetime_value"].feature_services == (
        "churn_prediction_service",
        "churn_prediction_service_v2",
    )
    assert by_ref["driver_stats:avg_rating"].feature_services == (
        "driver_matching_service",
    )
    assert [f.ref for f in search(catalog, "unit=EUR")] == [
        "customer_stats:avg_order_amount",
        "customer_stats:lifetime_value",
    ]

    # The CLI on the services profile prints the same catalog.
    assert main(["--profile", "services", "catalog", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["project"] == services_store.project
    assert {v["name"]: v["last_materialized"] for v in data["views"]} == {
        "checkout_value": None,
        "customer_stats": TEST_END.isoformat(),
        "driver_stats": TEST_END.isoformat(),
    }
    assert main(["--profile", "services", "catalog", "search", "team=growth"]) == 0
    out = capsys.readouterr().out
    # customer_stats' six and the checkout_value on-demand view's three
    assert "9 feature(s) match 'team=growth'" in out
    assert "customer_stats:email" in out
