"""Training and serving compute the same on-demand features, on the local
profile (SQLite online store): the platform's point-in-time plugin and Feast's
own DuckDB offline store, each against the online read at the same moment and
the brute-force reference (the shared cases: tests/on_demand.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import on_demand
from tests.conftest import TEST_END, make_repo


@pytest.mark.parametrize(
    "offline_store",
    [
        "feature_platform.pit_store.FastPitOfflineStore",  # the profile's
        "duckdb",  # Feast's own: the same ttl edge (event + ttl >= entity time)
    ],
)
def test_offline_and_online_agree_cell_for_cell(
    tmp_path: Path, offline_store: str
) -> None:
    from feature_platform.definitions import apply_definitions
    from feature_platform.profiles import get_store

    repo = make_repo(tmp_path / "repo")
    on_demand.add_edge_customers(repo, TEST_END)
    store = get_store(
        "local", repo=repo, overrides={"offline_store": {"type": offline_store}}
    )
    assert store.config.offline_store.type == offline_store
    apply_definitions(store)

    result = on_demand.run(store, repo, TEST_END)
    assert result.mismatches == []
    assert result.cells == result.rows * 7
    assert result.rows > 600 and result.null_cells > 0
    assert result.first_order_rows >= len(on_demand.CARTS)
    assert result.stale_rows >= 3 * len(on_demand.CARTS)
    on_demand.check_edge_rows(result)
