"""Point-in-time training sets through Feast's BigQuery offline store (the
production profile, against the emulator) equal the local profile's result on
the same data and the brute-force reference, cell for cell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.production.conftest import JobCounter, environment, production_store
from tests.reference import pit_join

pytestmark = pytest.mark.production

SERVICE = "churn_prediction_service"
FEATURES = ["total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score"]
TTL = pd.Timedelta(days=3)


def entity_rows(repo: Path) -> pd.DataFrame:
    """Labelled rows of the sample data, plus the edges a join gets wrong first:
    rows exactly at a feature row's event time, exactly ttl after it, one
    microsecond past ttl, and exactly at a late row's created time (as known at
    that instant it is visible), for restated (same event, later created) rows
    too; and an unknown customer."""
    labels = pd.read_parquet(repo / "data" / "churn_labels.parquet")
    source = pd.read_parquet(repo / "data" / "customer_stats.parquet")
    rows = [labels.sample(250, random_state=3)[["customer_id", "event_timestamp"]]]
    restated = source[source.duplicated(["customer_id", "event_timestamp"], keep=False)]
    late = source[source["created_timestamp"] > source["event_timestamp"]]
    picks = pd.concat(
        [restated.head(20), late.head(20), source.sample(20, random_state=5)]
    )
    for shift in (pd.Timedelta(0), TTL, TTL + pd.Timedelta(microseconds=1)):
        rows.append(
            picks[["customer_id"]].assign(
                event_timestamp=picks["event_timestamp"] + shift
            )
        )
    rows.append(
        picks[["customer_id"]].assign(event_timestamp=picks["created_timestamp"])
    )
    rows.append(
        pd.DataFrame(
            {"customer_id": [-1], "event_timestamp": [labels["event_timestamp"].max()]}
        )
    )
    out = pd.concat(rows, ignore_index=True)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["customer_id", "event_timestamp", *FEATURES]].copy()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    out["event_timestamp"] = out["event_timestamp"].dt.as_unit("us")
    out["customer_id"] = out["customer_id"].astype("int64")
    for col in FEATURES:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    # float32 churn_risk_score: compare at float32 precision on every side
    out["churn_risk_score"] = out["churn_risk_score"].astype("float32")
    return out.sort_values(
        ["event_timestamp", "customer_id", *FEATURES], na_position="first"
    ).reset_index(drop=True)


@pytest.fixture(scope="module")
def stores(
    seeded_repo: Path, production_env: dict[str, str], applied_local_store_of_seeded
):
    with environment(production_env) as mp:
        yield production_store(seeded_repo, mp, "pit"), applied_local_store_of_seeded


@pytest.fixture(scope="module")
def applied_local_store_of_seeded(seeded_repo: Path):
    """The local profile (DuckDB over the same parquet files) of the same repo."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    with environment({"FEATURE_PLATFORM_PROJECT": "feature_platform"}):
        store = get_store("local", repo=seeded_repo)
        apply_definitions(store)
        return store


@pytest.mark.parametrize("as_known_at", [False, True], ids=["default", "as_known_at"])
def test_training_set_equals_local_profile_and_reference(
    stores, seeded_repo: Path, as_known_at: bool, results: dict
) -> None:
    production, local = stores
    rows = entity_rows(seeded_repo)
    source = pd.read_parquet(seeded_repo / "data" / "customer_stats.parquet")
    assert production.config.offline_store.type.endswith("PlatformBigQueryOfflineStore")

    def training_set(store):
        job = store.get_historical_features(
            entity_df=rows.copy(),
            features=store.get_feature_service(SERVICE),
            filter_by_created_timestamp=as_known_at,
        )
        return job.to_df()

    counter = JobCounter().start()
    got = normalized(training_set(production))
    jobs = counter.stop()
    expected_local = normalized(training_set(local))
    expected = normalized(
        pit_join(
            rows, source, "customer_id", FEATURES, ttl=TTL, as_known_at=as_known_at
        )
    )
    assert len(got) == len(rows)
    pd.testing.assert_frame_equal(got, expected_local, check_dtype=False)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    # Values were found (an empty join would equal an empty reference), and
    # the unknown customer kept its row, with nulls.
    assert got[FEATURES].notna().all(axis=1).sum() > len(rows) // 2
    assert got.loc[got["customer_id"] == -1, FEATURES].isna().all(axis=None)
    # One entity upload (load job) and one point-in-time script per build.
    assert jobs["by_type"] == {"load": 1, "query": 1}, jobs
    name = "as_known_at" if as_known_at else "default"
    results[f"training_set_{name}"] = {
        **jobs,
        "entity_rows": len(rows),
        "cells_compared": int(got.size),
        "equal_to": ["local profile (DuckDB)", "tests/reference.py pit_join"],
    }
