"""The console script: cheap to start, clear errors, and the demo job end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feature_platform.cli import main


def test_cli_import_does_not_load_feast() -> None:
    code = (
        "import sys, feature_platform.cli; print(sorted(m for m in "
        "('feast', 'sklearn', 'great_expectations') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_help_lists_commands() -> None:
    exe = Path(sys.executable).parent / "feature-platform"
    out = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, check=True
    )
    for command in ("generate", "apply", "materialize", "train", "online", "demo"):
        assert command in out.stdout


@pytest.fixture
def repo_env(local_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_ARTIFACTS", str(tmp_path / "artifacts"))
    return local_repo


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "materialize",
                "--start",
                "2026-01-01T00:00:00",
                "--end",
                "2026-01-02T00:00:00Z",
            ],
            "--start=2026-01-01T00:00:00 has no timezone",
        ),
        (["materialize", "--start", "2026-01-01T00:00:00Z"], "--start needs --end"),
        (["materialize", "--end", "yesterday"], "is not an ISO-8601 timestamp"),
        (["--profile", "staging", "apply"], "unknown profile 'staging'"),
        (
            ["online", "--feature-service", "churn_prediction_service"],
            "entity_rows is empty",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(repo_env, capsys, argv, message) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_demo_twice_is_incremental(repo_env: Path, capsys) -> None:
    assert main(["demo", "--json"]) == 0
    first = _last_json(capsys.readouterr().out)
    assert first["steps"]["materialize"]["rows_total"] > 0
    assert main(["demo", "--json"]) == 0
    second = _last_json(capsys.readouterr().out)
    assert second["steps"]["data"]["generated"] is False
    assert second["steps"]["materialize"]["rows_total"] == 0
    assert second["steps"]["train"]["metrics"]["roc_auc"] > 0.7
    predictions = second["steps"]["online"]["predictions"]
    assert len(predictions) == 5
    assert all(0 <= p["churn_probability"] <= 1 for p in predictions)
    # Each run registered a model version; step 5 predicted with the champion.
    registered = [run["steps"]["train"]["registered"] for run in (first, second)]
    assert [r["version"] for r in registered] == [1, 2]
    assert registered[1]["aliases"] == ["champion"]
    assert second["steps"]["train"]["model_dir"] is None  # the registry is its home
    # Step 6: a checkout scored by the model on service v2, with its cart value.
    checkout = second["steps"]["checkout"]
    assert checkout["feature_service"] == "churn_prediction_service_v2"
    assert checkout["request"]["cart_value"] == 80.0
    assert 0 <= checkout["prediction"]["churn_probability"] <= 1
    assert "cart_to_avg_ratio" in checkout["prediction"]
    assert (repo_env / "data" / "mlflow" / "mlflow.db").is_file()


def _last_json(stdout: str) -> dict:
    start = stdout.index("\n{\n") + 1 if not stdout.startswith("{") else 0
    return json.loads(stdout[start:])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["generate", "--days", "1"],
            "argument --days: must be an integer >= 2, got 1",
        ),
        (["generate", "--days", "ten"], "argument --days: must be an integer >= 2"),
        (
            ["generate", "--customers", "0"],
            "argument --customers: must be an integer >= 1",
        ),
        (
            ["generate", "--drivers", "-1"],
            "argument --drivers: must be an integer >= 1",
        ),
        (["generate", "--seed", "-1"], "argument --seed: must be an integer >= 0"),
        (
            ["train", "--n-estimators", "0"],
            "argument --n-estimators: must be an integer >= 1",
        ),
        (["recover", "--sample", "0"], "argument --sample: must be an integer >= 1"),
        (["monitor", "--sample", "-5"], "argument --sample: must be an integer >= 1"),
        (
            ["monitor", "--latency-reads", "0"],
            "argument --latency-reads: must be an integer >= 1",
        ),
        (["audit", "--limit", "0"], "argument --limit: must be an integer >= 1"),
        (["validate", "--hours", "0"], "argument --hours: must be a number > 0, got 0"),
        (["validate", "--hours", "nan"], "argument --hours: must be a number > 0"),
        (["validate", "--hours", "inf"], "argument --hours: must be a number > 0"),
    ],
)
def test_out_of_range_arguments_are_named(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("days", ["2", "10", "14"])
def test_generate_short_histories(tmp_path: Path, capsys, days: str) -> None:
    argv = ["generate", "--days", days, "--customers", "50", "--drivers", "5"]
    assert main([*argv, "--out", str(tmp_path), "--end", "2026-06-01T00:00:00Z"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["spec"]["days"] == int(days)
    assert all(n > 0 for n in summary["rows"].values())


@pytest.mark.parametrize(
    "argv",
    [
        ["materialize"],
        [
            "materialize",
            "--start",
            "2026-01-01T00:00:00Z",
            "--end",
            "2026-01-02T00:00:00Z",
        ],
        ["recover", "--check"],
        [
            "online",
            "--feature-service",
            "churn_prediction_service",
            "--customer-id",
            "1",
        ],
        ["validate"],
    ],
)
def test_never_applied_registry_says_run_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, argv
) -> None:
    """A repo that was never generated nor applied (no data/ directory): not a
    sqlite "unable to open database file", but what to do."""
    from tests.conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    assert not (repo / "data").exists()
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(repo))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no definitions" in err
    assert "run `feature-platform apply`" in err


def test_apply_works_on_a_fresh_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tests.conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(repo))
    assert main(["apply"]) == 0
    assert (
        "customer_stats"
        in _last_json(capsys.readouterr().out)["objects"]["feature_views"]
    )
    assert main(["audit"]) == 0
