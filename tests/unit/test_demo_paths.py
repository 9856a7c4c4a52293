"""What the demo prints names no machine's directories (README shows its output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_platform.demo import _shown


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("{cwd}/feature_repo/data", "feature_repo/data"),
        ("sqlite:///{cwd}/feature_repo/data/mlflow/mlflow.db",
         "sqlite:///feature_repo/data/mlflow/mlflow.db"),
        ("/elsewhere/data", "/elsewhere/data"),  # outside the working directory
        ("sqlite:////elsewhere/mlflow.db", "sqlite:////elsewhere/mlflow.db"),
        ("postgresql://mlflow@db/mlflow", "postgresql://mlflow@db/mlflow"),
    ],
)  # fmt: skip
def test_locations_under_the_working_directory_are_relative(
    location: str, shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _shown(location.format(cwd=tmp_path)) == shown
