"""A changed on-demand transformation is refused by ``check`` and ``apply`` on
the services profile (PostgreSQL registry), applied with ``--allow-breaking
--reason`` and audited; a new output passes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_services_store

pytestmark = pytest.mark.integration


@pytest.fixture
def store(
    services_env: dict[str, str], local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv("FEATURE_PLATFORM_ACTOR", "ci@example.com")
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(local_repo / "data"))
    with fresh_services_store(local_repo, monkeypatch, "odfvguard") as applied:
        yield applied


def _changed_copy(src: Path, dst: Path, old: str, new: str) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    path = dst / "transformations.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return dst


def _cli(capsys, monkeypatch, repo: Path, *args: str) -> tuple[int, str, str]:
    from feature_platform.cli import main

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(repo))
    capsys.readouterr()
    rc = main(["--profile", "services", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_changed_transformation_is_refused_then_applied_with_a_reason(
    store, local_repo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from feature_platform.audit import list_audit
    from feature_platform.governance import definitions_snapshot, registry_snapshot

    before = registry_snapshot(store)
    repo = _changed_copy(local_repo, tmp_path / "changed", "avg == 0", "avg <= 0")

    # check: against the committed lock (and the registry), names the change.
    rc, out, err = _cli(capsys, monkeypatch, repo, "check", "--registry")
    out += err
    assert rc != 0
    assert "transformation of checkout_value changed" in out
    assert "`checkout_value_v2`" in out

    # apply: refused, the registry keeps the served function.
    rc, out, err = _cli(capsys, monkeypatch, repo, "apply")
    out += err
    assert rc != 0
    assert "[transformation]" in out and "--allow-breaking --reason" in out
    assert registry_snapshot(store) == before

    reason = "CHECKOUT-7: negative averages are data errors; models retrained"
    rc, out, err = _cli(
        capsys, monkeypatch, repo, "apply", "--allow-breaking", "--reason", reason
    )
    assert rc == 0, err
    summary = json.loads(out)
    assert len(summary["breaking_changes"]) == 1
    assert registry_snapshot(store) == definitions_snapshot(repo)
    [row, *_] = list_audit(store)
    assert row["reason"] == reason
    assert [(c["change"], c["subject"]) for c in row["breaking_changes"]] == [
        ("transformation", "checkout_value")
    ]
    # The registry now serves the new function (Feast rebuilds it from source).
    view = store.get_on_demand_feature_view("checkout_value")
    assert "avg <= 0" in view.feature_transformation.udf_string


def test_new_output_applies(
    store, local_repo: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    repo = _changed_copy(
        local_repo,
        tmp_path / "added",
        '        "is_first_order": first,\n',
        '        "is_first_order": first,\n'
        '        "cart_minus_avg": [\n'
        "            None if c is None or a is None else c - a\n"
        "            for c, a in zip(carts, avgs, strict=True)\n"
        "        ],\n",
    )
    defs = repo / "on_demand_features.py"
    defs.write_text(
        defs.read_text().replace(
            '        Field(name="is_first_order", dtype=Int64),\n',
            '        Field(name="is_first_order", dtype=Int64),\n'
            '        Field(name="cart_minus_avg", dtype=Float64),\n',
        )
    )
    rc, out, err = _cli(capsys, monkeypatch, repo, "apply")
    assert rc == 0, err
    assert "breaking_changes" not in json.loads(out)
    view = store.get_on_demand_feature_view("checkout_value")
    assert "cart_minus_avg" in {f.name for f in view.features}
