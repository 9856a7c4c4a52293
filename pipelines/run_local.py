"""Run the compiled churn training pipeline locally with ``kfp.local``.

``make pipeline-run-local`` calls this: it makes sure the embedded (``local``)
profile has sample data and applied definitions, then runs the *committed*
``pipelines/compiled/churn_training_pipeline.yaml`` (what a cluster would run)
with ``kfp.local.SubprocessRunner(use_venv=False)``: every component is a
subprocess of this virtualenv, which has the project installed like the image.

One workaround lives here. kfp 2.16's local condition evaluator cannot resolve
the ``inputs.parameter_values['pipelinechannel--…']`` references the compiler
emits, so every ``dsl.If`` silently evaluates to False locally (it only logs
"Could not resolve parent input"). ``strict_local_conditions`` swaps in an
evaluator that resolves the channels from the run's values and raises on
anything it cannot resolve, for the duration of a run. On a cluster the KFP
backend evaluates the same compiled condition.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMPILED = ROOT / "pipelines" / "compiled" / "churn_training_pipeline.yaml"
_CHANNEL = re.compile(r"pipelinechannel--[A-Za-z0-9_\-]+")

__all__ = ["default_window", "main", "run_local", "strict_local_conditions"]


def _resolve_channel(name: str, io_store: Any) -> Any:
    """Value of ``pipelinechannel--<input>`` or ``pipelinechannel--<task>-<output>``."""
    ref = name.removeprefix("pipelinechannel--")
    with contextlib.suppress(ValueError):
        return io_store.get_parent_input(ref)
    # Task names are kebab-case and output names identifiers: split at a dash.
    for i in [m.start() for m in re.finditer("-", ref)][::-1]:
        with contextlib.suppress(ValueError):
            return io_store.get_task_output(ref[:i], ref[i + 1 :])
    raise ValueError(f"kfp.local condition: cannot resolve {name!r}")


def _evaluate_condition(condition: str, io_store: Any) -> bool:
    """Evaluate a compiled (CEL) trigger condition over the run's values."""
    names = _CHANNEL.findall(condition)
    values = {name: _resolve_channel(name, io_store) for name in names}
    expression = (
        condition.replace("&&", " and ")
        .replace("||", " or ")
        .replace("true", "True")
        .replace("false", "False")
    )
    scope = {"inputs": SimpleNamespace(parameter_values=values)}
    result = eval(expression, {"__builtins__": {}}, scope)  # noqa: S307 - compiled by kfp
    return bool(result)


@contextlib.contextmanager
def strict_local_conditions() -> Iterator[None]:
    """Make ``dsl.If`` work under kfp.local (see the module docstring)."""
    _shadowed_docker_guard()
    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    cls = orchestrator.ConditionEvaluator
    original = cls.__dict__["evaluate_condition"]
    cls.evaluate_condition = staticmethod(_evaluate_condition)
    try:
        yield
    finally:
        cls.evaluate_condition = original


def _shadowed_docker_guard() -> None:
    """Keep this repo's ``docker/`` directory from posing as the docker SDK.

    kfp.local imports ``docker`` optionally (``except ImportError``). With the
    repo root on ``sys.path`` (pytest, ``python -m``) the ``docker/`` directory
    that holds our Dockerfile imports as an empty namespace package instead,
    and kfp.local crashes with ``AttributeError: ... DockerClient``.
    """
    import importlib.util

    if "docker" in sys.modules:
        return
    spec = importlib.util.find_spec("docker")
    if spec is not None and spec.origin in (None, "namespace"):
        sys.modules["docker"] = None  # type: ignore[assignment]  # -> ImportError


def default_window(*, days: int = 30, now: datetime | None = None) -> tuple[str, str]:
    """The last ``days`` days up to the last full hour, as UTC ISO strings."""
    end = (now or datetime.now(UTC)).astimezone(UTC)
    end = end.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    return start.isoformat(), end.isoformat()


def _artifact(artifact: Any) -> dict[str, Any]:
    return {"path": artifact.path, "metadata": dict(artifact.metadata)}


def run_local(
    *,
    training_start: str,
    training_end: str,
    pipeline_root: Path | str,
    profile: str = "local",
    feature_service: str = "churn_prediction_service",
    threshold: float = 0.75,
    n_estimators: int = 200,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    test_fraction: float = 0.25,
    labels_uri: str = "",
    materialize_end: str = "",
    publish_uri: str = "",
    package: Path | str = COMPILED,
) -> dict[str, Any]:
    """Run the compiled pipeline with kfp.local; return what it produced.

    Each run gets its own directory under ``pipeline_root``. ``published`` says
    whether the AUC gate let ``publish_op`` run.
    """
    _shadowed_docker_guard()
    from kfp import components, local

    run_root = Path(pipeline_root) / (
        datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    )
    run_root.mkdir(parents=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(run_root),
        raise_on_error=True,
    )
    pipeline = components.load_component_from_file(str(package))
    with strict_local_conditions(), warnings.catch_warnings():
        # Our image name has no "python" in it; the subprocess runs this venv.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        task = pipeline(
            training_start=training_start,
            training_end=training_end,
            profile=profile,
            feature_service=feature_service,
            threshold=threshold,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            max_depth=max_depth,
            test_fraction=test_fraction,
            labels_uri=labels_uri,
            materialize_end=materialize_end,
            publish_uri=publish_uri,
        )
    published = sorted(run_root.rglob("publish-op/published_model"))
    metrics = task.outputs["metrics"]
    return {
        "run_root": str(run_root),
        "materialized_rows": task.outputs["materialized_rows"],
        "dataset": _artifact(task.outputs["dataset"]),
        "model": _artifact(task.outputs["model"]),
        "metrics": dict(metrics.metadata),
        "roc_auc": task.outputs["roc_auc"],
        "threshold": threshold,
        "published": bool(published),
        "published_model": str(published[0]) if published else None,
        "publish_uri": publish_uri or None,
    }


def _plain(value: Any) -> Any:
    """Artifact metadata travels as protobuf Struct: counts come back as floats."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def main(argv: list[str] | None = None) -> int:
    """``make pipeline-run-local``: sample data + apply, then the local run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="local")
    parser.add_argument("--feature-service", default="churn_prediction_service")
    parser.add_argument("--start", help="training window start (UTC ISO)")
    parser.add_argument("--end", help="training window end (UTC ISO)")
    parser.add_argument("--days", type=int, default=30, help="window when no --start")
    parser.add_argument("--threshold", type=float, default=0.75)
    parser.add_argument("--n-estimators", type=int, default=200)
    args = parser.parse_args(argv)

    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import artifacts_dir, data_dir, get_store

    if args.profile != "production":  # local and services read the sample parquet
        from feature_platform.demo import ensure_sample_data

        ensure_sample_data(data_dir())
    apply_definitions(get_store(args.profile))
    start, end = default_window(days=args.days)
    start, end = args.start or start, args.end or end
    out = artifacts_dir()
    result = run_local(
        training_start=start,
        training_end=end,
        pipeline_root=out / "kfp_local",
        profile=args.profile,
        feature_service=args.feature_service,
        threshold=args.threshold,
        n_estimators=args.n_estimators,
        publish_uri=str(out / "published" / "churn_model"),
    )
    dataset = result["dataset"]["metadata"]
    summary = {
        "training_window": {"start": start, "end": end},
        "materialized_rows": result["materialized_rows"],
        "training_rows": _plain(dataset.get("rows")),
        "label_counts": _plain(dict(sorted(dataset.get("label_counts", {}).items()))),
        "metrics": _plain(dict(sorted(result["metrics"].items()))),
        "threshold": result["threshold"],
        "published": result["published"],
        "model": result["model"]["path"],
        "published_to": result["publish_uri"] if result["published"] else None,
        "run_root": result["run_root"],
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
