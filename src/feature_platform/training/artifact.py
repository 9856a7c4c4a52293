"""The model artifact: one metadata builder, save/load, the gate, publish, predict.

A saved model is a directory in MLflow's sklearn format (``MLmodel``,
``model.pkl``, requirements) whose ``MLmodel`` file holds the model's
:class:`ModelMetadata` (``metadata:``): the same format the training run logs
to the MLflow tracking server and the model registry serves
(``training.registry``), so a model is stored in one format only. The metadata
is always built by :func:`model_metadata`, so ``run_training``, the KFP
components and a notebook write the same keys.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from feature_platform.errors import BadInput, GateError
from feature_platform.training.dataset import (
    ENTITY_TS,
    Split,
    TrainingSet,
    TrainingWindow,
)
from feature_platform.training.model import Evaluation, Hyperparameters, RocCurve
from feature_platform.utc import utc_now

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from feast import FeatureStore
    from sklearn.pipeline import Pipeline

__all__ = [
    "DEFAULT_THRESHOLD",
    "Gate",
    "GateError",
    "ModelBundle",
    "ModelMetadata",
    "load_model",
    "model_metadata",
    "model_requirements",
    "passes_gate",
    "predict",
    "predict_online",
    "publish_model",
    "quiet_mlflow",
    "save_model",
]

DEFAULT_THRESHOLD = 0.75  # ROC AUC a model needs to be published


class Gate(TypedDict):
    metric: str
    value: float
    threshold: float


class ModelMetadata(TypedDict):
    """``metadata.json`` of a saved model (``metrics`` is null until evaluated)."""

    feature_service: str
    features: list[str]
    label: str
    training_window: TrainingWindow
    test_fraction: float
    test_split_starts_at: str
    train_rows: int
    test_rows: int
    train_ts_max: str
    test_ts_min: str
    project: str
    registry: str
    hyperparameters: Hyperparameters
    metrics: Evaluation | None
    created_at: str
    published: bool
    published_at: NotRequired[str]
    gate: NotRequired[Gate]


def model_metadata(
    training_set: TrainingSet,
    split: Split,
    hyperparameters: Hyperparameters,
    metrics: Evaluation | None = None,
) -> ModelMetadata:
    """The one builder of a model's metadata (every path records the same facts)."""
    return {
        "feature_service": training_set.feature_service,
        "features": list(training_set.features),
        "label": training_set.label,
        "training_window": {
            "start": training_set.window["start"],
            "end": training_set.window["end"],
        },
        "test_fraction": split.test_fraction,
        "test_split_starts_at": split.cutoff.isoformat(),
        "train_rows": len(split.train),
        "test_rows": len(split.test),
        "train_ts_max": split.train[ENTITY_TS].max().isoformat(),
        "test_ts_min": split.test[ENTITY_TS].min().isoformat(),
        "project": training_set.project,
        "registry": training_set.registry,
        "hyperparameters": hyperparameters,
        "metrics": metrics,
        "created_at": utc_now().isoformat(),
        "published": False,
    }


@dataclass
class ModelBundle:
    """A fitted model and its metadata."""

    model: Pipeline
    metadata: ModelMetadata


@dataclass(frozen=True)
class Evaluated:
    """An evaluated model: its bundle (metrics in the metadata) and ROC curve."""

    bundle: ModelBundle
    metrics: Evaluation
    roc_curve: RocCurve


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's log lines while saving a model say nothing a user can act on:
    cloudpickle is chosen on purpose (``training.registry``), a uv virtualenv
    has no pip to pin, and Feast's ``log_model`` passes ``artifact_path``
    positionally (deprecated in MLflow 3). Errors still show."""
    import logging

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def model_requirements() -> list[str]:
    """What loading a saved model needs (given to MLflow, so it does not spend
    seconds inferring them in a subprocess)."""
    import cloudpickle
    import numpy
    import sklearn

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={numpy.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]


def save_model(bundle: ModelBundle, directory: Path | str) -> Path:
    """Write the model in MLflow's sklearn format, metadata in ``MLmodel``.

    An existing model directory (one with an ``MLmodel`` file) is replaced;
    any other non-empty directory is refused.
    """
    import mlflow.sklearn

    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / "MLmodel").is_file():
            raise BadInput(
                f"{directory} is not empty and holds no model (no MLmodel file): "
                "not overwriting it"
            )
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with quiet_mlflow():
        mlflow.sklearn.save_model(
            bundle.model,
            str(directory),
            metadata=json.loads(json.dumps(bundle.metadata, default=str)),
            serialization_format="cloudpickle",  # why not skops: training.registry
            pip_requirements=model_requirements(),
        )
    return directory


def load_model(directory: Path | str) -> ModelBundle:
    """Read a model written by :func:`save_model` (or downloaded from the
    registry: ``training.registry.load_registered_model``)."""
    import mlflow.sklearn
    from mlflow.models import Model

    directory = Path(directory)
    if not (directory / "MLmodel").is_file():
        raise FileNotFoundError(f"{directory} holds no model (no MLmodel file)")
    metadata = Model.load(str(directory / "MLmodel")).metadata or {}
    if "feature_service" not in metadata:
        raise BadInput(f"{directory}: the model has no feature_platform metadata")
    return ModelBundle(
        model=mlflow.sklearn.load_model(str(directory)),
        metadata=cast(ModelMetadata, metadata),
    )


def passes_gate(roc_auc: float, threshold: float) -> bool:
    """The publish gate: ``roc_auc >= threshold`` (NaN never passes)."""
    return roc_auc >= threshold


def publish_model(
    source: Path | str,
    destination: Path | str,
    *,
    roc_auc: float,
    threshold: float,
) -> ModelMetadata:
    """Copy a saved model to ``destination`` marked as published, if it passes the gate.

    The gate is checked here as well as by the pipeline's condition, so a
    runner that ignored the condition still cannot publish a weak model; and
    ``roc_auc`` must be the one the model was evaluated with. Returns the
    published metadata.
    """
    if not passes_gate(roc_auc, threshold):
        raise GateError(f"ROC AUC {roc_auc} is below the gate threshold {threshold}")
    bundle = load_model(source)
    evaluated = bundle.metadata.get("metrics")
    if evaluated and evaluated["roc_auc"] != roc_auc:
        raise BadInput(
            f"gate value {roc_auc} is not the model's evaluated ROC AUC "
            f"{evaluated['roc_auc']}"
        )
    metadata = bundle.metadata.copy()
    metadata["published"] = True
    metadata["published_at"] = utc_now().isoformat()
    metadata["gate"] = {"metric": "roc_auc", "value": roc_auc, "threshold": threshold}
    save_model(ModelBundle(bundle.model, metadata), destination)
    return metadata


def predict(bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    """Churn probabilities for rows holding the model's features (any order)."""
    x = frame[bundle.metadata["features"]].astype("float64").to_numpy()
    return bundle.model.predict_proba(x)[:, 1]  # type: ignore[no-any-return]


def predict_online(
    store: FeatureStore, bundle: ModelBundle, entity_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Fetch online features through the model's feature service and score them."""
    import pandas as pd

    service = bundle.metadata["feature_service"]
    online = store.get_online_features(
        features=store.get_feature_service(service), entity_rows=entity_rows
    ).to_df()
    out = online.assign(churn_probability=predict(bundle, online).round(4))
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in out.to_dict(orient="records")
    ]
