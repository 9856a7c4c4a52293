"""Fast materialization and fast online reads against Feast's own code paths.

Two Feast projects over the same sources, the same PostgreSQL registry database
and the same Redis: one materialized by Feast (``store.materialize``), one by the
platform's streaming path. Their Redis hashes must be byte-identical, and the
fast reader must return what ``store.get_online_features`` returns, cell by cell.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TEST_END, fresh_services_store

pytestmark = pytest.mark.integration


def _hashes(store, *, mask_pii: bool = False) -> dict[bytes, dict[bytes, bytes]]:
    """Every Redis hash of ``store``'s project, keyed without the project suffix.

    With ``mask_pii`` the ``pii`` fields are masked the way the platform masks
    them before writing (plain Feast writes them raw).
    """
    from feast.infra.online_stores.helpers import _mmh3
    from feast.protos.feast.types.Value_pb2 import Value

    from feature_platform.governance import mask_value, pii_fields

    pii = {
        _mmh3(f"{view.name}:{name}")
        for view in store.list_feature_views()
        for name in pii_fields(view)
    }
    client = store._get_provider().online_store._get_client(store.config.online_store)
    suffix = store.project.encode()
    out = {}
    for key in client.scan_iter(match=b"*" + suffix, count=5000):
        if key.endswith(suffix):
            fields = client.hgetall(key)
            if mask_pii:
                for name in pii & fields.keys():
                    raw = Value.FromString(fields[name])
                    masked = (
                        mask_value(raw.string_val)
                        if raw.HasField("string_val")
                        else None
                    )
                    value = Value(string_val=masked) if masked else Value()
                    fields[name] = value.SerializeToString()
            out[key[: -len(suffix)]] = fields
    return out


@pytest.fixture
def feast_store(services_env, local_repo: Path, monkeypatch: pytest.MonkeyPatch):
    """A second project over the same repo, materialized by plain Feast."""
    with fresh_services_store(local_repo, monkeypatch, tag="f") as store:
        yield store


def test_fast_materialize_writes_what_feast_writes(
    services_store, feast_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform import fast_materialize
    from feature_platform.materialize import materialize_window

    monkeypatch.setattr(fast_materialize, "BATCH_ROWS", 97)  # many pipelined batches

    start = TEST_END - timedelta(days=4)
    for view in services_store.list_feature_views():
        assert fast_materialize.supports(services_store, view), view.name

    # Two overlapping windows, the second one older: stored newer values must win.
    mid = TEST_END - timedelta(days=1)
    feast_store.materialize(start_date=mid - timedelta(days=1), end_date=TEST_END)
    feast_store.materialize(start_date=start, end_date=mid)
    ours = materialize_window(services_store, mid - timedelta(days=1), TEST_END)
    materialize_window(services_store, start, mid)
    assert ours["views"]["customer_stats"]["rows"] > 0

    expected = _hashes(feast_store, mask_pii=True)
    got = _hashes(services_store)
    assert len(expected) > 500
    assert got.keys() == expected.keys()
    for key, fields in expected.items():
        assert got[key] == fields, key

    # Re-running a window leaves the same state.
    materialize_window(services_store, start, TEST_END)
    again = _hashes(services_store)
    feast_store.materialize(start_date=start, end_date=TEST_END)
    assert again == _hashes(feast_store, mask_pii=True)


@pytest.mark.parametrize(
    ("service", "only_own_keys"),
    [
        ("churn_prediction_service", True),
        ("churn_prediction_service", False),  # an extra, unused join key
        ("driver_matching_service", True),
    ],
)
def test_fast_online_equals_feast(
    services_store, local_repo: Path, service: str, only_own_keys: bool
) -> None:
    from feature_platform.fast_online import (
        STATUS_NOT_FOUND,
        STATUS_OUTSIDE_MAX_AGE,
        FastOnlineReader,
    )
    from feature_platform.freshness import enforce_on_response, output_ttls
    from feature_platform.materialize import materialize_window
    from feature_platform.online import read_online

    materialize_window(services_store, TEST_END - timedelta(days=10), TEST_END)
    customers = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")
    drivers = pd.read_parquet(local_repo / "data" / "driver_stats.parquet")
    cids = [int(c) for c in customers["customer_id"].drop_duplicates().head(40)]
    dids = [int(d) for d in drivers["driver_id"].drop_duplicates().head(40)]
    rows = [{"customer_id": c, "driver_id": d} for c, d in zip(cids, dids, strict=True)]
    rows += [{"customer_id": -1, "driver_id": -2}, rows[0], rows[3]]  # unknown, dupes
    if service == "churn_prediction_service" and only_own_keys:
        rows = [{"customer_id": r["customer_id"]} for r in rows]

    expected = services_store.get_online_features(
        features=services_store.get_feature_service(service), entity_rows=rows
    ).to_dict()
    reader = FastOnlineReader(
        services_store, feature_service=service, enforce_ttl=False
    )
    got = reader.read(rows)
    assert sorted(got) == sorted(expected)  # Feast's column order is not stable
    for column, values in expected.items():
        assert got[column] == values, column

    # With freshness: the same as Feast's response after the freshness filter,
    # both from FastOnlineReader and from read_online (which takes the fast path).
    response = services_store.get_online_features(
        features=services_store.get_feature_service(service), entity_rows=rows
    )
    enforce_on_response(
        response, output_ttls(services_store, feature_service=service), now=TEST_END
    )
    filtered = response.to_dict()
    fresh = FastOnlineReader(services_store, feature_service=service)
    assert fresh.read(rows, now=TEST_END) == filtered
    assert read_online(services_store, rows, feature_service=service, now=TEST_END) == (
        filtered
    )

    # At a "now" past every ttl all values are null / OUTSIDE_MAX_AGE; an
    # unknown entity stays NOT_FOUND.
    late = fresh.read(rows, now=TEST_END + timedelta(days=30), include_status=True)
    status = late.pop("__status__")
    for name in reader.feature_names:
        assert all(v is None for v in late[name])
        assert status[name][-3] == STATUS_NOT_FOUND
        assert status[name][0] == STATUS_OUTSIDE_MAX_AGE


def test_fast_online_freshness_boundary(services_store, local_repo: Path) -> None:
    """A value exactly ttl old is fresh; a microsecond older is stale."""
    from feature_platform.fast_online import FastOnlineReader
    from feature_platform.materialize import materialize_window
    from tests.reference import latest_offline_values

    materialize_window(services_store, TEST_END - timedelta(days=4), TEST_END)
    customers = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")
    latest = latest_offline_values(
        customers, "customer_id", TEST_END, ttl=pd.Timedelta(days=4)
    ).iloc[0]
    rows = [{"customer_id": int(latest["customer_id"])}]
    reader = FastOnlineReader(
        services_store, feature_service="churn_prediction_service"
    )
    edge = latest["event_timestamp"].to_pydatetime() + timedelta(days=3)
    fresh = reader.read(rows, now=edge)
    assert fresh["total_orders"] == [int(latest["total_orders"])]
    stale = reader.read(rows, now=edge + timedelta(microseconds=1))
    assert stale["total_orders"] == [None]
