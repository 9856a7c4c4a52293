"""Training on the production profile: ``run_training`` (the CLI's and the
training DAG's path) registers the model in MLflow, and the KFP pipeline runs
under kfp.local; both read their training set from BigQuery (the emulator)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TEST_END
from tests.production.conftest import JobCounter, environment, production_store

pytestmark = pytest.mark.production

SERVICE = "churn_prediction_service"
WINDOW_END = TEST_END - timedelta(days=1)
WINDOW_START = WINDOW_END - timedelta(days=15)


@pytest.fixture(scope="module")
def store(seeded_repo: Path, production_env: dict[str, str]):
    with environment(production_env) as mp:
        store = production_store(seeded_repo, mp, "train")
        try:
            yield store
        finally:
            store.teardown()


def test_training_registers_the_model_in_mlflow(
    store, seeded_repo: Path, tmp_path: Path, production_env: dict[str, str]
) -> None:
    from feature_platform.lineage import model_lineage
    from feature_platform.training import load_registered_model, run_training

    assert store.config.mlflow.tracking_uri == production_env["FP_MLFLOW_TRACKING_URI"]
    labels = pd.read_parquet(seeded_repo / "data" / "churn_labels.parquet")
    counter = JobCounter().start()
    summary = run_training(
        store,
        labels,
        model_dir=tmp_path / "model",
        feature_service=SERVICE,
        start=WINDOW_START,
        end=WINDOW_END,
        n_estimators=50,
    )
    jobs = counter.stop()
    # The training set is one point-in-time join in BigQuery.
    assert jobs["by_type"] == {"load": 1, "query": 1}, jobs
    assert summary["rows"]["train"] > 100
    assert summary["metrics"]["roc_auc"] > 0.6
    registered = summary["registered"]
    assert registered["aliases"] == ["champion"]
    needs = model_lineage(SERVICE, "champion", store=store)
    assert needs.run_id == registered["run_id"]
    assert needs.rows == summary["rows"]
    served = load_registered_model(SERVICE, "champion", store=store)
    assert served.metadata["feature_service"] == SERVICE
    assert served.metadata["features"] == summary["features"]


def test_kfp_pipeline_runs_locally_on_the_production_profile(
    store, seeded_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled pipeline under kfp.local (components in subprocesses that
    inherit the profile's variables): materialize, train, gate, publish."""
    from pipelines.run_local import run_local

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(seeded_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", store.project)
    result = run_local(
        training_start=WINDOW_START.isoformat(),
        training_end=WINDOW_END.isoformat(),
        pipeline_root=tmp_path / "kfp",
        profile="production",
        feature_service=SERVICE,
        threshold=0.6,
        n_estimators=50,
        materialize_end=TEST_END.isoformat(),
        publish_uri=str(tmp_path / "published"),
    )
    assert result["materialized_rows"] > 0
    assert result["roc_auc"] > 0.6 and result["published"] is True
    data = pd.read_parquet(result["dataset"]["path"])
    assert data["event_timestamp"].min() >= WINDOW_START
    assert data["event_timestamp"].max() < WINDOW_END
    store.refresh_registry()
    online = store.get_online_features(
        features=store.get_feature_service(SERVICE),
        entity_rows=[
            {"customer_id": int(c)} for c in data["customer_id"].unique()[:20]
        ],
    ).to_dict()
    assert any(v is not None for v in online["total_orders"])
