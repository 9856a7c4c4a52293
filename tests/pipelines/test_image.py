"""Static checks of docker/Dockerfile (no docker engine here to build it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_base_is_python_311_slim() -> None:
    froms = [arg for op, arg in _instructions() if op == "FROM"]
    assert froms == ["python:3.11-slim"]


def test_installs_the_locked_project_without_dev_dependencies() -> None:
    commands = [
        cmd.strip()
        for op, arg in _instructions()
        if op == "RUN"
        for cmd in re.split(r"&&|;", arg)
    ]
    syncs = [cmd.split("uv sync", 1)[1] for cmd in commands if "uv sync" in cmd]
    assert syncs, "the image must install from uv.lock with uv sync"
    for flags in syncs:
        for flag in ("--frozen", "--no-dev", "--compile-bytecode"):
            assert flag in flags, (flag, flags)
    assert any("--no-install-project" not in f for f in syncs), "project not installed"


def test_copied_sources_exist() -> None:
    copies = [arg.split()[:-1] for op, arg in _instructions() if op == "COPY"]
    sources = [src for srcs in copies for src in srcs if not src.startswith("--")]
    assert {"pyproject.toml", "uv.lock", "src", "feature_repo", "dags"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such path in the repo"


def test_uv_version_matches_the_makefile() -> None:
    arg = re.search(r"ARG UV_VERSION=(\S+)", DOCKERFILE.read_text())
    make = re.search(r"UV_VERSION := (\S+)", (ROOT / "Makefile").read_text())
    assert arg and make and arg.group(1) == make.group(1)
