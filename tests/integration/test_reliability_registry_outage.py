"""Registry outage: PostgreSQL unreachable behind a TCP proxy the test cuts.

Online reads keep working from the registry cache for ``cache_ttl_seconds`` and
then fail with ``RegistryUnavailableError``; apply and materialization fail
cleanly before writing anything; after the proxy is restored everything works
again without manual repair. The profile's cache ttl (60 s) is shortened to a
few seconds in the test's copy of the repo: the behaviour is the same, only
the clock is faster.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECT, TEST_END
from tests.integration.faults import TcpProxy, set_cache_ttl

pytestmark = pytest.mark.integration

CACHE_TTL_S = 4
FEATURES = ["customer_stats:total_orders", "driver_stats:avg_rating"]
EXTRA_SERVICE = """
from feast import FeatureService
from features import customer_stats

outage_probe_service = FeatureService(
    name="outage_probe_service", features=[customer_stats[["total_orders"]]]
)
"""


@pytest.fixture
def proxy(services_env) -> TcpProxy:
    import os

    upstream = int(os.environ.get("FP_PG_PORT", "5432"))
    proxy = TcpProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.close()


def test_registry_outage(proxy: TcpProxy, local_repo: Path, monkeypatch) -> None:
    from feature_platform.definitions import apply_definitions
    from feature_platform.freshness import RegistryUnavailableError
    from feature_platform.locks import LockError
    from feature_platform.materialize import materialize_incremental
    from feature_platform.online import read_online
    from feature_platform.profiles import get_store

    set_cache_ttl(local_repo, CACHE_TTL_S)
    monkeypatch.setenv("FP_PG_PORT", str(proxy.port))
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", f"{PROJECT}_{uuid.uuid4().hex[:6]}")
    store = get_store("services", repo=local_repo)
    assert f":{proxy.port}/" in store.config.registry.path
    try:
        apply_definitions(store)
        materialize_incremental(store, TEST_END)
        rows = [{"customer_id": 1_000_001, "driver_id": 1}]
        baseline = read_online(store, rows, features=FEATURES, now=TEST_END)
        assert baseline["total_orders"][0] is not None
        services_before = {s.name for s in store.list_feature_services()}

        store.refresh_registry()
        refreshed = time.monotonic()
        proxy.cut()  # ---------------------------------------------- outage starts

        # Served from the cache while it is younger than cache_ttl_seconds.
        served = 0
        while time.monotonic() - refreshed < CACHE_TTL_S - 1:
            assert read_online(store, rows, features=FEATURES, now=TEST_END) == baseline
            served += 1
            time.sleep(0.2)
        assert served >= 3

        # Writers fail cleanly, before touching the registry.
        (local_repo / "outage_probe.py").write_text(EXTRA_SERVICE)
        with pytest.raises(LockError, match="unreachable"):
            apply_definitions(store)
        with pytest.raises(LockError, match="unreachable"):
            materialize_incremental(store, TEST_END)

        # Then reads fail loudly instead of serving a stale registry forever.
        time.sleep(max(0.0, CACHE_TTL_S + 0.5 - (time.monotonic() - refreshed)))
        with pytest.raises(RegistryUnavailableError, match="cache_ttl_seconds=4"):
            read_online(store, rows, features=FEATURES, now=TEST_END)
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            read_online(store, rows, feature_service="churn_prediction_service")

        proxy.restore()  # ---------------------------------------------- outage ends

        # No repair: the same store object reads, applies and materializes again.
        assert read_online(store, rows, features=FEATURES, now=TEST_END) == baseline
        # Nothing of the failed apply reached the registry.
        assert {s.name for s in store.list_feature_services()} == services_before
        result = apply_definitions(store)
        assert "outage_probe_service" in result.objects["feature_services"]
        assert "outage_probe_service" in {s.name for s in store.list_feature_services()}
        assert materialize_incremental(store, TEST_END)["rows_total"] == 0
        probe = read_online(
            store, rows, feature_service="outage_probe_service", now=TEST_END
        )
        assert probe["total_orders"] == baseline["total_orders"]
    finally:
        proxy.restore()
        store.teardown()
