"""Training: time split, model quality vs a trivial baseline, artifact round trip."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feature_platform.training import (
    GateError,
    ModelMetadata,
    as_training_set,
    evaluate,
    feature_service_features,
    hyperparameters,
    load_model,
    predict,
    prepare_training_set,
    publish_model,
    read_training_set,
    run_training,
    split_training_set,
    time_split,
    train,
    write_training_set,
)

SERVICE = "churn_prediction_service"
UNPUBLISHED_KEYS = set(ModelMetadata.__annotations__) - {"published_at", "gate"}


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


# ------------------------------------------------------------------ the steps


@pytest.fixture(scope="module")
def labels(sample_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(sample_repo / "data" / "churn_labels.parquet")


@pytest.fixture(scope="module")
def training_set(applied_local_store, labels):
    return prepare_training_set(applied_local_store, labels, feature_service=SERVICE)


def test_run_training_metadata_is_the_shared_builders(trained) -> None:
    summary, model_dir = trained
    meta = load_model(model_dir).metadata
    assert set(meta) == UNPUBLISHED_KEYS
    assert meta["metrics"] == summary["metrics"]
    assert meta["test_fraction"] == 0.25
    assert meta["train_rows"] == summary["rows"]["train"]
    assert meta["test_rows"] == summary["rows"]["test"]
    assert meta["train_ts_max"] < meta["test_split_starts_at"] == meta["test_ts_min"]
    assert meta["training_window"] == summary["training_window"]
    assert meta["published"] is False and summary["published"] is False


def test_steps_reproduce_run_training(trained, training_set) -> None:
    """run_training is exactly prepare -> split -> train -> evaluate."""
    _, model_dir = trained
    split = split_training_set(training_set, test_fraction=0.25)
    trained_bundle = train(training_set, split, hyperparameters(n_estimators=200))
    assert trained_bundle.metadata["metrics"] is None  # not evaluated yet
    assert set(trained_bundle.metadata) == UNPUBLISHED_KEYS
    evaluated = evaluate(trained_bundle, split)
    saved = load_model(model_dir).metadata
    assert evaluated.metrics == evaluated.bundle.metadata["metrics"] == saved["metrics"]
    for key in UNPUBLISHED_KEYS - {"created_at"}:
        assert evaluated.bundle.metadata[key] == saved[key], key
    assert len(evaluated.roc_curve["fpr"]) == len(evaluated.roc_curve["tpr"]) > 2


def test_evaluate_refuses_a_split_the_model_was_not_trained_on(training_set) -> None:
    split = split_training_set(training_set, test_fraction=0.25)
    bundle = train(training_set, split, hyperparameters(n_estimators=10))
    other = split_training_set(training_set, test_fraction=0.4)
    with pytest.raises(ValueError, match="not its dataset"):
        evaluate(bundle, other)


def test_training_set_round_trips_through_parquet(training_set, tmp_path) -> None:
    path = write_training_set(training_set, tmp_path / "set.parquet")
    back = read_training_set(path)
    pd.testing.assert_frame_equal(back.data, training_set.data)
    for name in ("feature_service", "features", "label", "window", "project"):
        assert getattr(back, name) == getattr(training_set, name), name
    assert list(pd.read_parquet(path).columns) == list(training_set.data.columns)
    training_set.data.to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="not a training set"):
        read_training_set(tmp_path / "plain.parquet")


def test_a_feast_frame_gives_the_same_training_set(
    applied_local_store, labels, training_set
) -> None:
    """The notebook's path: Feast's own get_historical_features, then the steps."""
    store = applied_local_store
    frame = store.get_historical_features(
        entity_df=labels,
        features=store.get_feature_service(SERVICE),
        filter_by_created_timestamp=True,
    ).to_df()
    from_feast = as_training_set(store, frame, feature_service=SERVICE)
    assert from_feast.features == training_set.features
    assert from_feast.window == training_set.window
    columns = list(training_set.data.columns)
    pd.testing.assert_frame_equal(
        from_feast.data[columns], training_set.data, check_dtype=False
    )


def test_as_training_set_names_what_is_missing(applied_local_store, labels) -> None:
    with pytest.raises(ValueError, match="no label column 'churned'"):
        as_training_set(applied_local_store, labels.drop(columns=["churned"]))
    with pytest.raises(ValueError, match="total_orders"):
        as_training_set(applied_local_store, labels)  # no features joined


def test_run_training_publishes_only_through_the_gate(
    applied_local_store, labels, tmp_path
) -> None:
    summary = run_training(
        applied_local_store,
        labels,
        model_dir=tmp_path / "model",
        n_estimators=20,
        publish_dir=tmp_path / "published",
        threshold=0.6,
    )
    assert summary["published"] is True
    published = load_model(summary["published_to"]).metadata
    assert set(published) == UNPUBLISHED_KEYS | {"published_at", "gate"}
    assert published["gate"]["value"] == summary["metrics"]["roc_auc"]
    blocked = run_training(
        applied_local_store,
        labels,
        model_dir=tmp_path / "model2",
        n_estimators=20,
        publish_dir=tmp_path / "blocked",
        threshold=1.01,
    )
    assert blocked["published"] is False and blocked["published_to"] is None
    assert not (tmp_path / "blocked").exists()


def test_publish_refuses_a_gate_value_that_is_not_the_models(trained, tmp_path):
    _, model_dir = trained
    auc = load_model(model_dir).metadata["metrics"]["roc_auc"]
    with pytest.raises(GateError, match="below the gate threshold"):
        publish_model(model_dir, tmp_path / "a", roc_auc=auc, threshold=auc + 0.01)
    with pytest.raises(ValueError, match="not the model's evaluated ROC AUC"):
        publish_model(model_dir, tmp_path / "b", roc_auc=0.99, threshold=0.5)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_predict_uses_the_models_feature_order(trained, training_set) -> None:
    _, model_dir = trained
    bundle = load_model(model_dir)
    rows = training_set.data.head(20)
    shuffled = rows[list(reversed(rows.columns))]
    assert (predict(bundle, shuffled) == predict(bundle, rows)).all()
