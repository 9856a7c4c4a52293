"""The feature catalog against a real (local-profile) registry: what it lists
comes from the applied definitions, freshness follows the one ttl rule, search
finds by name, description and tag, and the CLI prints it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from feature_platform.catalog import FeatureCatalog, build_catalog, search
from feature_platform.cli import main
from tests.conftest import REPO_SRC, TEST_END

VIEWS = {"customer_stats", "driver_stats", "checkout_value"}


@pytest.fixture(scope="module")
def definitions():
    from feature_platform.governance.schema import load_definitions

    return load_definitions(REPO_SRC)


@pytest.fixture(scope="module")
def catalog(applied_local_store) -> FeatureCatalog:
    return build_catalog(applied_local_store, now=TEST_END)


def test_every_definition_carries_owner_team_and_description(definitions) -> None:
    """Discoverability needs metadata on every definition (a new view or field
    without it fails here, before it reaches the registry)."""
    for view in definitions.feature_views:
        assert view.owner and view.description, view.name
        assert view.tags.get("team"), f"{view.name} has no team tag"
        for feat in view.features:
            assert feat.description, f"{view.name}:{feat.name} has no description"
    for service in definitions.feature_services:
        assert service.owner and service.description, service.name
        assert service.tags.get("team"), f"{service.name} has no team tag"
    for entity in definitions.entities:
        if entity.name.startswith("__"):  # Feast's own entity of key-less views
            continue
        assert entity.owner and entity.description, entity.name
    for source in definitions.data_sources:
        assert source.owner and source.description, source.name
        assert source.tags.get("team"), f"{source.name} has no team tag"


def test_catalog_lists_every_feature_as_defined(
    catalog: FeatureCatalog, definitions
) -> None:
    from feature_platform.schedules import schedule_for

    assert {v.name for v in catalog.views} == VIEWS
    by_ref = {f.ref: f for f in catalog.features()}
    expected_refs = set()
    for view in definitions.feature_views:
        entry = next(v for v in catalog.views if v.name == view.name)
        assert (entry.owner, entry.description) == (view.owner, view.description)
        assert entry.team == view.tags["team"] and entry.tags == dict(view.tags)
        assert entry.ttl_seconds == view.ttl.total_seconds()
        schedule = schedule_for(view.name)
        assert entry.cadence is not None
        assert entry.cadence.cron == schedule.cron
        assert entry.cadence.interval_seconds == schedule.interval.total_seconds()
        for feat in view.features:
            ref = f"{view.name}:{feat.name}"
            expected_refs.add(ref)
            got = by_ref[ref]
            assert got.dtype == str(feat.dtype)
            assert got.description == feat.description
            assert got.owner == view.owner and got.team == view.tags["team"]
            assert got.tags == {**view.tags, **feat.tags}
            assert got.cadence == entry.cadence
    for view in definitions.on_demand_feature_views:
        entry = next(v for v in catalog.views if v.name == view.name)
        assert entry.kind == "on_demand" and entry.freshness == "on demand"
        assert (entry.owner, entry.description) == (view.owner, view.description)
        assert entry.ttl_seconds is None and entry.cadence is None
        for feat in view.features:
            ref = f"{view.name}:{feat.name}"
            expected_refs.add(ref)
            assert by_ref[ref].dtype == str(feat.dtype)
    assert set(by_ref) == expected_refs
    # Feature services, both ways, from the registry.
    for service in definitions.feature_services:
        for projection in service.feature_view_projections:
            for feat in projection.features:
                ref = f"{projection.name}:{feat.name}"
                assert service.name in by_ref[ref].feature_services
    assert by_ref["customer_stats:email"].feature_services == ()
    assert by_ref["customer_stats:preferred_category"].feature_services == (
        "driver_matching_service",
    )
    assert set(catalog.feature_services) == {
        s.name for s in definitions.feature_services
    }


def test_never_materialized_views_say_so(catalog: FeatureCatalog) -> None:
    for view in catalog.views:
        assert view.last_materialized is None and view.age_seconds is None
        # An on-demand view is computed at read time: nothing to materialize.
        expected = "on demand" if view.kind == "on_demand" else "never materialized"
        assert view.freshness == expected
        assert {f.freshness for f in view.features} == {expected}


def test_models_column_comes_from_the_lookup(applied_local_store) -> None:
    """Consuming models are looked up per feature ref with its services."""
    calls: list[tuple[str, tuple[str, ...]]] = []

    def consumers(ref: str, services: tuple[str, ...]) -> list[str]:
        calls.append((ref, services))
        return ["churn_model"] if "churn_prediction_service" in services else []

    catalog = build_catalog(applied_local_store, now=TEST_END, models=consumers)
    by_ref = {f.ref: f for f in catalog.features()}
    assert by_ref["customer_stats:lifetime_value"].models == ("churn_model",)
    assert by_ref["customer_stats:email"].models == ()
    assert len(calls) == len(by_ref)
    customer = next(v for v in catalog.views if v.name == "customer_stats")
    assert customer.models == ("churn_model",)


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        # by name (case-insensitive, from a word start), view name,
        # description, tag key / value / k=v
        # (the on-demand view's description names lifetime_value: its outputs too)
        (
            "LIFETIME",
            {
                "customer_stats:lifetime_value",
                "checkout_value:cart_to_avg_ratio",
                "checkout_value:cart_share_of_lifetime",
                "checkout_value:is_first_order",
            },
        ),
        ("rating", {"driver_stats:avg_rating"}),
        # "EUR" in descriptions and unit tags; not the "eur" inside "Heuristic"
        ("eur", {"customer_stats:avg_order_amount", "customer_stats:lifetime_value"}),
        ("pii", {"customer_stats:email"}),
        ("unit=minutes", {"driver_stats:avg_delivery_time_min"}),
        (
            "team=logistics",
            {
                "driver_stats:avg_rating",
                "driver_stats:total_trips",
                "driver_stats:acceptance_rate",
                "driver_stats:avg_delivery_time_min",
            },
        ),
        ("no such feature anywhere", set()),
    ],
)
def test_search_by_name_description_or_tag(
    catalog: FeatureCatalog, text: str, refs: set[str]
) -> None:
    assert {f.ref for f in search(catalog, text)} == refs


def test_search_on_a_view_description_finds_its_features(
    catalog: FeatureCatalog,
) -> None:
    found = {f.ref for f in search(catalog, "snapshotted daily")}
    assert found == {f.ref for f in catalog.features() if f.view == "customer_stats"}


def test_empty_search_is_an_error(catalog: FeatureCatalog) -> None:
    with pytest.raises(ValueError, match="search text is empty"):
        search(catalog, "  ")


def test_naive_now_is_rejected(applied_local_store) -> None:
    with pytest.raises(ValueError, match="now"):
        build_catalog(applied_local_store, now=TEST_END.replace(tzinfo=None))


def test_freshness_watermark_and_cli(
    local_store, local_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """After a materialization the watermark is the window end; the view is
    fresh up to exactly ttl after it and stale one second later (the rule of
    feature_platform.freshness); the other view was never materialized."""
    from feature_platform.materialize import materialize_window

    materialize_window(
        local_store, TEST_END - timedelta(hours=6), TEST_END, views=["driver_stats"]
    )
    ttl = timedelta(hours=6)

    def driver(now):
        catalog = build_catalog(local_store, now=now)
        return next(v for v in catalog.views if v.name == "driver_stats"), catalog

    view, catalog = driver(TEST_END + ttl)
    assert view.last_materialized == TEST_END.isoformat()
    assert view.age_seconds == ttl.total_seconds()
    assert view.freshness == "fresh"
    assert {f.freshness for f in view.features} == {"fresh"}
    customer = next(v for v in catalog.views if v.name == "customer_stats")
    assert customer.freshness == "never materialized"
    assert driver(TEST_END + ttl + timedelta(seconds=1))[0].freshness == "stale"

    # The CLI on the same repo: text, --json, search (exit 1 when nothing matches).
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    assert main(["catalog"]) == 0
    text = capsys.readouterr().out
    assert "driver_stats (batch, online) - Driver performance" in text
    assert "owner logistics@example.com | team logistics" in text
    assert "cadence every_2_hours (0 */2 * * *, every 2h)" in text
    assert f"last materialized {TEST_END.isoformat()}" in text
    assert "never materialized" in text
    assert "lifetime_value" in text and "churn_prediction_service" in text

    assert main(["catalog", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["project"] == local_store.project
    views = {v["name"]: v for v in data["views"]}
    assert set(views) == VIEWS
    assert views["driver_stats"]["last_materialized"] == TEST_END.isoformat()
    assert len(views["customer_stats"]["features"]) == 6

    assert main(["catalog", "search", "pii", "--json"]) == 0
    assert [f["ref"] for f in json.loads(capsys.readouterr().out)] == [
        "customer_stats:email"
    ]
    assert main(["catalog", "--json", "search", "rating"]) == 0
    assert [f["ref"] for f in json.loads(capsys.readouterr().out)] == [
        "driver_stats:avg_rating"
    ]
    assert main(["catalog", "search", "rating"]) == 0
    assert "1 feature(s) match 'rating'" in capsys.readouterr().out
    assert main(["catalog", "search", "zzz-nothing"]) == 1
    assert "no feature matches 'zzz-nothing'" in capsys.readouterr().out
    assert main(["catalog", "search", " "]) == 2
    assert "TEXT is empty" in capsys.readouterr().err


def test_models_come_from_the_mlflow_model_registry(
    local_store, tmp_path: Path
) -> None:
    """The models column reads the profile's MLflow model registry (a real
    embedded tracking store) through feature_platform.lineage: a version
    consumes the feature references it was registered with."""
    from mlflow import MlflowClient

    from feature_platform.lineage import (
        FEATURE_REFS_TAG,
        FEATURE_SERVICE_TAG,
        tracking_uri_of,
    )

    before = build_catalog(local_store, now=TEST_END)
    assert before.lineage_error and "no MLflow store" in before.lineage_error
    assert all(f.models == () for f in before.features())

    uri = tracking_uri_of(store=local_store)
    assert uri.startswith("sqlite:///")
    Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("catalog", (tmp_path / "a").as_uri())
    run = client.create_run(experiment).info.run_id

    def register(name: str, service: str, refs: list[str]) -> None:
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
        client.create_model_version(
            name,
            source=(tmp_path / "a" / "model").as_uri(),
            run_id=run,
            tags={FEATURE_SERVICE_TAG: service, FEATURE_REFS_TAG: ",".join(refs)},
        )

    churn = ["customer_stats:total_orders", "customer_stats:lifetime_value"]
    register("churn_prediction_service", "churn_prediction_service", churn)
    register("churn_prediction_service", "churn_prediction_service", churn)
    client.set_registered_model_alias("churn_prediction_service", "champion", "2")
    register("matching", "driver_matching_service", ["driver_stats:avg_rating"])

    catalog = build_catalog(local_store, now=TEST_END)
    assert catalog.lineage_error is None and catalog.lineage == uri
    by_ref = {f.ref: f.models for f in catalog.features()}
    assert by_ref["customer_stats:lifetime_value"] == (
        "churn_prediction_service v2 @champion",
        "churn_prediction_service v1",
    )
    assert by_ref["driver_stats:avg_rating"] == ("matching v1",)
    # In the service but not in what the model was trained on: not consumed.
    assert by_ref["customer_stats:avg_order_amount"] == ()
    assert by_ref["customer_stats:email"] == ()
    from feature_platform.catalog import format_catalog

    text = format_catalog(catalog)
    assert "churn_prediction_service v2 @champion, v1" in text


def test_request_kinds_of_feast_types() -> None:
    """The guard checks scalar JSON values; other Feast types are left to Feast
    by name, and something that is no Feast type is an error, not unchecked."""
    from feast.types import Array, Bool, Bytes, Float32, Int64, String

    from feature_platform.serving.snapshot import _kind

    assert [_kind(t) for t in (Int64, Float32, String, Bool)] == [
        "int64",
        "float",
        "string",
        "bool",
    ]
    assert _kind(Array(Int64)) == "any" and _kind(Bytes) == "any"
    with pytest.raises(AttributeError):
        _kind("Int64")


def test_on_demand_view_shows_inputs_owner_and_transformation(
    catalog: FeatureCatalog, applied_local_store, monkeypatch, capsys
) -> None:
    """The on-demand view: its stored inputs, request fields, owner, mode and
    the transformation's source (what Feast stores: the repo's function)."""
    import inspect

    from feature_platform.profiles import repo_module

    [view] = [v for v in catalog.views if v.kind == "on_demand"]
    assert view.name == "checkout_value"
    assert view.sources == (
        "customer_stats:avg_order_amount",
        "customer_stats:lifetime_value",
        "customer_stats:total_orders",
    )
    assert view.request_fields == {"cart_value": "Float64"}
    assert view.owner == "growth@example.com" and view.team == "growth"
    assert view.mode == "python"
    fn = repo_module("transformations", repo=REPO_SRC).checkout_value
    assert view.transformation == inspect.getsource(fn)
    assert view.feature_services == ("churn_prediction_service_v2",)

    # The CLI: text names inputs and request fields; --json carries the source.
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(applied_local_store.repo_path))
    assert main(["catalog"]) == 0
    text = capsys.readouterr().out
    assert (
        "computed at read time (python mode) from customer_stats:avg_order_amount, "
        "customer_stats:lifetime_value, customer_stats:total_orders | request "
        "fields cart_value (Float64)" in text
    )
    assert main(["catalog", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [entry] = [v for v in data["views"] if v["name"] == "checkout_value"]
    assert entry["transformation"] == inspect.getsource(fn)
    assert entry["request_fields"] == {"cart_value": "Float64"}
