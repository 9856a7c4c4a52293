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
    assert (Path(second["steps"]["train"]["model_dir"]) / "model.joblib").exists()


def _last_json(stdout: str) -> dict:
    start = stdout.index("\n{\n") + 1 if not stdout.startswith("{") else 0
    return json.loads(stdout[start:])
