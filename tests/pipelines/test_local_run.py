"""The whole churn training pipeline under kfp.local on small sample data.

Runs the committed compiled YAML (what a cluster runs) twice on a temporary
repo with the embedded profile: once with a reachable AUC threshold and once
with an unreachable one (the gate must block). About 20 s per run.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import TEST_END, make_repo

pytestmark = pytest.mark.slow

SERVICE = "churn_prediction_service"
WINDOW_END = TEST_END - timedelta(days=1)  # labels after this exist and must be unused
WINDOW_START = WINDOW_END - timedelta(days=15)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory):
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    path = make_repo(tmp_path_factory.mktemp("kfp_repo") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "FEATURE_PLATFORM_REPO", str(path)
        )  # component subprocesses inherit it
        apply_definitions(get_store("local"))
        yield path


def _run(
    repo: Path, root: Path, *, threshold: float, n_estimators: int
) -> dict[str, Any]:
    from pipelines.run_local import run_local

    return run_local(
        training_start=WINDOW_START.isoformat(),
        training_end=WINDOW_END.isoformat(),
        pipeline_root=root / "kfp",
        profile="local",
        feature_service=SERVICE,
        threshold=threshold,
        n_estimators=n_estimators,
        materialize_end=TEST_END.isoformat(),
        publish_uri=str(root / "published"),
    )


@pytest.fixture(scope="module")
def passed(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(
        repo, tmp_path_factory.mktemp("run_pass"), threshold=0.6, n_estimators=200
    )


@pytest.fixture(scope="module")
def blocked(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # ROC AUC cannot exceed 1.0: the gate must block whatever the model scores
    return _run(
        repo, tmp_path_factory.mktemp("run_block"), threshold=1.01, n_estimators=50
    )


def test_run_materializes_the_online_store(passed: dict[str, Any], repo: Path) -> None:
    from feature_platform.profiles import get_store

    assert passed["materialized_rows"] > 0
    store = get_store("local")
    labels = pd.read_parquet(repo / "data" / "churn_labels.parquet")
    rows = [{"customer_id": int(c)} for c in labels.customer_id.unique()[:20]]
    online = store.get_online_features(
        features=store.get_feature_service(SERVICE), entity_rows=rows
    ).to_dict()
    assert any(v is not None for v in online["total_orders"])


def test_model_artifact_loads_and_predicts(passed: dict[str, Any]) -> None:
    from feature_platform.training import load_model

    bundle = load_model(passed["model"]["path"])
    data = pd.read_parquet(passed["dataset"]["path"])
    features = bundle.metadata["features"]
    proba = bundle.model.predict_proba(data[features].astype("float64").to_numpy())
    assert proba.shape == (len(data), 2)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert 0 < proba[:, 1].mean() < 1


def test_auc_beats_the_trivial_baseline(passed: dict[str, Any]) -> None:
    m = passed["metrics"]
    assert m["baseline_roc_auc"] == 0.5
    assert m["roc_auc"] == passed["roc_auc"] > 0.65
    assert m["log_loss"] < m["baseline_log_loss"]  # better than the label prior
    assert m["test_rows"] > 0


def test_no_leakage_in_time(passed: dict[str, Any]) -> None:
    data = pd.read_parquet(passed["dataset"]["path"])
    ts = data["event_timestamp"]
    assert ts.min() >= WINDOW_START and ts.max() < WINDOW_END
    m = passed["metrics"]
    assert pd.Timestamp(m["test_ts_min"]) > pd.Timestamp(m["train_ts_max"])
    meta = passed["model"]["metadata"]
    assert meta["training_window"] == {
        "start": WINDOW_START.isoformat(),
        "end": WINDOW_END.isoformat(),
    }
    assert meta["test_split_starts_at"] == m["test_split_starts_at"]
    assert meta["train_rows"] + m["test_rows"] == len(data)


def test_features_come_only_through_the_feature_service(
    passed: dict[str, Any], repo: Path
) -> None:
    from feature_platform.profiles import get_store
    from feature_platform.training import feature_service_features, load_model

    store = get_store("local")
    in_registry = feature_service_features(store, SERVICE)
    bundle = load_model(passed["model"]["path"])
    for meta in (bundle.metadata, passed["model"]["metadata"]):
        assert meta["feature_service"] == SERVICE
        assert meta["features"] == in_registry
    assert passed["model"]["metadata"]["registry_project"] == store.project
    assert bundle.model.n_features_in_ == len(in_registry)
    data = pd.read_parquet(passed["dataset"]["path"])
    assert set(data.columns) == {
        "customer_id",
        "event_timestamp",
        "churned",
        *in_registry,
    }


def test_gate_publishes_a_model_that_clears_the_threshold(
    passed: dict[str, Any],
) -> None:
    from feature_platform.training import load_model

    assert passed["published"] is True
    published = load_model(passed["publish_uri"])
    assert published.metadata["published"] is True
    assert published.metadata["gate"]["value"] == passed["roc_auc"]
    assert published.metadata["gate"]["threshold"] == 0.6
    assert (
        load_model(passed["published_model"]).metadata["features"]
        == (passed["model"]["metadata"]["features"])
    )


def test_gate_blocks_when_the_threshold_is_unreachable(blocked: dict[str, Any]) -> None:
    assert 0.5 < blocked["roc_auc"] <= 1.0  # the run itself succeeded
    assert blocked["published"] is False
    assert blocked["published_model"] is None
    assert not Path(blocked["publish_uri"]).exists()
    assert blocked["model"]["metadata"]["published"] is False


# ------------------------------- the pipeline and run_training: the same steps


@pytest.fixture(scope="module")
def trained_directly(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run_training`` (what the CLI and the DAG call) on the pipeline's data."""
    from feature_platform.profiles import get_store
    from feature_platform.training import run_training

    labels = pd.read_parquet(repo / "data" / "churn_labels.parquet")
    model_dir = tmp_path_factory.mktemp("run_training") / "model"
    run_training(
        get_store("local"),
        labels,
        model_dir=model_dir,
        feature_service=SERVICE,
        start=WINDOW_START,
        end=WINDOW_END,
        test_fraction=0.25,
        n_estimators=200,
    )
    return model_dir


SHARED = (
    "feature_service",
    "features",
    "label",
    "training_window",
    "test_fraction",
    "test_split_starts_at",
    "train_rows",
    "test_rows",
    "train_ts_max",
    "test_ts_min",
    "project",
    "registry",
    "hyperparameters",
)


def test_pipeline_and_run_training_write_the_same_metadata(
    passed: dict[str, Any], trained_directly: Path
) -> None:
    from feature_platform.training import ModelMetadata, load_model

    direct = load_model(trained_directly).metadata
    kfp = load_model(passed["model"]["path"]).metadata
    unpublished = set(ModelMetadata.__annotations__) - {"published_at", "gate"}
    assert set(direct) == set(kfp) == unpublished
    assert direct["metrics"] is not None and kfp["metrics"] is not None
    assert set(direct["metrics"]) == set(kfp["metrics"])
    for key in SHARED:
        assert kfp[key] == direct[key], key
    assert kfp["feature_service"] == SERVICE
    assert kfp["hyperparameters"]["n_estimators"] == 200
    assert kfp["test_fraction"] == 0.25
    assert kfp["training_window"] == {
        "start": WINDOW_START.isoformat(),
        "end": WINDOW_END.isoformat(),
    }
    assert kfp["train_rows"] + kfp["test_rows"] == passed["dataset"]["metadata"]["rows"]
    # the same rows through the same deterministic steps: the same model quality
    assert kfp["metrics"] == direct["metrics"]
    assert kfp["published"] is direct["published"] is False


def test_every_model_artifact_of_the_run_has_the_same_keys(
    passed: dict[str, Any], trained_directly: Path
) -> None:
    from feature_platform.training import load_model

    keys = set(load_model(trained_directly).metadata)
    (trained,) = sorted(Path(passed["run_root"]).rglob("train-op/model"))
    before_evaluation = load_model(trained).metadata
    assert set(before_evaluation) == keys
    assert before_evaluation["metrics"] is None  # filled in by evaluate_op
    published = load_model(passed["publish_uri"]).metadata
    assert set(published) == keys | {"published_at", "gate"}
    assert (
        published["metrics"] == load_model(passed["model"]["path"]).metadata["metrics"]
    )


# ------------------------------------------------- lineage: the MLflow registry


def test_pipeline_logs_and_registers_in_mlflow(
    passed: dict[str, Any], blocked: dict[str, Any], repo: Path
) -> None:
    """evaluate_op calls log_training_run: a run and a registered version per
    pipeline run on the profile's store (the repo's embedded SQLite), tagged
    with the gate's verdict (the champion alias may have moved on since: other
    tests of this module train too)."""
    from feature_platform.lineage import mlflow_client, model_lineage
    from feature_platform.profiles import get_store

    store = get_store("local")
    assert store.config.mlflow.tracking_uri == (
        f"sqlite:///{repo / 'data' / 'mlflow' / 'mlflow.db'}"
    )
    client = mlflow_client(store=store)
    for run, champion in ((passed, True), (blocked, False)):
        meta = run["metrics"]
        assert meta["mlflow_model_name"] == SERVICE
        lineage = model_lineage(SERVICE, int(meta["mlflow_version"]), store=store)
        assert lineage.run_id == meta["mlflow_run_id"]
        assert lineage.training_window == {
            "start": WINDOW_START.isoformat(),
            "end": WINDOW_END.isoformat(),
        }
        assert lineage.rows is not None
        assert lineage.rows["total"] == run["dataset"]["metadata"]["rows"]
        gate = client.get_model_version(SERVICE, str(lineage.version)).tags["gate"]
        assert gate.startswith("passed" if champion else "failed"), gate
        if not champion:
            assert "champion" not in lineage.aliases
        mlflow_run = client.get_run(meta["mlflow_run_id"])
        assert mlflow_run.data.metrics["roc_auc"] == run["roc_auc"]
        # KFP metadata travels as protobuf Struct: 200 comes back as 200.0.
        assert mlflow_run.data.params["n_estimators"] == str(
            int(run["model"]["metadata"]["hyperparameters"]["n_estimators"])
        )
