"""The fast PIT offline store plugin through Feast's own get_historical_features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import copy_repo
from tests.reference import pit_join as reference_pit_join
from tests.unit.test_pit_join import ENTITIES, T0, TRAPS, D, H

CHURN = ["total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score"]


def _use_store(repo: Path, store_type: str) -> None:
    yaml = repo / "feature_store.yaml"
    text = yaml.read_text()
    assert "type: duckdb" in text or "FastPitOfflineStore" in text
    text = text.replace("type: duckdb", f"type: {store_type}")
    text = text.replace(
        "type: feature_platform.pit_store.FastPitOfflineStore", f"type: {store_type}"
    )
    yaml.write_text(text)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory):
    """(fast store, plain DuckDB store) over the same trap data."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    source = TRAPS.rename(columns={"label": "preferred_category"}).assign(
        lifetime_value=lambda d: d["total_orders"] * 3.5,
        churn_risk_score=np.float32(0.25),
        email="x@example.com",
    )
    rng = np.random.default_rng(5)
    drivers = pd.DataFrame(
        {
            "driver_id": rng.integers(1, 6, 80),
            "event_timestamp": T0 - pd.to_timedelta(rng.integers(0, 30, 80), unit="h"),
            "avg_rating": rng.random(80) * 5,
            "total_trips": rng.integers(0, 100, 80),
            "acceptance_rate": rng.random(80),
            "avg_delivery_time_min": rng.random(80).astype("float32") * 30,
        }
    ).drop_duplicates(["driver_id", "event_timestamp"])
    out = []
    for kind in ("feature_platform.pit_store.FastPitOfflineStore", "duckdb"):
        repo = copy_repo(tmp_path_factory.mktemp("pitstore") / "repo")
        _use_store(repo, kind)
        (repo / "data").mkdir()
        source.to_parquet(repo / "data" / "customer_stats.parquet", index=False)
        drivers.to_parquet(repo / "data" / "driver_stats.parquet", index=False)
        store = get_store("local", repo=repo)
        apply_definitions(store)
        out.append(store)
    return out[0], out[1], source, drivers


def test_plugin_is_used_and_matches_reference(stores) -> None:
    from feature_platform.pit_store import FastPitRetrievalJob

    fast, _, source, _ = stores
    job = fast.get_historical_features(
        entity_df=ENTITIES,
        features=[f"customer_stats:{f}" for f in CHURN],
        filter_by_created_timestamp=True,
    )
    assert isinstance(job, FastPitRetrievalJob)
    got = job.to_df()
    expected = reference_pit_join(ENTITIES, source, "customer_id", CHURN, ttl=3 * D)
    assert len(got) == len(ENTITIES)
    assert list(got["customer_id"]) == list(ENTITIES["customer_id"])  # order kept
    for col in CHURN:
        a = pd.to_numeric(got[col], errors="coerce").astype("float64")
        b = pd.to_numeric(expected[col], errors="coerce").astype("float64")
        pd.testing.assert_series_equal(a, b, check_names=False)


def test_each_result_owns_its_entity_columns(stores) -> None:
    """``to_df`` hands its frame over uncopied: writing into one result's
    entity columns changes neither the next result of the job nor its input."""
    fast, _, _, _ = stores
    entities = ENTITIES.copy()
    job = fast.get_historical_features(
        entity_df=entities,
        features=[f"customer_stats:{f}" for f in CHURN],
        filter_by_created_timestamp=True,
    )
    first = job.to_df()
    first_orders = first["total_orders"].copy()
    first.loc[:, "customer_id"] = -1  # in place, into the existing column
    second = job.to_df()
    assert list(second["customer_id"]) == list(ENTITIES["customer_id"])
    pd.testing.assert_series_equal(second["total_orders"], first_orders)
    pd.testing.assert_frame_equal(entities, ENTITIES)


def test_training_set_through_the_plugin(stores) -> None:
    from feature_platform.training import build_training_set

    fast, _, source, _ = stores
    got = build_training_set(fast, ENTITIES)
    expected = reference_pit_join(ENTITIES, source, "customer_id", CHURN, ttl=3 * D)
    key = ["event_timestamp", "customer_id", "churned"]
    got = got.sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    for col in CHURN:
        a = pd.to_numeric(got[col], errors="coerce").astype("float64")
        b = pd.to_numeric(expected[col], errors="coerce").astype("float64")
        pd.testing.assert_series_equal(a, b, check_names=False)


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_two_views_equal_duckdb_store(stores, full_feature_names: bool) -> None:
    """driver_matching_service (two views, two keys) equals Feast's DuckDB store."""
    fast, plain, _, drivers = stores
    entities = pd.DataFrame(
        {
            "customer_id": [1, 2, 4, 6, 999, 1],
            "driver_id": [1, 2, 3, 4, 5, 77],
            "event_timestamp": [T0, T0, T0 + 3 * H, T0, T0, T0 - 3 * H],
        }
    )
    out = []
    for store in (fast, plain):
        df = store.get_historical_features(
            entity_df=entities,
            features=store.get_feature_service("driver_matching_service"),
            full_feature_names=full_feature_names,
        ).to_df()
        df = df.sort_values(["event_timestamp", "customer_id", "driver_id"])
        out.append(df.reset_index(drop=True))
    got, expected = out
    assert sorted(got.columns) == sorted(expected.columns)
    features = [c for c in expected.columns if c not in entities.columns]
    assert len(features) == 4
    for col in features:
        a, b = got[col], expected[col]
        if a.dtype == object or b.dtype == object:
            assert (
                a.where(a.notna(), None).tolist() == b.where(b.notna(), None).tolist()
            )
        else:
            pd.testing.assert_series_equal(
                a.astype("float64"), b.astype("float64"), check_names=False
            )


def test_unsupported_requests_fall_back_to_duckdb(stores) -> None:
    """Join key aliasing is left to Feast's DuckDB store."""
    from feature_platform.pit_store import _plan

    fast, _, _, _ = stores
    view = fast.get_feature_view("customer_stats")
    refs = ["customer_stats:total_orders"]
    assert _plan([view], refs) is not None
    aliased = view.with_join_key_map({"customer_id": "buyer_id"})
    assert _plan([aliased], refs) is None
    assert _plan([view], ["total_orders"]) is None  # not a view:feature ref


def test_create_saved_dataset_through_the_plugin(stores, tmp_path: Path) -> None:
    """Feast's saved datasets work on the plugin: written, registered, read back
    equal to the retrieval, and not overwritten unless asked."""
    from feast.errors import SavedDatasetLocationAlreadyExists
    from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

    from feature_platform.pit_store import FastPitRetrievalJob

    fast, _, _, _ = stores
    refs = [f"customer_stats:{f}" for f in CHURN]

    def job():
        out = fast.get_historical_features(
            entity_df=ENTITIES, features=refs, filter_by_created_timestamp=True
        )
        assert isinstance(out, FastPitRetrievalJob)
        return out

    path = tmp_path / "saved.parquet"
    storage = SavedDatasetFileStorage(path=str(path))
    saved = fast.create_saved_dataset(
        from_=job(), name="pit_saved", storage=storage, allow_overwrite=True
    )
    assert saved.features == refs and saved.join_keys == ["customer_id"]
    assert saved.min_event_timestamp == ENTITIES["event_timestamp"].min()
    expected = job().to_df()
    got = fast.get_saved_dataset("pit_saved").to_df()
    assert len(got) == len(expected) == len(ENTITIES)
    # A saved dataset keeps join keys, timestamp and features (Feast's rule).
    key = ["customer_id", "event_timestamp", *CHURN]
    got = got.sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    assert list(got["customer_id"]) == list(expected["customer_id"])
    for col in CHURN:
        a = pd.to_numeric(got[col], errors="coerce").astype("float64")
        b = pd.to_numeric(expected[col], errors="coerce").astype("float64")
        pd.testing.assert_series_equal(a, b, check_names=False)
    assert expected["total_orders"].notna().sum() > 3  # not vacuous
    with pytest.raises(SavedDatasetLocationAlreadyExists):
        fast.create_saved_dataset(from_=job(), name="pit_again", storage=storage)
