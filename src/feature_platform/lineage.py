"""Model lineage through the MLflow model registry, both ways.

Every training path (``feature-platform train``, ``demo``, the Airflow DAG, the
KFP pipeline, the notebook) records its model with
:func:`feature_platform.training.registry.log_training_run`: one MLflow run
(params, metrics, training-set window, row counts, feature service and feature
references) and one version of the registered model named after the feature
service (``churn_prediction_service``). This module reads that back:

* :func:`model_lineage` - a registered model version (``name`` plus a version
  number or an alias such as ``champion``) -> its feature service, feature
  references, training window and row counts;
* :func:`models_consuming` - a feature service (``churn_prediction_service``),
  a feature reference (``customer_stats:lifetime_value``) or a feature view
  (``customer_stats``) -> the registered model versions that consume it;
* :func:`consumers_by_feature` - one registry read indexed by feature reference
  and by feature service (what a catalog listing every feature calls once).

A model consumes what it was *trained on*: the references recorded with its
version, not the feature service's current definition (a service edited after
training does not change what an old version needs).

Where the records live (tags a registry query can read without downloading
artifacts): each model version carries Feast's own tag
``feast.feature_service`` (set by Feast's ``FeastMlflowClient.register_model``,
read by Feast's resolver) and ``feast.feature_refs`` (the comma-joined
references, Feast's run-tag name, copied to the version); the run carries the
window and row counts as params/metrics (``TRAINING_PARAMS``/``ROW_METRICS``)
and Feast's ``feast_features.json`` artifact.

Feast 0.67's integration (``feast.mlflow_integration``) resolves model ->
feature service name only (``store.mlflow.resolve_features``, which also checks
the service still serves the features the model was trained on): with a
``store``, :func:`model_lineage` runs it. It has nothing for the reverse
direction, the feature references or the window; those are read here.

The registry read is ``tracking_uri`` if given, else the ``store``'s
(``store.config.mlflow``, filled in per profile by ``feature_platform.profiles``),
else the profile's (``mlflow_locations.tracking_uri``, ``$FP_MLFLOW_TRACKING_URI``).

API (stable; ``feature_platform.catalog`` calls it)::

    models_consuming(target: str, *, store=None, profile=None, tracking_uri=None)
        -> list[ModelVersionLineage]   # str(m): "churn_prediction_service v3 @champion"
    consumers_by_feature(*, store=None, profile=None, tracking_uri=None)
        -> dict[str, list[ModelVersionLineage]]   # keys: refs and service names
    model_lineage(name: str, version_or_alias: str | int = "champion", *,
                  store=None, profile=None, tracking_uri=None)
        -> ModelVersionLineage
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from feature_platform.errors import BadInput, LineageError
from feature_platform.feature_refs import view_of

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

__all__ = [
    "CHAMPION",
    "FEATURE_REFS_TAG",
    "FEATURE_SERVICE_TAG",
    "LineageError",
    "ModelVersionLineage",
    "consumers_by_feature",
    "feast_mlflow",
    "mlflow_client",
    "model_lineage",
    "models_consuming",
    "registered_model_name",
    "registry_problem",
    "tracking_uri_of",
    "training_window",
]

FEATURE_SERVICE_TAG = "feast.feature_service"  # Feast's tag (run and version)
FEATURE_REFS_TAG = "feast.feature_refs"  # Feast's run tag, copied to the version
CHAMPION = "champion"  # alias of the version that passed the publish gate


@dataclass(frozen=True)
class ModelVersionLineage:
    """A registered model version and what it was trained on."""

    name: str
    version: int
    aliases: tuple[str, ...]
    feature_service: str
    features: tuple[str, ...]  # feature references "view:feature", service order
    run_id: str
    model_uri: str  # models:/<name>/<version>
    training_window: dict[str, str] | None = None  # {"start", "end"} UTC ISO
    rows: dict[str, int] | None = None  # {"total", "train", "test"}
    metrics: dict[str, float] | None = None

    def __str__(self) -> str:
        alias = "".join(f" @{a}" for a in self.aliases)
        return f"{self.name} v{self.version}{alias}"

    def as_dict(self) -> dict[str, Any]:
        """As JSON (``dataclasses.asdict``): the fields above are its shape."""
        return asdict(self)


def registered_model_name(feature_service: str) -> str:
    """The registered model of a feature service: one model name per service."""
    return feature_service


def tracking_uri_of(
    *,
    store: FeatureStore | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
) -> str:
    """``tracking_uri``, else the store's (``store.config.mlflow``), else the
    profile's (``mlflow_locations.tracking_uri``)."""
    from feature_platform import mlflow_locations
    from feature_platform.profiles import active_profile, resolve_profile

    if tracking_uri:
        return tracking_uri
    configured = getattr(store.config, "mlflow", None) if store is not None else None
    if configured is not None and configured.get_tracking_uri():
        return str(configured.get_tracking_uri())
    prof = resolve_profile(profile or active_profile())
    return mlflow_locations.tracking_uri(prof.name, prof.repo_dir)


# An unreachable tracking server must not stall a caller (catalog, monitor)
# behind MLflow's HTTP retries (minutes): one bounded probe of /health first.
PROBE_SECONDS = 3.0


def registry_problem(uri: str) -> str | None:
    """``None`` when the model registry at ``uri`` can be read, else why not
    (bounded: a missing SQLite store is not created by looking, an HTTP
    server gets one ``/health`` probe of ``PROBE_SECONDS``)."""
    from pathlib import Path
    from urllib.error import URLError
    from urllib.request import urlopen

    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        return None if path.is_file() else f"no MLflow store at {path} yet"
    if uri.startswith(("http://", "https://")):
        try:
            with urlopen(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS):
                return None
        except (URLError, OSError) as exc:
            return f"unreachable: {getattr(exc, 'reason', exc)}"
    return None


def feast_mlflow(store: FeatureStore) -> Any:
    """Feast's MLflow client (``FeastMlflowClient``) on the store's profile.

    ``store.mlflow`` when the profile enables the integration; else the same
    client built on the profile's ``mlflow:`` block, which
    ``config.load_repo_config`` puts on every profile with its tracking URI.

    Feast's client passes only the tracking URI to ``MlflowClient``, whose
    *registry* URI then comes from MLflow's global setting: this sets the global
    registry URI to the store's, or a second store in the process would read
    (and register into) the first one's registry.
    """
    import mlflow
    from feast.mlflow_integration.client import FeastMlflowClient

    configured = store.config.mlflow
    if configured is None or not configured.get_tracking_uri():
        raise LineageError(
            f"the store of project {store.project!r} has no MLflow tracking URI "
            "(no `mlflow:` block): build it with feature_platform.profiles.get_store "
            "or set FP_MLFLOW_TRACKING_URI"
        )
    mlflow.set_registry_uri(configured.get_tracking_uri())
    if store.mlflow is not None:
        return store.mlflow
    return FeastMlflowClient(store)


def mlflow_client(
    *,
    store: FeatureStore | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
) -> MlflowClient:
    """An ``MlflowClient`` on the tracking server / model registry of
    ``tracking_uri``, ``store`` or ``profile`` (in that order)."""
    from mlflow import MlflowClient

    uri = tracking_uri_of(store=store, profile=profile, tracking_uri=tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _refs(tags: dict[str, str]) -> tuple[str, ...]:
    return tuple(r for r in tags.get(FEATURE_REFS_TAG, "").split(",") if r)


def _aliases(version: Any) -> tuple[str, ...]:
    return tuple(sorted(getattr(version, "aliases", None) or ()))


def _from_version(version: Any) -> ModelVersionLineage | None:
    tags = dict(version.tags or {})
    service = tags.get(FEATURE_SERVICE_TAG)
    if not service:
        return None  # not trained through a feature service: no feature lineage
    return ModelVersionLineage(
        name=version.name,
        version=int(version.version),
        aliases=_aliases(version),
        feature_service=service,
        features=_refs(tags),
        run_id=version.run_id or "",
        model_uri=f"models:/{version.name}/{version.version}",
    )


def _all_versions(client: MlflowClient) -> list[ModelVersionLineage]:
    """Every registered version with lineage, newest first per model, with its
    aliases (a version search does not return them: read per model)."""
    out: list[ModelVersionLineage] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(max_results=1000, page_token=token)
        out.extend(m for m in map(_from_version, page) if m is not None)
        token = page.token
        if not token:
            break
    aliases: dict[tuple[str, int], list[str]] = {}
    for name in sorted({m.name for m in out}):
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault((name, int(version)), []).append(alias)
    out = [
        replace(m, aliases=tuple(sorted(aliases.get((m.name, m.version), ()))))
        for m in out
    ]
    return sorted(out, key=lambda m: (m.name, -m.version))


def consumers_by_feature(
    *,
    store: FeatureStore | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, list[ModelVersionLineage]]:
    """Every registered model version with lineage, keyed by each feature
    reference it was trained on and by its feature service (one registry read).
    Versions are newest first per model."""
    index: dict[str, list[ModelVersionLineage]] = {}
    client = mlflow_client(store=store, profile=profile, tracking_uri=tracking_uri)
    for model in _all_versions(client):
        for key in (model.feature_service, *model.features):
            index.setdefault(key, []).append(model)
    return index


def models_consuming(
    target: str,
    *,
    store: FeatureStore | None = None,
    profile: str | None = None,
    tracking_uri: str | None = None,
) -> list[ModelVersionLineage]:
    """The registered model versions that consume ``target``.

    ``target`` is a feature reference (``customer_stats:lifetime_value``), a
    feature view (``customer_stats``: any of its features) or a feature service
    (``churn_prediction_service``). An empty list when nothing consumes it.
    """
    target = target.strip()
    if not target:
        raise BadInput("models_consuming needs a feature ref, view or service name")
    client = mlflow_client(store=store, profile=profile, tracking_uri=tracking_uri)
    found = []
    for model in _all_versions(client):
        views = {view_of(ref) for ref in model.features}
        if (
            target == model.feature_service
            or target in model.features
            or (":" not in target and target in views)
        ):
            found.append(model)
    return found


def model_lineage(
    name: str,
    version_or_alias: str | int = CHAMPION,
    *,
    profile: str | None = None,
    tracking_uri: str | None = None,
    store: FeatureStore | None = None,
) -> ModelVersionLineage:
    """What a registered model version needs: feature service, feature
    references, training window (UTC), row counts and metrics of its run.

    ``version_or_alias``: a version number (``3``, ``"3"``) or an alias
    (``champion``). With ``store`` (its ``mlflow:`` block names the registry
    unless ``tracking_uri`` is given), Feast's own resolver
    (``store.mlflow.resolve_features``) also checks that the service still
    serves exactly the model's features, and raises ``LineageError`` naming
    the difference if not.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(store=store, profile=profile, tracking_uri=tracking_uri)
    ref = str(version_or_alias).strip()
    try:
        if ref.isdigit():
            version = client.get_model_version(name, ref)
        else:
            version = client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        raise LineageError(
            f"registered model {name!r} has no version or alias {ref!r}: {exc.message}"
        ) from exc
    model = _from_version(version)
    if model is not None:  # a version read by number carries no aliases: ask
        aliases = client.get_registered_model(name).aliases.items()
        model = replace(
            model,
            aliases=tuple(sorted(a for a, v in aliases if int(v) == model.version)),
        )
    if model is None:
        raise LineageError(
            f"{name} v{version.version} has no {FEATURE_SERVICE_TAG!r} tag: it was "
            "not registered by feature_platform.training (no feature lineage)"
        )
    run = client.get_run(model.run_id)
    params, metrics = run.data.params, run.data.metrics
    window = None
    if "training_window_start" in params:
        window = {
            "start": params["training_window_start"],
            "end": params["training_window_end"],
        }
    rows = {k: int(metrics[f"rows_{k}"]) for k in ("total", "train", "test")}
    scores = {
        k: float(v) for k, v in sorted(metrics.items()) if not k.startswith("rows_")
    }
    if store is not None:
        _check_with_feast(store, model)
    return ModelVersionLineage(
        **{
            **asdict(model),
            "training_window": window,
            "rows": rows,
            "metrics": scores,
        }
    )


def _check_with_feast(store: FeatureStore, model: ModelVersionLineage) -> None:
    """Feast's resolver: model version -> feature service, validated against
    the registry (the service exists and serves the model's features)."""
    from feast.mlflow_integration import FeastMlflowModelResolutionError

    try:
        resolved = feast_mlflow(store).resolve_features(model.model_uri)
    except FeastMlflowModelResolutionError as exc:
        raise LineageError(f"{model}: {exc}") from exc
    if resolved != model.feature_service:
        raise LineageError(
            f"{model}: Feast resolves feature service {resolved!r}, the version "
            f"records {model.feature_service!r}"
        )


def training_window(
    feature_service: str,
    version_or_alias: str | int = CHAMPION,
    *,
    store: FeatureStore | None = None,
    profile: str | None = None,
) -> tuple[dict[str, str] | None, str]:
    """The training window of a service's registered model version (``champion``
    by default) and where it came from, or ``(None, why not)``: no registry,
    registry unreachable, no such version, or a version without a window."""
    uri = tracking_uri_of(store=store, profile=profile)
    problem = registry_problem(uri)
    if problem is not None:
        return None, problem
    name = registered_model_name(feature_service)
    try:
        # Without ``store``: the window is read, Feast's resolver check is not run.
        model = model_lineage(name, version_or_alias, tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - MLflow errors, registry schema, auth
        return None, f"{name}@{version_or_alias}: {type(exc).__name__}: {exc}"
    if model.training_window is None:
        return None, f"{model} records no training window"
    return model.training_window, f"training window of {model}"
