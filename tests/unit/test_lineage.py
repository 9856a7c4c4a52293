"""Model lineage against a real MLflow tracking store and model registry.

The local profile's embedded store: SQLite under the temporary repo's
``data/mlflow/`` (no server process). ``tests/integration/test_mlflow_server.py``
runs the same path against an ``mlflow server`` on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

SERVICE = "churn_prediction_service"
REFS = [
    "customer_stats:total_orders",
    "customer_stats:avg_order_amount",
    "customer_stats:lifetime_value",
    "customer_stats:churn_risk_score",
]


@pytest.fixture(scope="module")
def lineage_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A fresh repo, trained twice: v1 passes the gate, v2 (threshold 1.01) not."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store
    from feature_platform.training import run_training
    from tests.conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("lineage") / "repo")
    store = get_store("local", repo=repo)
    apply_definitions(store)
    labels = pd.read_parquet(repo / "data" / "churn_labels.parquet")
    first = run_training(store, labels)
    second = run_training(store, labels, threshold=1.01)
    return {"repo": repo, "store": store, "first": first, "second": second}


def test_store_is_the_profiles_embedded_sqlite(lineage_repo: dict[str, Any]) -> None:
    repo: Path = lineage_repo["repo"]
    uri = lineage_repo["store"].config.mlflow.tracking_uri
    assert uri == f"sqlite:///{repo / 'data' / 'mlflow' / 'mlflow.db'}"
    assert (repo / "data" / "mlflow" / "mlflow.db").is_file()
    # Artifacts beside the store, not ./mlruns under the current directory.
    assert any((repo / "data" / "mlflow" / "artifacts").rglob("MLmodel"))
    assert not Path("mlruns").exists()


def test_run_records_params_metrics_window_rows_and_features(
    lineage_repo: dict[str, Any],
) -> None:
    from feature_platform.lineage import mlflow_client

    summary = lineage_repo["first"]
    registered = summary["registered"]
    client = mlflow_client(store=lineage_repo["store"])
    run = client.get_run(registered["run_id"])
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert {k: params[k] for k in ("n_estimators", "learning_rate", "max_depth")} == {
        "n_estimators": "200",
        "learning_rate": "0.1",
        "max_depth": "3",
    }
    window = summary["training_window"]
    assert params["training_window_start"] == window["start"]
    assert params["training_window_end"] == window["end"]
    assert window["start"].endswith("+00:00") and window["end"].endswith("+00:00")
    assert params["feature_service"] == SERVICE
    rows = summary["rows"]
    assert metrics["rows_total"] == rows["total"] == rows["train"] + rows["test"]
    assert (metrics["rows_train"], metrics["rows_test"]) == (
        rows["train"],
        rows["test"],
    )
    assert metrics["roc_auc"] == summary["metrics"]["roc_auc"]
    assert tags["feast.feature_service"] == SERVICE
    assert tags["feast.feature_refs"].split(",") == REFS
    assert tags["feast.project"] == lineage_repo["store"].project
    # Feast's log_model wrote feast_features.json from the run's refs.
    path = client.download_artifacts(registered["run_id"], "feast_features.json")
    assert json.loads(Path(path).read_text()) == REFS
    assert (
        run.info.experiment_id
        == client.get_experiment_by_name(lineage_repo["store"].project).experiment_id
    )


def test_registered_per_feature_service_with_gate_alias(
    lineage_repo: dict[str, Any],
) -> None:
    first, second = lineage_repo["first"], lineage_repo["second"]
    assert first["registered"]["model_name"] == SERVICE
    assert second["registered"]["model_name"] == SERVICE
    assert second["registered"]["version"] == first["registered"]["version"] + 1
    assert first["registered"]["aliases"] == ["champion"]
    assert second["registered"]["aliases"] == []  # below the gate: not champion


def test_model_to_feature_service_refs_and_window(
    lineage_repo: dict[str, Any],
) -> None:
    from feature_platform.lineage import model_lineage

    store, first = lineage_repo["store"], lineage_repo["first"]
    # store= also runs Feast's resolver (feature service exists, same features).
    champion = model_lineage(SERVICE, "champion", store=store)
    assert champion.version == first["registered"]["version"]
    assert champion.aliases == ("champion",)
    assert champion.feature_service == SERVICE
    assert list(champion.features) == REFS
    assert champion.training_window == first["training_window"]
    assert champion.rows == first["rows"]
    assert champion.metrics is not None
    assert champion.metrics["roc_auc"] == first["metrics"]["roc_auc"]
    v2 = model_lineage(
        SERVICE,
        lineage_repo["second"]["registered"]["version"],
        tracking_uri=store.config.mlflow.tracking_uri,
    )
    assert v2.aliases == ()
    assert v2.run_id == lineage_repo["second"]["registered"]["run_id"]
    # By number, the champion still shows its alias.
    v1 = model_lineage(SERVICE, first["registered"]["version"], store=store)
    assert v1.aliases == ("champion",)


def test_feature_to_models(lineage_repo: dict[str, Any]) -> None:
    from feature_platform.lineage import consumers_by_feature, models_consuming

    store = lineage_repo["store"]
    v1 = lineage_repo["first"]["registered"]["version"]
    v2 = lineage_repo["second"]["registered"]["version"]
    for target in ("customer_stats:lifetime_value", "customer_stats", SERVICE):
        found = models_consuming(target, store=store)
        assert [(m.name, m.version) for m in found] == [(SERVICE, v2), (SERVICE, v1)]
    assert [str(m) for m in models_consuming(SERVICE, store=store)] == [
        f"{SERVICE} v{v2}",
        f"{SERVICE} v{v1} @champion",
    ]
    # Features no registered model was trained on.
    assert models_consuming("customer_stats:preferred_category", store=store) == []
    assert models_consuming("driver_stats:avg_rating", store=store) == []
    assert models_consuming("driver_stats", store=store) == []
    index = consumers_by_feature(store=store)
    assert set(index) == {SERVICE, *REFS}
    assert [m.version for m in index["customer_stats:total_orders"]] == [v2, v1]


def test_prediction_loads_the_registered_champion(
    lineage_repo: dict[str, Any],
) -> None:
    from feature_platform.training import load_registered_model, predict

    store = lineage_repo["store"]
    champion = load_registered_model(SERVICE, "champion", store=store)
    v2 = load_registered_model(
        SERVICE, lineage_repo["second"]["registered"]["version"], store=store
    )
    assert champion.metadata["feature_service"] == SERVICE
    assert champion.metadata["features"] == [r.split(":")[1] for r in REFS]
    assert (
        champion.metadata["training_window"]
        == (lineage_repo["first"]["training_window"])
    )
    assert champion.metadata["metrics"] == lineage_repo["first"]["metrics"]
    # Same data, same seed: both versions are the same model (reproducible).
    frame = pd.DataFrame({f: [1.0, 50.0, None] for f in champion.metadata["features"]})
    assert predict(champion, frame).tolist() == predict(v2, frame).tolist()


def test_bad_lookups_name_what_was_wrong(lineage_repo: dict[str, Any]) -> None:
    from feature_platform.lineage import LineageError, model_lineage, models_consuming

    store = lineage_repo["store"]
    with pytest.raises(LineageError, match="no version or alias 'nope'"):
        model_lineage(SERVICE, "nope", store=store)
    with pytest.raises(LineageError, match="'no_such_model'"):
        model_lineage("no_such_model", 1, store=store)
    with pytest.raises(ValueError, match="feature ref, view or service"):
        models_consuming("  ", store=store)


def test_cli_lineage_and_predict(
    lineage_repo: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    from feature_platform.cli import main

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(lineage_repo["repo"]))
    v1 = lineage_repo["first"]["registered"]["version"]
    assert main(["lineage", "--consumers-of", "customer_stats:lifetime_value"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert f"{SERVICE} v{v1} @champion" in out
    assert main(["lineage", "--consumers-of", "driver_stats:avg_rating"]) == 1
    assert json.loads(capsys.readouterr().out) == []
    assert main(["lineage", "--model", SERVICE]) == 0
    needs = json.loads(capsys.readouterr().out)
    assert needs["features"] == REFS and needs["version"] == v1
    assert main(["predict", "--customer-id", "1000000", "1000001"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert preds["feature_service"] == SERVICE
    assert [p["customer_id"] for p in preds["predictions"]] == [1000000, 1000001]
    assert all(0 <= p["churn_probability"] <= 1 for p in preds["predictions"])


def test_a_second_store_in_the_process_keeps_its_own_registry(
    lineage_repo: dict[str, Any], tmp_path: Path
) -> None:
    """MLflow's registry URI is process-global (Feast's client reads it): a
    second repo's training registers into its own store, not the first's."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.lineage import model_lineage, models_consuming
    from feature_platform.profiles import get_store
    from feature_platform.training import run_training
    from tests.conftest import make_repo

    other_repo = make_repo(tmp_path / "other")
    other = get_store("local", repo=other_repo)
    apply_definitions(other)
    labels = pd.read_parquet(other_repo / "data" / "churn_labels.parquet")
    trained = run_training(other, labels, n_estimators=20, threshold=0.5)
    assert trained["registered"]["version"] == 1
    assert [str(m) for m in models_consuming(SERVICE, store=other)] == [
        f"{SERVICE} v1 @champion"
    ]
    first = lineage_repo["store"]
    assert [m.version for m in models_consuming(SERVICE, store=first)] == [2, 1]
    # Feast's resolver (store=) reads the first store's registry again.
    assert model_lineage(SERVICE, "champion", store=first).version == 1


def test_monitor_reference_window_is_the_champions_training_window(
    lineage_repo: dict[str, Any], tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from feature_platform.lineage import training_window
    from feature_platform.monitoring.window import default_windows
    from feature_platform.profiles import get_store
    from tests.conftest import make_repo

    store, first = lineage_repo["store"], lineage_repo["first"]
    window, source = training_window(SERVICE, store=store)
    assert window == first["training_window"] and "@champion" in source
    end = datetime.fromisoformat(window["end"])
    ref, cur = default_windows(now=end + timedelta(days=2), store=store)
    assert ref.start == datetime.fromisoformat(window["start"])
    assert ref.end == end and ref.label == source and ref.end <= cur.start

    # No registry yet (a fresh repo): no window, the reason says why, and the
    # monitor falls back to the 30 days before the current window.
    empty = get_store("local", repo=make_repo(tmp_path / "repo"))
    window, why = training_window(SERVICE, store=empty)
    assert window is None and "no MLflow store" in why
    now = datetime(2026, 11, 30, tzinfo=UTC)
    ref, cur = default_windows(now=now, store=empty)
    assert (ref.start, ref.end) == (now - timedelta(days=31), now - timedelta(days=1))
    assert not (tmp_path / "repo" / "data" / "mlflow" / "mlflow.db").exists()
