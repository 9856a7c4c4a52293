"""Static checks of the churn training pipeline: compile, committed YAML, components."""

from __future__ import annotations

import builtins
import dis
import importlib
import inspect
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_END

pipeline_module = importlib.import_module("pipelines.churn_training_pipeline")
COMPONENTS = {
    name: getattr(pipeline_module, name)
    for name in (
        "materialize_op",
        "build_training_set_op",
        "train_op",
        "evaluate_op",
        "publish_op",
    )
}
PIPELINE_PARAMS = {
    "profile",
    "feature_service",
    "training_start",
    "training_end",
    "threshold",
    "n_estimators",
}


def _compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Compile with the default image, as the committed YAML is."""
    monkeypatch.delenv("FEATURE_PLATFORM_IMAGE", raising=False)
    module = importlib.reload(pipeline_module)
    return module.compile_pipeline(tmp_path / "pipeline.yaml")


def test_pipeline_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = yaml.safe_load(_compile(tmp_path, monkeypatch).read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert PIPELINE_PARAMS <= set(params)
    assert params["training_start"]["parameterType"] == "STRING"
    assert params["threshold"]["parameterType"] == "NUMBER_DOUBLE"
    assert params["n_estimators"]["parameterType"] == "NUMBER_INTEGER"
    tasks = spec["root"]["dag"]["tasks"]
    assert {
        "materialize-op",
        "build-training-set-op",
        "train-op",
        "evaluate-op",
    } <= set(tasks)
    gate = tasks["condition-1"]
    assert gate["taskInfo"]["name"] == "auc-gate"
    condition = gate["triggerPolicy"]["condition"]
    assert "evaluate-op-roc_auc" in condition and ">=" in condition
    assert "threshold" in condition
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"publish-op"}
    # materialize runs first; evaluation uses the training set and the model
    assert tasks["build-training-set-op"]["dependentTasks"] == ["materialize-op"]
    assert set(tasks["evaluate-op"]["dependentTasks"]) == {
        "build-training-set-op",
        "train-op",
    }


def test_committed_yaml_is_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _compile(tmp_path, monkeypatch).read_text()
    committed = pipeline_module.COMPILED
    assert committed.is_file(), f"{committed} is missing"
    assert committed.read_text() == fresh, (
        f"{committed.name} is stale versus pipelines/churn_training_pipeline.py; "
        "run `make pipeline-compile` and commit the YAML"
    )


def test_every_executor_uses_the_one_base_image() -> None:
    spec = yaml.safe_load(pipeline_module.COMPILED.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == len(COMPONENTS)
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == pipeline_module.DEFAULT_IMAGE, name
        # the image has the project installed: nothing is pip-installed at run time
        assert "pip install" not in " ".join(container["command"]), name


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_is_typed(name: str) -> None:
    component = COMPONENTS[name]
    func = component.python_func
    signature = inspect.signature(func)
    for param in signature.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, (name, param.name)
    spec = component.component_spec
    assert spec.inputs, name
    assert spec.outputs, name  # an artifact or a return value
    for io_name, io_spec in {**spec.inputs, **(spec.outputs or {})}.items():
        assert io_spec.type and io_spec.type != "Any", (name, io_name)
    assert spec.implementation.container.image == pipeline_module.IMAGE


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_calls_no_module_helpers(name: str) -> None:
    """KFP ships only the function's source (kubeflow/pipelines#8792)."""

    def code_objects(code):  # the body plus nested comprehensions/lambdas
        yield code
        for const in code.co_consts:
            if inspect.iscode(const):
                yield from code_objects(const)

    func = COMPONENTS[name].python_func
    globals_used = {
        ins.argval
        for code in code_objects(func.__code__)
        for ins in dis.get_instructions(code)
        if ins.opname in {"LOAD_GLOBAL", "LOAD_NAME"}
    }
    not_builtin = {g for g in globals_used if not hasattr(builtins, g)}
    assert not not_builtin, f"{name} uses module-level names {sorted(not_builtin)}"


# --------------------------------------------------- components run in-process


@pytest.fixture
def on_sample_repo(applied_local_store, sample_repo: Path, monkeypatch):
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(sample_repo))
    return applied_local_store


def test_build_training_set_op_drops_rows_outside_the_window(
    on_sample_repo, sample_repo: Path, tmp_path: Path
) -> None:
    import pandas as pd
    from kfp.dsl import Dataset

    labels = pd.read_parquet(sample_repo / "data" / "churn_labels.parquet")
    end = TEST_END - timedelta(days=2)
    start = end - timedelta(days=3)
    inside = labels[(labels.event_timestamp >= start) & (labels.event_timestamp < end)]
    assert (labels.event_timestamp >= end).any()  # there is something to exclude
    dataset = Dataset(name="dataset", uri=str(tmp_path / "dataset"), metadata={})
    COMPONENTS["build_training_set_op"].python_func(
        profile="local",
        feature_service="churn_prediction_service",
        labels_uri="",
        training_start=start.isoformat(),
        training_end=end.isoformat().replace("+00:00", "Z"),
        dataset=dataset,
    )
    data = pd.read_parquet(dataset.path)
    assert len(data) == len(inside) == dataset.metadata["rows"]
    assert data.event_timestamp.min() >= start and data.event_timestamp.max() < end
    counts = dataset.metadata["label_counts"]
    assert counts == {
        str(k): int(v) for k, v in inside.churned.value_counts().sort_index().items()
    }
    assert dataset.metadata["positive_rate"] == round(float(inside.churned.mean()), 4)


def test_build_training_set_op_on_the_on_demand_service(
    on_sample_repo, sample_repo: Path, tmp_path: Path
) -> None:
    """The KFP step builds version 2's training set: the labels' cart_value
    feeds the on-demand checkout_value outputs, computed by the repo's function."""
    import pandas as pd
    from kfp.dsl import Dataset

    from feature_platform.profiles import repo_module

    dataset = Dataset(name="dataset", uri=str(tmp_path / "dataset"), metadata={})
    COMPONENTS["build_training_set_op"].python_func(
        profile="local",
        feature_service="churn_prediction_service_v2",
        labels_uri="",
        training_start=(TEST_END - timedelta(days=5)).isoformat(),
        training_end=TEST_END.isoformat().replace("+00:00", "Z"),
        dataset=dataset,
    )
    data = pd.read_parquet(dataset.path)
    assert len(data) == dataset.metadata["rows"] > 0
    fn = repo_module("transformations", repo=sample_repo).checkout_value

    def plain(values):
        return [None if pd.isna(v) else float(v) for v in values]

    want = fn(
        {
            c: plain(data[c])
            for c in ("cart_value", "avg_order_amount", "lifetime_value")
        }
        | {"total_orders": plain(data["total_orders"])}
    )
    for name, values in want.items():
        assert plain(data[name]) == [None if v is None else float(v) for v in values]


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        ("2026-01-01T00:00:00", "2026-01-02T00:00:00Z", "no timezone"),
        ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "empty training window"),
        ("yesterday", "2026-01-01T00:00:00Z", "not an ISO-8601"),
    ],
)
def test_build_training_set_op_rejects_bad_windows(
    on_sample_repo, tmp_path: Path, start: str, end: str, error: str
) -> None:
    from kfp.dsl import Dataset

    dataset = Dataset(name="dataset", uri=str(tmp_path / "dataset"), metadata={})
    with pytest.raises(ValueError, match=error):
        COMPONENTS["build_training_set_op"].python_func(
            profile="local",
            feature_service="churn_prediction_service",
            labels_uri="",
            training_start=start,
            training_end=end,
            dataset=dataset,
        )
    assert not Path(dataset.path).exists()


def test_publish_op_refuses_a_model_below_the_threshold(tmp_path: Path) -> None:
    """Defence in depth: even a runner that ignores the gate cannot publish."""
    from kfp.dsl import Model

    from feature_platform.training import GateError

    model = Model(name="model", uri=str(tmp_path / "model"), metadata={})
    out = Model(name="published_model", uri=str(tmp_path / "published"), metadata={})
    with pytest.raises(GateError, match="below the gate threshold"):
        COMPONENTS["publish_op"].python_func(
            model=model,
            roc_auc=0.6,
            threshold=0.7,
            publish_uri=str(tmp_path / "registry"),
            published_model=out,
        )
    assert not (tmp_path / "published").exists()
    assert not (tmp_path / "registry").exists()


# ------------------------------------------------ the kfp.local condition fix


class _Store:
    def __init__(self, parents: dict, tasks: dict) -> None:
        self.parents, self.tasks = parents, tasks

    def get_parent_input(self, key: str):
        if key not in self.parents:
            raise ValueError(key)
        return self.parents[key]

    def get_task_output(self, task: str, key: str):
        if key not in self.tasks.get(task, {}):
            raise ValueError(task, key)
        return self.tasks[task][key]


GATE = (
    "inputs.parameter_values['pipelinechannel--evaluate-op-roc_auc'] >= "
    "inputs.parameter_values['pipelinechannel--threshold']"
)


@pytest.mark.parametrize(
    ("auc", "threshold", "expected"),
    [(0.8, 0.75, True), (0.75, 0.75, True), (0.74, 0.75, False), (0.99, 1.01, False)],
)
def test_local_condition_evaluator(
    auc: float, threshold: float, expected: bool
) -> None:
    from pipelines.run_local import _evaluate_condition

    store = _Store({"threshold": threshold}, {"evaluate-op": {"roc_auc": auc}})
    assert _evaluate_condition(GATE, store) is expected


def test_local_condition_evaluator_fails_loudly_on_unknown_channels() -> None:
    from pipelines.run_local import _evaluate_condition

    with pytest.raises(ValueError, match="cannot resolve"):
        _evaluate_condition(GATE, _Store({"threshold": 0.5}, {}))
