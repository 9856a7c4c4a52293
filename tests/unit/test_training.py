"""Training: time split, model quality vs a trivial baseline, artifact round trip."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feature_platform.training import (
    feature_service_features,
    load_model,
    run_training,
    time_split,
)


@pytest.fixture(scope="module")
def trained(applied_local_store, sample_repo: Path, tmp_path_factory):
    labels = pd.read_parquet(sample_repo / "data" / "churn_labels.parquet")
    model_dir = tmp_path_factory.mktemp("model")
    summary = run_training(applied_local_store, labels, model_dir=model_dir)
    return summary, model_dir


def test_time_split_is_strictly_ordered() -> None:
    ts = pd.date_range("2026-01-01", periods=100, freq="h", tz="UTC")
    df = pd.DataFrame({"event_timestamp": ts.repeat(2), "x": range(200)})
    train, test, cutoff = time_split(df, test_fraction=0.25)
    assert train["event_timestamp"].max() < test["event_timestamp"].min()
    assert test["event_timestamp"].min() == cutoff
    assert len(train) + len(test) == len(df)


def test_model_beats_trivial_baseline(trained) -> None:
    summary, _ = trained
    metrics = summary["metrics"]
    assert metrics["rows"] > 100
    assert metrics["roc_auc"] > 0.70  # baseline 0.5
    assert metrics["log_loss"] < metrics["baseline_log_loss"] - 0.05


def test_artifact_metadata_and_online_prediction(trained, applied_local_store) -> None:
    summary, model_dir = trained
    bundle = load_model(model_dir)
    meta = bundle.metadata
    assert meta["feature_service"] == "churn_prediction_service"
    assert meta["features"] == feature_service_features(
        applied_local_store, "churn_prediction_service"
    )
    assert meta["project"] == applied_local_store.project
    assert meta["hyperparameters"]["n_estimators"] == 200
    assert meta["test_split_starts_at"] > meta["training_window"]["start"]
    assert "password" not in meta["registry"]
    assert bundle.model.named_steps["gbc"].n_estimators == 200
    proba = bundle.model.predict_proba(
        [[10, 30.0, 300.0, 0.9], [200, 30.0, 6000.0, 0.1]]
    )
    assert proba[0, 1] > proba[1, 1]  # high risk, few orders -> more likely to churn


def test_missing_label_is_a_clear_error(
    applied_local_store, sample_repo: Path, tmp_path
):
    labels = pd.read_parquet(sample_repo / "data" / "churn_labels.parquet")
    with pytest.raises(ValueError, match="no label column 'churned'"):
        run_training(
            applied_local_store, labels.drop(columns=["churned"]), model_dir=tmp_path
        )
