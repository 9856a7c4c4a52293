"""The training job as steps, and ``run_training``, which calls exactly them.

    prepare_training_set -> split_training_set -> train -> evaluate
    -> log_training_run (MLflow run + registered model version, ``champion``
       alias if it passes the gate) [-> save_model -> publish_model]

The KFP components (``pipelines/churn_training_pipeline.py``) call the same
steps, one or two per component, and a notebook calls them on the frame it got
from ``store.get_historical_features`` (via ``as_training_set``): every path
records the same metadata (``model_metadata``) and logs through the one
``training.registry.log_training_run``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from feature_platform.errors import BadInput
from feature_platform.training.artifact import (
    DEFAULT_THRESHOLD,
    Evaluated,
    ModelBundle,
    model_metadata,
    passes_gate,
    publish_model,
    save_model,
)
from feature_platform.training.dataset import (
    DEFAULT_LABEL,
    DEFAULT_SERVICE,
    ENTITY_TS,
    Split,
    TrainingSet,
    TrainingWindow,
    prepare_training_set,
    split_training_set,
)
from feature_platform.training.model import (
    Evaluation,
    Hyperparameters,
    evaluate_model,
    hyperparameters,
    roc_curve_points,
    train_model,
)
from feature_platform.training.registry import RegisteredVersion, log_training_run

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

__all__ = [
    "Evaluated",
    "RowCounts",
    "TrainingSummary",
    "evaluate",
    "run_training",
    "train",
    "training_summary",
]


class RowCounts(TypedDict):
    total: int
    train: int
    test: int


class TrainingSummary(TypedDict):
    """What ``run_training`` returns (the CLI prints it, the DAG passes it on)."""

    registered: RegisteredVersion
    model_dir: str | None
    feature_service: str
    features: list[str]
    rows: RowCounts
    rows_with_null_features: float
    training_window: TrainingWindow
    test_split_starts_at: str
    metrics: Evaluation
    published: bool
    published_to: str | None


def train(
    training_set: TrainingSet,
    split: Split,
    params: Hyperparameters | None = None,
) -> ModelBundle:
    """Step 3: fit on the earlier rows; the bundle's metrics stay null until evaluated.

    The features are the training set's, i.e. the feature service's, in its
    order: the model's contract is the service, not whatever columns are there.
    """
    params = params or hyperparameters()
    model = train_model(
        split.train, training_set.features, label=training_set.label, **params
    )
    return ModelBundle(model, model_metadata(training_set, split, params))


def evaluate(bundle: ModelBundle, split: Split) -> Evaluated:
    """Step 4: score the held-out rows, strictly later than every training row.

    Fails when ``split`` is not the split the model was trained on (a KFP
    component re-derives it from the dataset: a different dataset or
    ``test_fraction`` would evaluate on rows the model may have seen).
    """
    meta = bundle.metadata
    cutoff = split.cutoff.isoformat()
    if cutoff != meta["test_split_starts_at"] or len(split.train) != meta["train_rows"]:
        raise BadInput(
            f"dataset split at {cutoff} ({len(split.train)} train rows) but the "
            f"model was trained with a split at {meta['test_split_starts_at']} "
            f"({meta['train_rows']} train rows): not its dataset"
        )
    if not split.test[ENTITY_TS].min() > split.train[ENTITY_TS].max():
        raise BadInput("held-out rows are not strictly later than training rows")
    features, label = meta["features"], meta["label"]
    metrics = evaluate_model(bundle.model, split.test, features, label=label)
    roc = roc_curve_points(bundle.model, split.test, features, label=label)
    evaluated = meta.copy()
    evaluated["metrics"] = metrics
    return Evaluated(ModelBundle(bundle.model, evaluated), metrics, roc)


def training_summary(
    training_set: TrainingSet,
    split: Split,
    evaluated: Evaluated,
    *,
    registered: RegisteredVersion,
    model_dir: Path | str | None = None,
    published_to: Path | str | None = None,
) -> TrainingSummary:
    """The JSON-able summary of a training run."""
    data, features = training_set.data, training_set.features
    null_rate = float(data[features].isna().any(axis=1).mean())
    return {
        "registered": registered,
        "model_dir": None if model_dir is None else str(model_dir),
        "feature_service": training_set.feature_service,
        "features": list(features),
        "rows": {
            "total": len(data),
            "train": len(split.train),
            "test": len(split.test),
        },
        "rows_with_null_features": round(null_rate, 4),
        "training_window": training_set.window,
        "test_split_starts_at": split.cutoff.isoformat(),
        "metrics": evaluated.metrics,
        "published": published_to is not None,
        "published_to": None if published_to is None else str(published_to),
    }


def run_training(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    *,
    model_dir: Path | str | None = None,
    feature_service: str = DEFAULT_SERVICE,
    label: str = DEFAULT_LABEL,
    start: datetime | None = None,
    end: datetime | None = None,
    test_fraction: float = 0.25,
    n_estimators: int = 200,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    publish_dir: Path | str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> TrainingSummary:
    """The whole training job: train, evaluate, log the MLflow run and register
    the model version (``log_training_run``; the alias ``champion`` moves to it
    when its ROC AUC clears ``threshold``), and summarize.

    The registry is the model's home. ``model_dir`` also writes the model there
    (the same MLflow format, for a consumer without the tracking server); with
    ``publish_dir`` (needs ``model_dir``) a model that clears ``threshold`` is
    also published there (the KFP pipeline's gate); one below it is not.
    """
    if publish_dir is not None and model_dir is None:
        raise BadInput("publish_dir needs model_dir (publish copies that model)")
    training_set = prepare_training_set(
        store,
        entity_df,
        feature_service=feature_service,
        label=label,
        start=start,
        end=end,
    )
    split = split_training_set(training_set, test_fraction=test_fraction)
    params = hyperparameters(
        n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth
    )
    evaluated = evaluate(train(training_set, split, params), split)
    registered = log_training_run(
        store, training_set, split, evaluated, threshold=threshold
    )
    published_to = None
    if model_dir is not None:
        save_model(evaluated.bundle, model_dir)
        roc_auc = evaluated.metrics["roc_auc"]
        if publish_dir is not None and passes_gate(roc_auc, threshold):
            publish_model(model_dir, publish_dir, roc_auc=roc_auc, threshold=threshold)
            published_to = publish_dir
    return training_summary(
        training_set,
        split,
        evaluated,
        registered=registered,
        model_dir=model_dir,
        published_to=published_to,
    )
