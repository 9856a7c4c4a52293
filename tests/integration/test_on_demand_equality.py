"""Training and serving compute the same on-demand features on the services
profile: PostgreSQL registry, Redis online store (the platform's plugin),
the platform's point-in-time offline store; the cases of tests/on_demand.py,
read through ``FeatureStore.get_online_features`` and the HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import on_demand
from tests.conftest import TEST_END, fresh_services_store

pytestmark = pytest.mark.integration


def test_offline_and_online_agree_cell_for_cell_on_services(
    services_env, local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FP_AUTH", "no_auth")  # the in-process server's auth
    on_demand.add_edge_customers(local_repo, TEST_END)
    with fresh_services_store(local_repo, monkeypatch, "odfv") as store:
        assert store.config.online_store.type.endswith("PlatformRedisOnlineStore")
        result = on_demand.run(store, local_repo, TEST_END, http=True)
    assert result.mismatches == []
    assert result.cells == result.rows * 7
    assert result.http_cells == 7 * sum(c is not None for c in result.carts)
    assert result.rows > 600 and result.null_cells > 0
    assert result.first_order_rows >= len(on_demand.CARTS)
    assert result.stale_rows >= 3 * len(on_demand.CARTS)
    on_demand.check_edge_rows(result)
