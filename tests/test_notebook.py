"""notebooks/quickstart.ipynb: committed without outputs, and it runs headless.

The notebook is executed with nbclient on the embedded (local) profile against a
temporary copy of the feature repo with small sample data, in a kernel of this
interpreter (the .venv's ipykernel: jupyter_client starts ``python3`` kernels
with ``sys.executable``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.conftest import make_repo

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
CELL_TIMEOUT_S = 600


def _load() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)


def _text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        for kind in ("text/plain", "text/html"):
            if kind in out.get("data", {}):
                parts.append(out["data"][kind])
    return "\n".join(parts)


def test_notebook_is_valid_and_stripped() -> None:
    nb = _load()
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for cell in code:
        assert cell.outputs == [], "commit the notebook with outputs stripped"
        assert cell.execution_count is None, "commit without execution counts"
        assert "execution" not in cell.metadata, "strip: scripts/strip_notebooks.py"
    for cell in nb.cells:
        assert not cell.get("attachments"), "no embedded attachments"


def test_notebook_reads_features_with_feasts_own_api() -> None:
    """Data scientists write FeatureStore calls; the platform only for the model."""
    source = "\n".join(c.source for c in _load().cells if c.cell_type == "code")
    assert "get_store(" in source  # the front door
    assert "store.get_historical_features(" in source
    assert "store.get_online_features(" in source
    for side_path in ("build_training_set", "read_online", "predict_online"):
        assert side_path not in source, side_path
    for step in ("as_training_set", "split_training_set", "train(", "evaluate("):
        assert step in source, step  # the shared training steps


@pytest.fixture
def notebook_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(repo))
    monkeypatch.setenv("FEATURE_PLATFORM_PROFILE", "local")
    monkeypatch.setenv("FEATURE_PLATFORM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv("FEATURE_PLATFORM_DATA_DIR", raising=False)
    return repo


def test_notebook_runs_headless(notebook_env: Path, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    nb = _load()
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors

    everything = "\n".join(_text(c) for c in code)
    # It ran on the temporary repo and the embedded profile.
    assert "profile 'local'" in everything
    assert str(notebook_env / "data") in everything
    assert "already up to date" in everything  # the fixture's data was used
    # Feature services listed, PIT training set, a model better than chance.
    assert "churn_prediction_service" in everything
    assert "driver_matching_service" in everything
    auc_line = next(line for line in everything.splitlines() if "ROC AUC" in line)
    auc = float(auc_line.split("ROC AUC ")[1].split()[0])
    assert auc > 0.6, auc_line
    # Online features were written and read back with a prediction.
    assert "rows written" in everything and "churn_probability" in everything
    # The model step logged and registered the model like `feature-platform
    # train` and KFP (the repo's MLflow store), with the same metadata.
    from feature_platform.lineage import model_lineage, models_consuming
    from feature_platform.profiles import get_store
    from feature_platform.training import ModelMetadata, load_registered_model

    store = get_store("local")
    assert store.config.mlflow.tracking_uri.endswith(
        str(notebook_env / "data" / "mlflow" / "mlflow.db")
    )
    (newest,) = models_consuming("churn_prediction_service", store=store)
    assert f"v{newest.version} " in everything  # the notebook printed it
    saved = load_registered_model(newest.name, newest.version, store=store)
    meta = saved.metadata
    assert set(meta) == set(ModelMetadata.__annotations__) - {"published_at", "gate"}
    assert meta["feature_service"] == "churn_prediction_service"
    assert meta["hyperparameters"]["n_estimators"] == 200
    assert meta["metrics"]["roc_auc"] == auc
    lineage = model_lineage(newest.name, newest.version, store=store)
    assert lineage.training_window == meta["training_window"]
    assert ("champion" in lineage.aliases) is (auc >= 0.75)  # the publish gate
    assert not (tmp_path / "artifacts").exists()  # the registry is the model's home
    # The distribution plot rendered as an image.
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
