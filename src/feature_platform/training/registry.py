"""The MLflow run and the registered model of a training job (model lineage).

:func:`log_training_run` is the one function every training path calls after
evaluating a model - ``run_training`` (``feature-platform train``, ``demo``, the
Airflow DAG), the KFP ``evaluate_op`` and the notebook. It records, on the
profile's tracking server (``mlflow_locations.tracking_uri``):

* a run in the experiment named after the Feast project, with params (the
  GradientBoostingClassifier hyperparameters, label, test fraction, the
  training window start/end in UTC, the time-split cutoff, feature service),
  metrics (ROC AUC, log loss and their baselines, positive rate, row counts
  total/train/test), Feast's lineage tags (``feast.project``,
  ``feast.feature_service``, ``feast.feature_views``, ``feast.feature_refs``,
  ``feast.entity_count``) and the model (MLflow's sklearn format, the model's
  ``ModelMetadata`` in its ``MLmodel`` file) with Feast's
  ``feast_features.json``;
* a new version of the registered model named after the feature service
  (``lineage.registered_model_name``), tagged with the feature service and
  references; the alias ``champion`` moves to it when it passes the publish
  gate (ROC AUC >= threshold). ``load_registered_model`` loads by alias or
  version for online prediction.

What comes from Feast 0.67's integration (``feast.mlflow_integration``) and
what does not:

* used: its ``mlflow:`` config block (``store.config.mlflow``, the tracking
  URI), ``FeastMlflowClient.start_run`` (experiment = project, ``feast.project``
  tag), ``log_model`` (writes ``feast_features.json`` from the run's
  ``feast.feature_refs``), ``register_model`` (tags the version with
  ``feast.feature_service``) and ``resolve_features`` (model URI -> feature
  service, checked against the registry; ``lineage.model_lineage``);
* not used: auto-logging inside ``get_historical_features``. The profiles keep
  ``mlflow: enabled: false``: enabled, Feast opens the integration on every
  ``get_online_features`` call (it resolves the feature refs and the service
  name before looking for an active run) and imports mlflow and opens the
  tracking store at a process's first read - the feature server included.
  The auto-log also only works when the join runs inside the active run in the
  same process, which the KFP pipeline (join and training in separate
  components) does not do. So the same ``feast.*`` tags are set here from the
  training set's recorded provenance, and Feast's client is built explicitly
  (:func:`feast_mlflow`);
* not in Feast: model -> feature references and training window, feature ->
  models (``feature_platform.lineage``), aliases, the gate;
* Feast's ``load_model`` loads a pyfunc model (``predict`` gives classes, not
  the churn probability) and passes ``models:/name/<alias>`` to MLflow, which
  reads a non-numeric suffix as a deprecated *stage*, not an alias: the
  platform resolves the alias to a version and loads the sklearn flavor.

The model is stored once, in MLflow's sklearn format (``save_model`` in
``training.artifact``): the KFP components pass that directory between steps,
and the run's artifact is the same format. Serialization is cloudpickle, not
MLflow's default skops: skops has to be told to trust
``sklearn.tree._tree.Tree`` for a GradientBoostingClassifier anyway (so it
adds no safety here) and took 3.5 s CPU and 6 MB vs 0.02 s and 0.1 MB for the
200-tree model (measured on this machine).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypedDict

from feature_platform.feature_refs import parse_ref, view_of
from feature_platform.lineage import (
    CHAMPION,
    FEATURE_REFS_TAG,
    FEATURE_SERVICE_TAG,
    LineageError,
    feast_mlflow,
    mlflow_client,
    registered_model_name,
    tracking_uri_of,
)
from feature_platform.training.artifact import (
    DEFAULT_THRESHOLD,
    ModelBundle,
    load_model,
    model_requirements,
    passes_gate,
    quiet_mlflow,
)

if TYPE_CHECKING:
    from feast import FeatureStore

    from feature_platform.training.artifact import Evaluated
    from feature_platform.training.dataset import Split, TrainingSet

__all__ = [
    "RegisteredVersion",
    "feast_mlflow",
    "feature_refs",
    "load_registered_model",
    "log_training_run",
]


class RegisteredVersion(TypedDict):
    """What ``log_training_run`` recorded (JSON-able: CLI, DAG XCom, KFP)."""

    tracking_uri: str  # credentials removed
    experiment: str
    run_id: str
    model_name: str
    version: int
    model_uri: str  # models:/<name>/<version>
    aliases: list[str]
    seconds: float


def feature_refs(store: FeatureStore, service: str) -> list[str]:
    """The service's feature references ``view:feature``, in its order (the
    form Feast's ``feast_features.json`` and resolver use)."""
    fs = store.get_feature_service(service)
    return [
        f"{proj.name_to_use()}:{f.name}"
        for proj in fs.feature_view_projections
        for f in proj.features
    ]


def _experiment(client: Any, name: str, tracking_uri: str) -> str:
    """The experiment's id, created with its artifacts beside an embedded store."""
    from feature_platform.mlflow_locations import (
        artifact_location as mlflow_artifact_location,
    )

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(
        client.create_experiment(
            name, artifact_location=mlflow_artifact_location(tracking_uri)
        )
    )


def log_training_run(
    store: FeatureStore,
    training_set: TrainingSet,
    split: Split,
    evaluated: Evaluated,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    run_name: str | None = None,
) -> RegisteredVersion:
    """Log the evaluated model's run and register it (see the module docstring).

    ``store`` gives the profile (tracking URI), the Feast project (experiment)
    and the feature service's references. The alias ``champion`` moves to the
    new version only if ``evaluated``'s ROC AUC passes ``threshold``.
    """
    import mlflow
    import mlflow.sklearn

    from feature_platform.redact import redact_url

    started = time.monotonic()
    uri = tracking_uri_of(store=store)
    # MLflow's fluent API (start_run, log_model, register_model) uses the global
    # URIs: this store's (feast_mlflow sets the registry URI too).
    mlflow.set_tracking_uri(uri)
    feast = feast_mlflow(store)
    client = feast.client
    meta = evaluated.bundle.metadata
    service = training_set.feature_service
    refs = feature_refs(store, service)
    names = [parse_ref(ref).feature for ref in refs]
    if names != list(training_set.features):
        raise LineageError(
            f"feature service {service!r} now serves {names}, the training set "
            f"was built with {training_set.features}: rebuild the training set"
        )
    experiment_id = _experiment(client, store.project, uri)
    m = evaluated.metrics
    with feast.start_run(
        run_name=run_name or f"train_{service}",
        experiment_id=experiment_id,
        tags={
            # The tags Feast's auto-log sets in get_historical_features
            # (FeastMlflowLogger.log_feature_retrieval), from the training set.
            FEATURE_SERVICE_TAG: service,
            "feast.retrieval_type": "historical",
            "feast.feature_views": ",".join(sorted({view_of(r) for r in refs})),
            FEATURE_REFS_TAG: ",".join(refs),
            "feast.entity_count": str(len(training_set.data)),
            "feast.feature_count": str(len(refs)),
        },
    ) as run:
        mlflow.log_params(
            {
                **meta["hyperparameters"],
                "feature_service": service,
                "label": meta["label"],
                "test_fraction": meta["test_fraction"],
                "training_window_start": meta["training_window"]["start"],
                "training_window_end": meta["training_window"]["end"],
                "test_split_starts_at": meta["test_split_starts_at"],
                "feast_registry": meta["registry"],
            }
        )
        mlflow.log_metrics(
            {
                "roc_auc": m["roc_auc"],
                "log_loss": m["log_loss"],
                "baseline_roc_auc": m["baseline_roc_auc"],
                "baseline_log_loss": m["baseline_log_loss"],
                "positive_rate": m["positive_rate"],
                "rows_total": len(training_set.data),
                "rows_train": len(split.train),
                "rows_test": len(split.test),
            }
        )
        with quiet_mlflow():
            feast.log_model(
                evaluated.bundle.model,
                "model",
                flavor="sklearn",
                metadata=dict(meta),
                serialization_format="cloudpickle",
                pip_requirements=model_requirements(),
            )
        run_id = run.info.run_id
    name = registered_model_name(service)
    # The model this run logged (an MLflow 3 LoggedModel) is the version's source.
    logged = mlflow.last_logged_model()
    if logged is None or logged.source_run_id != run_id:
        raise RuntimeError(f"run {run_id} logged no model")
    version = feast.register_model(f"models:/{logged.model_id}", name)
    client.set_model_version_tag(
        name, version.version, FEATURE_REFS_TAG, ",".join(refs)
    )
    client.set_model_version_tag(
        name, version.version, FEATURE_SERVICE_TAG, service
    )  # Feast's register_model sets it too (from the run); kept explicit
    gate = passes_gate(m["roc_auc"], threshold)
    client.set_model_version_tag(
        name,
        version.version,
        "gate",
        f"{'passed' if gate else 'failed'}: roc_auc {m['roc_auc']} vs {threshold}",
    )
    aliases = []
    if gate:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        aliases.append(CHAMPION)
    return {
        "tracking_uri": redact_url(uri),
        "experiment": store.project,
        "run_id": run_id,
        "model_name": name,
        "version": int(version.version),
        "model_uri": f"models:/{name}/{version.version}",
        "aliases": aliases,
        "seconds": round(time.monotonic() - started, 2),
    }


def load_registered_model(
    name: str,
    version_or_alias: str | int = CHAMPION,
    *,
    store: FeatureStore | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
) -> ModelBundle:
    """The registered model version (alias such as ``champion``, or a version
    number) as a ``ModelBundle`` whose metadata names its feature service.

    The registry is ``tracking_uri``'s, else ``store``'s, else ``profile``'s
    (``lineage.tracking_uri_of``). The version's registry tag and the model's
    own metadata must name the same feature service."""
    import tempfile
    from urllib.parse import urlparse

    import mlflow

    from feature_platform.lineage import model_lineage

    uri = tracking_uri_of(store=store, profile=profile, tracking_uri=tracking_uri)
    lineage = model_lineage(name, version_or_alias, tracking_uri=uri)
    client = mlflow_client(tracking_uri=uri)
    location = client.get_model_version_download_uri(lineage.name, str(lineage.version))
    if location.startswith("file://"):  # an embedded store: read it in place
        bundle = load_model(urlparse(location).path)
    else:
        with tempfile.TemporaryDirectory(prefix="fp-model-") as tmp:
            bundle = load_model(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=tmp, tracking_uri=uri
                )
            )
    recorded = bundle.metadata["feature_service"]
    if recorded != lineage.feature_service:
        raise LineageError(
            f"{lineage}: the model's metadata names feature service {recorded!r}, "
            f"the registry {lineage.feature_service!r}"
        )
    return bundle
