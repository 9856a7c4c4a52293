"""KFP v2 training pipeline for the churn model.

materialize -> point-in-time training set -> train -> evaluate -> AUC gate -> publish

Every component is a thin typed wrapper that calls the steps of
``feature_platform.training`` - the same steps, in the same order, as
``run_training`` (``feature-platform train``, the Airflow DAG), so a model from
this pipeline carries the same ``metadata.json`` (``model_metadata``):

* ``build_training_set_op``: ``prepare_training_set`` -> ``write_training_set``
  (a parquet that carries the training set's provenance);
* ``train_op``: ``read_training_set`` -> ``split_training_set`` -> ``train``;
* ``evaluate_op``: ``split_training_set`` (the model's ``test_fraction``) ->
  ``evaluate`` -> ``save_model`` (the evaluated model, which is published) ->
  ``log_training_run`` (the MLflow run and registered model version on the
  profile's tracking server; alias ``champion`` when it clears the gate);
* ``publish_op``: ``publish_model`` (re-checks the gate).

Components run in the one base image built from ``docker/Dockerfile`` (the
project is installed there, so no ``packages_to_install`` at run time). Bodies
import what they need and call only the installed package, never helpers of
this module: KFP ships just the function's source (kubeflow/pipelines#8792).

Leakage rules (enforced by ``feature_platform.training``):

* features come only through the feature service named by ``feature_service``;
* entity rows outside ``[training_start, training_end)`` are dropped before the
  as-known-at point-in-time join;
* ``train_op`` fits on the earlier part of the window and ``evaluate_op`` scores
  only rows strictly later than every training row (same ``split_training_set``;
  the cutoff is recorded in the model and ``evaluate`` re-checks it).

Compile (the committed YAML must match this file; a test checks it)::

    .venv/bin/python pipelines/churn_training_pipeline.py

``FEATURE_PLATFORM_IMAGE`` overrides the base image at compile time.
"""

# No ``from __future__ import annotations`` here: KFP reads the component
# signatures' real annotations (Input[Dataset], Output[Model], ...).

from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from feature_platform.settings import settings

DEFAULT_IMAGE = "ghcr.io/feature-platform/feature-platform:0.1.0"
IMAGE = settings().image or DEFAULT_IMAGE  # $FEATURE_PLATFORM_IMAGE
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
    from feature_platform.materialize import materialize_incremental
    from feature_platform.profiles import get_store
    from feature_platform.utc import parse_utc, utc_now

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
    Writes the training set (parquet carrying its provenance) with row count,
    label balance and time range as metadata.
    """
    import pandas as pd

    from feature_platform.profiles import data_dir, get_store
    from feature_platform.training import (
        describe_training_set,
        prepare_training_set,
        write_training_set,
    )
    from feature_platform.utc import parse_utc

    start = parse_utc(training_start, "training_start")
    end = parse_utc(training_end, "training_end")
    store = get_store(profile)
    labels = pd.read_parquet(labels_uri or data_dir() / "churn_labels.parquet")
    training_set = prepare_training_set(
        store, labels, feature_service=feature_service, start=start, end=end
    )
    write_training_set(training_set, dataset.path)
    dataset.metadata.update(describe_training_set(training_set))
    print(f"training set: {dataset.metadata}")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_op(
    dataset: Input[Dataset],
    n_estimators: int,
    learning_rate: float,
    max_depth: int,
    test_fraction: float,
    model: Output[Model],
):
    """GradientBoostingClassifier on the earlier part of the window.

    The features are the ones the training set recorded from the feature
    service, so the model's contract is the service, not whatever columns the
    dataset has. The saved metadata has null metrics until ``evaluate_op``.
    """
    from feature_platform.training import (
        hyperparameters,
        read_training_set,
        save_model,
        split_training_set,
        train,
    )

    training_set = read_training_set(dataset.path)
    split = split_training_set(training_set, test_fraction=test_fraction)
    params = hyperparameters(
        n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth
    )
    trained = train(training_set, split, params)
    save_model(trained, model.path)
    model.metadata.update(
        {**trained.metadata, "registry_project": trained.metadata["project"]}
    )
    print(f"model: {model.metadata}")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_op(
    profile: str,
    threshold: float,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    evaluated_model: Output[Model],
) -> NamedTuple("EvaluateOutputs", [("roc_auc", float), ("log_loss", float)]):
    """Score the held-out rows strictly later than every training row.

    Re-derives the split with the model's ``test_fraction``; ``evaluate`` fails
    if it is not the split the model was trained on (wrong dataset). Writes the
    model again with its metrics (what is published) as ``evaluated_model``, and
    logs the run + registers the version in MLflow (``log_training_run``, the
    same call as ``run_training``; alias ``champion`` if ROC AUC >= threshold).
    """
    from collections import namedtuple

    from feature_platform.profiles import get_store
    from feature_platform.training import (
        evaluate,
        load_model,
        log_training_run,
        read_training_set,
        save_model,
        split_training_set,
    )

    trained = load_model(model.path)
    training_set = read_training_set(dataset.path)
    split = split_training_set(
        training_set, test_fraction=trained.metadata["test_fraction"]
    )
    result = evaluate(trained, split)
    save_model(result.bundle, evaluated_model.path)
    registered = log_training_run(
        get_store(profile), training_set, split, result, threshold=threshold
    )
    for key in ("run_id", "model_name", "version", "model_uri", "tracking_uri"):
        metrics.metadata[f"mlflow_{key}"] = registered[key]
    print(f"registered: {registered}")
    meta = result.bundle.metadata
    evaluated_model.metadata.update({**meta, "registry_project": meta["project"]})
    m = result.metrics
    for key in ("roc_auc", "log_loss", "baseline_roc_auc", "baseline_log_loss"):
        metrics.log_metric(key, m[key])
    metrics.log_metric("positive_rate", m["positive_rate"])
    metrics.log_metric("test_rows", m["rows"])
    for key in ("test_split_starts_at", "test_ts_min", "train_ts_max"):
        metrics.metadata[key] = meta[key]
    roc = result.roc_curve
    classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    cm = m["confusion_matrix"]
    classification.log_confusion_matrix(
        ["retained", "churned"], [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    )
    print(f"evaluation: {m}")
    out = namedtuple("EvaluateOutputs", ["roc_auc", "log_loss"])
    return out(float(m["roc_auc"]), float(m["log_loss"]))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish_op(
    model: Input[Model],
    roc_auc: float,
    threshold: float,
    publish_uri: str,
    published_model: Output[Model],
) -> str:
    """Mark the evaluated model as published (and copy it to ``publish_uri`` if set).

    Runs only inside the pipeline's AUC gate; ``publish_model`` re-checks the
    gate (and that ``roc_auc`` is the model's own), so a weak model is never
    published even by a runner that ignores the condition.
    """
    from feature_platform.training import publish_model

    meta = publish_model(
        model.path, published_model.path, roc_auc=roc_auc, threshold=threshold
    )
    if publish_uri:
        publish_model(model.path, publish_uri, roc_auc=roc_auc, threshold=threshold)
    published_model.metadata.update(
        {**meta, "registry_project": meta["project"], "publish_uri": publish_uri}
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
        dataset=training_set.outputs["dataset"],
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        max_depth=max_depth,
        test_fraction=test_fraction,
    )
    train.set_display_name("train GradientBoostingClassifier")
    train.set_cpu_request("1").set_memory_request("2G")

    evaluate = evaluate_op(
        profile=profile,
        threshold=threshold,
        dataset=training_set.outputs["dataset"],
        model=train.outputs["model"],
    )
    evaluate.set_display_name("evaluate on the later held-out split + register")
    evaluate.set_caching_options(False)  # side effect: an MLflow run + version

    with dsl.If(evaluate.outputs["roc_auc"] >= threshold, name="auc-gate"):
        publish = publish_op(
            model=evaluate.outputs["evaluated_model"],
            roc_auc=evaluate.outputs["roc_auc"],
            threshold=threshold,
            publish_uri=publish_uri,
        )
        publish.set_display_name("publish model")
        publish.set_caching_options(False)

    return PipelineOutputs(
        materialize.outputs["Output"],
        training_set.outputs["dataset"],
        evaluate.outputs["evaluated_model"],
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
