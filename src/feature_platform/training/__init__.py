"""Point-in-time training set -> split -> train -> evaluate -> model -> publish.

The job is a few typed steps, shared by every way of running it -
``run_training`` (the CLI's ``feature-platform train``, the Airflow DAG), the
KFP components and the notebook::

    training_set = prepare_training_set(store, labels)  # or as_training_set(...)
    split = split_training_set(training_set)
    trained = train(training_set, split)  # metadata: model_metadata(), metrics null
    evaluated = evaluate(trained, split)  # metrics filled in
    log_training_run(store, training_set, split, evaluated)  # MLflow run + registry
    load_registered_model("churn_prediction_service", "champion")  # to predict

A notebook builds the frame with Feast's own ``store.get_historical_features``
and hands it to ``as_training_set``.

Leakage rules enforced here:

* features are read only through a feature service (the model's contract);
* the join is *as known at* the entity timestamp: a feature row counts only if
  its event time and its created (arrival) time are both <= the entity
  timestamp (``filter_by_created_timestamp=True``), so late-arriving rows cannot
  leak into training;
* entity rows outside the training window are dropped before the join;
* the evaluation split is strictly later in time than the training split, and
  ``evaluate`` refuses a split other than the one the model was trained on.
"""

from __future__ import annotations

from feature_platform.training.artifact import (
    DEFAULT_THRESHOLD,
    Gate,
    GateError,
    ModelBundle,
    ModelMetadata,
    load_model,
    model_metadata,
    model_requirements,
    passes_gate,
    predict,
    predict_online,
    publish_model,
    save_model,
)
from feature_platform.training.dataset import (
    DEFAULT_LABEL,
    DEFAULT_SERVICE,
    ENTITY_TS,
    Split,
    TrainingSet,
    TrainingSetSummary,
    TrainingWindow,
    as_training_set,
    build_training_set,
    describe_training_set,
    feature_service_features,
    prepare_training_set,
    read_training_set,
    split_training_set,
    time_split,
    write_training_set,
)
from feature_platform.training.model import (
    ConfusionMatrix,
    Evaluation,
    Hyperparameters,
    RocCurve,
    evaluate_model,
    hyperparameters,
    roc_curve_points,
    train_model,
)
from feature_platform.training.registry import (
    RegisteredVersion,
    feast_mlflow,
    feature_refs,
    load_registered_model,
    log_training_run,
)
from feature_platform.training.steps import (
    Evaluated,
    RowCounts,
    TrainingSummary,
    evaluate,
    run_training,
    train,
    training_summary,
)

__all__ = [
    "DEFAULT_LABEL",
    "DEFAULT_SERVICE",
    "DEFAULT_THRESHOLD",
    "ENTITY_TS",
    "ConfusionMatrix",
    "Evaluated",
    "Evaluation",
    "Gate",
    "GateError",
    "Hyperparameters",
    "ModelBundle",
    "ModelMetadata",
    "RegisteredVersion",
    "RocCurve",
    "RowCounts",
    "Split",
    "TrainingSet",
    "TrainingSetSummary",
    "TrainingSummary",
    "TrainingWindow",
    "as_training_set",
    "build_training_set",
    "describe_training_set",
    "evaluate",
    "evaluate_model",
    "feast_mlflow",
    "feature_refs",
    "feature_service_features",
    "hyperparameters",
    "load_model",
    "load_registered_model",
    "log_training_run",
    "model_metadata",
    "model_requirements",
    "passes_gate",
    "predict",
    "predict_online",
    "prepare_training_set",
    "publish_model",
    "read_training_set",
    "roc_curve_points",
    "run_training",
    "save_model",
    "split_training_set",
    "time_split",
    "train",
    "train_model",
    "training_summary",
    "write_training_set",
]
