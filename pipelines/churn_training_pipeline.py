"""KFP v2 training pipeline for the churn model.

materialize -> point-in-time training set -> train -> evaluate -> AUC gate -> publish

Every component is a thin typed wrapper over a ``feature_platform`` function and
runs in the one base image built from ``docker/Dockerfile`` (the project is
installed there, so no ``packages_to_install`` at run time). Component bodies
import what they need and call only the installed package, never helpers of
this module: KFP ships just the function's source (kubeflow/pipelines#8792).

Leakage rules (enforced by ``feature_platform.training``):

* features come only through the feature service named by ``feature_service``;
* entity rows outside ``[training_start, training_end)`` are dropped before the
  as-known-at point-in-time join;
* ``train_op`` fits on the earlier part of the window and ``evaluate_op`` scores
  only rows strictly later than every training row (same ``time_split``, the
  cutoff is recorded in the model and re-checked).

Compile (the committed YAML must match this file; a test checks it)::

    .venv/bin/python pipelines/churn_training_pipeline.py

``FEATURE_PLATFORM_IMAGE`` overrides the base image at compile time.
"""

# No ``from __future__ import annotations`` here: KFP reads the component
# signatures' real annotations (Input[Dataset], Output[Model], ...).

import os
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

DEFAULT_IMAGE = "ghcr.io/feature-platform/feature-platform:0.1.0"
IMAGE = os.environ.get("FEATURE_PLATFORM_IMAGE") or DEFAULT_IMAGE
PIPELINE_NAME = "churn-training"
COMPILED = Path(__file__).resolve().parent / "compiled" / "churn_training_pipeline.yaml"

__all__ = [
    "COMPILED",
    "DEFAULT_IMAGE",
    "IMAGE",
    "PIPELINE_NAME",
    "PipelineOutputs",
    "build_training_set_op",
    "churn_training_pipeline",
    "compile_pipeline",
    "evaluate_op",
    "materialize_op",
    "publish_op",
    "train_op",
]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def materialize_op(profile: str, end: str, metrics: Output[Metrics]) -> int:
    """Incrementally materialize every online view up to ``end`` (UTC ISO, or now).

    Returns the rows written; per-view counts go to ``metrics``.
    """
    from feature_platform.config import get_store, parse_utc, utc_now
    from feature_platform.materialize import materialize_incremental

    store = get_store(profile)
    until = parse_utc(end, "end") if end else utc_now().replace(microsecond=0)
    result = materialize_incremental(store, until)
    for view, info in result["views"].items():
        metrics.log_metric(f"rows_{view}", info["rows"])
    metrics.log_metric("rows_total", result["rows_total"])
    print(f"materialized up to {until.isoformat()}: {result['views']}")
    return int(result["rows_total"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def build_training_set_op(
    profile: str,
    feature_service: str,
    labels_uri: str,
    training_start: str,
    training_end: str,
    dataset: Output[Dataset],
):
    """Labelled entity rows -> as-known-at PIT join through the feature service.

    ``labels_uri`` is a parquet of entity keys, a UTC ``event_timestamp`` and the
    ``churned`` label (empty: the profile's sample ``churn_labels.parquet``).
    Writes parquet with row count, label balance and time range as metadata.
    """
    import pandas as pd

    from feature_platform.config import data_dir, get_store, parse_utc
    from feature_platform.training import (
        DEFAULT_LABEL,
        ENTITY_TS,
        build_training_set,
        feature_service_features,
    )

    start = parse_utc(training_start, "training_start")
    end = parse_utc(training_end, "training_end")
    if start >= end:
        raise ValueError(f"empty training window: {training_start} >= {training_end}")
    store = get_store(profile)
    labels = pd.read_parquet(labels_uri or data_dir() / "churn_labels.parquet")
    if DEFAULT_LABEL not in labels.columns:
        raise ValueError(f"labels at {labels_uri!r} have no {DEFAULT_LABEL!r} column")
    data = build_training_set(
        store, labels, feature_service=feature_service, start=start, end=end
    )
    features = feature_service_features(store, feature_service)
    data.to_parquet(dataset.path, index=False)
    counts = data[DEFAULT_LABEL].value_counts().to_dict()
    dataset.metadata.update(
        {
            "rows": len(data),
            "label": DEFAULT_LABEL,
            "label_counts": {str(k): int(v) for k, v in sorted(counts.items())},
            "positive_rate": round(float(data[DEFAULT_LABEL].mean()), 4),
            "rows_with_null_features": int(data[features].isna().any(axis=1).sum()),
            "feature_service": feature_service,
            "features": features,
            "training_window": {"start": start.isoformat(), "end": end.isoformat()},
            "entity_ts_min": data[ENTITY_TS].min().isoformat(),
            "entity_ts_max": data[ENTITY_TS].max().isoformat(),
            "project": store.project,
        }
    )
    print(f"training set: {dataset.metadata}")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_op(
    profile: str,
    feature_service: str,
    dataset: Input[Dataset],
    training_start: str,
    training_end: str,
    n_estimators: int,
    learning_rate: float,
    max_depth: int,
    test_fraction: float,
    model: Output[Model],
):
    """GradientBoostingClassifier on the earlier part of the window.

    The feature list is read from the feature service in the registry, so the
    model's contract is the service, not whatever columns the dataset has.
    """
    import pandas as pd

    from feature_platform.config import get_store, parse_utc
    from feature_platform.training import (
        DEFAULT_LABEL,
        ENTITY_TS,
        ModelBundle,
        feature_service_features,
        model_metadata,
        save_model,
        time_split,
        train_model,
    )

    store = get_store(profile)
    features = feature_service_features(store, feature_service)
    data = pd.read_parquet(dataset.path)
    train, _, cutoff = time_split(data, test_fraction=test_fraction)
    hyper = {
        "n_estimators": n_estimators,
        "learning_rate": learning_rate,
        "max_depth": max_depth,
    }
    fitted = train_model(train, features, label=DEFAULT_LABEL, **hyper)
    window = {
        "start": parse_utc(training_start, "training_start").isoformat(),
        "end": parse_utc(training_end, "training_end").isoformat(),
    }
    meta = model_metadata(
        store,
        feature_service=feature_service,
        features=features,
        label=DEFAULT_LABEL,
        window=window,
        cutoff=cutoff,
        hyperparameters=hyper,
        metrics={},
    )
    meta.update(
        test_fraction=test_fraction,
        train_rows=len(train),
        train_ts_max=train[ENTITY_TS].max().isoformat(),
        published=False,
    )
    save_model(ModelBundle(fitted, meta), model.path)
    model.metadata.update(
        {
            "framework": "scikit-learn",
            "format": "directory: model.joblib + metadata.json",
            "feature_service": feature_service,
            "features": features,
            "training_window": window,
            "test_split_starts_at": meta["test_split_starts_at"],
            "train_rows": len(train),
            "registry_project": meta["project"],
            "registry": meta["registry"],
            "hyperparameters": hyper,
            "published": False,
        }
    )
    print(f"model: {model.metadata}")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_op(
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> NamedTuple("EvaluateOutputs", [("roc_auc", float), ("log_loss", float)]):
    """Score the held-out rows strictly later than every training row.

    Re-derives the split with the model's ``test_fraction`` and fails if its
    cutoff differs from the one recorded at training time (wrong dataset).
    """
    from collections import namedtuple

    import pandas as pd

    from feature_platform.training import (
        ENTITY_TS,
        evaluate_model,
        load_model,
        roc_curve_points,
        time_split,
    )

    bundle = load_model(model.path)
    meta = bundle.metadata
    data = pd.read_parquet(dataset.path)
    train, test, cutoff = time_split(data, test_fraction=meta["test_fraction"])
    if cutoff.isoformat() != meta["test_split_starts_at"]:
        raise ValueError(
            f"dataset split at {cutoff.isoformat()} but the model was trained "
            f"with a split at {meta['test_split_starts_at']}: not its dataset"
        )
    if not test[ENTITY_TS].min() > train[ENTITY_TS].max():
        raise ValueError("held-out rows are not strictly later than training rows")
    features, label = meta["features"], meta["label"]
    result = evaluate_model(bundle.model, test, features, label=label)
    for key in (
        "roc_auc",
        "log_loss",
        "baseline_roc_auc",
        "baseline_log_loss",
        "positive_rate",
    ):
        metrics.log_metric(key, result[key])
    metrics.log_metric("test_rows", result["rows"])
    metrics.metadata["test_split_starts_at"] = cutoff.isoformat()
    metrics.metadata["test_ts_min"] = test[ENTITY_TS].min().isoformat()
    metrics.metadata["train_ts_max"] = train[ENTITY_TS].max().isoformat()
    roc = roc_curve_points(bundle.model, test, features, label=label)
    classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    cm = result["confusion_matrix"]
    classification.log_confusion_matrix(
        ["retained", "churned"], [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    )
    print(f"evaluation: {result}")
    out = namedtuple("EvaluateOutputs", ["roc_auc", "log_loss"])
    return out(float(result["roc_auc"]), float(result["log_loss"]))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish_op(
    model: Input[Model],
    roc_auc: float,
    threshold: float,
    publish_uri: str,
    published_model: Output[Model],
) -> str:
    """Mark the model as published (and copy it to ``publish_uri`` if set).

    Runs only inside the pipeline's AUC gate; ``publish_model`` re-checks the
    gate, so a weak model is never published even by a runner that ignores it.
    """
    from feature_platform.training import publish_model

    meta = publish_model(
        model.path, published_model.path, roc_auc=roc_auc, threshold=threshold
    )
    if publish_uri:
        publish_model(model.path, publish_uri, roc_auc=roc_auc, threshold=threshold)
    published_model.metadata.update(
        {
            "published": True,
            "published_at": meta["published_at"],
            "roc_auc": roc_auc,
            "threshold": threshold,
            "feature_service": meta["feature_service"],
            "features": meta["features"],
            "training_window": meta["training_window"],
            "registry_project": meta["project"],
            "publish_uri": publish_uri,
        }
    )
    print(f"published: AUC {roc_auc} >= {threshold} -> {publish_uri or 'artifact'}")
    return publish_uri or published_model.uri


class PipelineOutputs(NamedTuple):
    """What a run returns (the gated publish step is inside a condition)."""

    materialized_rows: int
    dataset: Dataset
    model: Model
    metrics: Metrics
    roc_auc: float


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Feast PIT training set -> GradientBoostingClassifier -> "
    "time-based evaluation -> publish only when ROC AUC >= threshold.",
)
def churn_training_pipeline(
    training_start: str,
    training_end: str,
    profile: str = "production",
    feature_service: str = "churn_prediction_service",
    threshold: float = 0.75,
    n_estimators: int = 200,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    test_fraction: float = 0.25,
    labels_uri: str = "",
    materialize_end: str = "",
    publish_uri: str = "",
) -> PipelineOutputs:
    """Training window bounds are UTC ISO-8601 strings with an offset ('...Z')."""
    materialize = materialize_op(profile=profile, end=materialize_end)
    materialize.set_display_name("materialize (incremental)")
    materialize.set_caching_options(False)  # side effect: writes the online store

    training_set = build_training_set_op(
        profile=profile,
        feature_service=feature_service,
        labels_uri=labels_uri,
        training_start=training_start,
        training_end=training_end,
    ).after(materialize)
    training_set.set_display_name("point-in-time training set")
    training_set.set_caching_options(False)  # late rows change the as-known-at join
    training_set.set_memory_request("2G")

    train = train_op(
        profile=profile,
        feature_service=feature_service,
        dataset=training_set.outputs["dataset"],
        training_start=training_start,
        training_end=training_end,
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        max_depth=max_depth,
        test_fraction=test_fraction,
    )
    train.set_display_name("train GradientBoostingClassifier")
    train.set_cpu_request("1").set_memory_request("2G")

    evaluate = evaluate_op(
        dataset=training_set.outputs["dataset"], model=train.outputs["model"]
    )
    evaluate.set_display_name("evaluate on the later held-out split")

    with dsl.If(evaluate.outputs["roc_auc"] >= threshold, name="auc-gate"):
        publish = publish_op(
            model=train.outputs["model"],
            roc_auc=evaluate.outputs["roc_auc"],
            threshold=threshold,
            publish_uri=publish_uri,
        )
        publish.set_display_name("publish model")
        publish.set_caching_options(False)

    return PipelineOutputs(
        materialize.outputs["Output"],
        training_set.outputs["dataset"],
        train.outputs["model"],
        evaluate.outputs["metrics"],
        evaluate.outputs["roc_auc"],
    )


def compile_pipeline(package_path: Path | str = COMPILED) -> Path:
    """Compile the pipeline to YAML (what is submitted to a KFP cluster)."""
    path = Path(package_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(churn_training_pipeline, package_path=str(path))
    return path


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Compile the churn training pipeline.")
    parser.add_argument("--output", default=str(COMPILED), help="YAML path to write")
    print(compile_pipeline(parser.parse_args().output))
