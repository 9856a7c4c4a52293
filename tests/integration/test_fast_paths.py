"""The platform's plugins against Feast's stock Redis store and local engine.

Two Feast projects over the same sources, the same PostgreSQL registry database
and the same Redis: one materialized by plain Feast (``store.materialize`` with
the stock store and engine), one by the platform's engine plugin. Their Redis
hashes must be byte-identical, and the plugin's reads (``FastOnlineReader``,
``store.get_online_features``) must return what plain Feast returns, cell by
cell, once the freshness rule is applied to Feast's response.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import feast_compat
from tests.conftest import TEST_END, fresh_services_store

pytestmark = pytest.mark.integration


def _hashes(store, *, mask_pii: bool = False) -> dict[bytes, dict[bytes, bytes]]:
    """Every Redis hash of ``store``'s project, keyed without the project suffix.

    With ``mask_pii`` the ``pii`` fields are masked the way the platform masks
    them before writing (plain Feast writes them raw).
    """
    from feast.protos.feast.types.Value_pb2 import Value

    from feature_platform.pii import mask_value, pii_fields

    pii = {
        feast_compat.feature_field(view.name, name)
        for view in store.list_feature_views()
        for name in pii_fields(view)
    }
    client = feast_compat.store_redis_client(store)
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
    with fresh_services_store(
        local_repo, monkeypatch, tag="f", plain_feast=True
    ) as store:
        yield store


def test_fast_materialize_writes_what_feast_writes(
    services_store, feast_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.feast_compat import batch_engine
    from feature_platform.materialize import materialize_window
    from feature_platform.online_store import writer

    engine = batch_engine(services_store)
    monkeypatch.setattr(engine.engine_config, "batch_rows", 97)  # many batches
    monkeypatch.setattr(writer, "FIRST_BATCH_ROWS", 5)  # 5, 10, ... 80, 97, 97
    assert type(batch_engine(feast_store)).__name__ == "LocalComputeEngine"

    start = TEST_END - timedelta(days=4)
    for view in services_store.list_feature_views():
        assert writer.supports(services_store.config, view), view.name

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
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    from feature_platform.freshness import as_of, enforce_on_response, output_ttls
    from feature_platform.materialize import materialize_window
    from feature_platform.online import read_online
    from feature_platform.online_store.codec import (
        STATUS_OUTSIDE_MAX_AGE,
        STATUS_PRESENT,
    )
    from feature_platform.online_store.reader import FastOnlineReader
    from feature_platform.profiles import PLAIN_FEAST, get_store

    materialize_window(services_store, TEST_END - timedelta(days=10), TEST_END)
    customers = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")
    drivers = pd.read_parquet(local_repo / "data" / "driver_stats.parquet")
    cids = [int(c) for c in customers["customer_id"].drop_duplicates().head(40)]
    dids = [int(d) for d in drivers["driver_id"].drop_duplicates().head(40)]
    rows = [{"customer_id": c, "driver_id": d} for c, d in zip(cids, dids, strict=True)]
    rows += [{"customer_id": -1, "driver_id": -2}, rows[0], rows[3]]  # unknown, dupes
    if service == "churn_prediction_service" and only_own_keys:
        rows = [{"customer_id": r["customer_id"]} for r in rows]

    # Plain Feast (stock Redis store) over the same registry and Redis keys.
    plain = get_store("services", repo=local_repo, overrides=PLAIN_FEAST)
    assert (
        type(feast_compat.provider(plain).online_store).__name__ == "RedisOnlineStore"
    )
    expected = plain.get_online_features(
        features=plain.get_feature_service(service), entity_rows=rows
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
    response = plain.get_online_features(
        features=plain.get_feature_service(service), entity_rows=rows
    )
    enforce_on_response(
        response, output_ttls(plain, feature_service=service), now=TEST_END
    )
    filtered = response.to_dict()
    fresh = FastOnlineReader(services_store, feature_service=service)
    assert fresh.read(rows, now=TEST_END) == filtered
    assert read_online(services_store, rows, feature_service=service, now=TEST_END) == (
        filtered
    )
    # Feast's own SDK call on the platform's profile: the plugin's answer, and
    # its proto (what `feast serve` encodes) carries the same values, statuses
    # and event times as plain Feast's filtered response.
    with as_of(TEST_END):
        ours = services_store.get_online_features(
            features=services_store.get_feature_service(service), entity_rows=rows
        )
    assert ours.to_dict() == filtered
    ours_cols = dict(
        zip(ours.proto.metadata.feature_names.val, ours.proto.results, strict=True)
    )
    for name, vector in zip(
        response.proto.metadata.feature_names.val, response.proto.results, strict=True
    ):
        assert ours_cols[name] == vector, name
    assert ours.to_dict() == filtered  # read back from the proto now

    # At a "now" past every ttl all values are null / OUTSIDE_MAX_AGE; an
    # unknown entity is PRESENT with a null, as Feast's Redis store reports it:
    # the statuses of Feast's own response after the freshness filter.
    late_now = TEST_END + timedelta(days=30)
    late = fresh.read(rows, now=late_now, include_status=True)
    status = late.pop("__status__")
    feast_late = plain.get_online_features(
        features=plain.get_feature_service(service), entity_rows=rows
    )
    enforce_on_response(
        feast_late, output_ttls(plain, feature_service=service), now=late_now
    )
    feast_status = {
        name: [FieldStatus.Name(s) for s in vector.statuses]
        for name, vector in zip(
            feast_late.proto.metadata.feature_names.val,
            feast_late.proto.results,
            strict=True,
        )
    }
    for name in reader.feature_names:
        assert all(v is None for v in late[name])
        assert status[name] == feast_status[name], name
        assert status[name][-3] == STATUS_PRESENT  # the unknown entity
        assert status[name][0] == STATUS_OUTSIDE_MAX_AGE


def test_fast_online_freshness_boundary(services_store, local_repo: Path) -> None:
    """A value exactly ttl old is fresh; a microsecond older is stale."""
    from feature_platform.freshness import as_of
    from feature_platform.materialize import materialize_window
    from feature_platform.online_store.reader import FastOnlineReader
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
    # The same edge through Feast's SDK call (the online store plugin).
    service = services_store.get_feature_service("churn_prediction_service")
    for now, expected in (
        (edge, [int(latest["total_orders"])]),
        (
            edge + timedelta(microseconds=1),
            [None],
        ),
    ):
        with as_of(now):
            got = services_store.get_online_features(features=service, entity_rows=rows)
        assert got.to_dict()["total_orders"] == expected


def test_throttled_materialize_writes_the_same(
    services_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FP_MATERIALIZE_MAX_ROWS_PER_S bounds the writer's rate (paced pieces,
    each with its own dedup read) and changes nothing in what is written: an
    older window written throttled afterwards leaves the newer values."""
    import time

    from feature_platform.feast_compat import batch_engine
    from feature_platform.materialize import materialize_window
    from feature_platform.online_store import writer

    engine = batch_engine(services_store)
    monkeypatch.setattr(engine.engine_config, "batch_rows", 200)
    start = TEST_END - timedelta(days=4)
    materialize_window(services_store, start, TEST_END, views=["customer_stats"])
    expected = _hashes(services_store)
    client = feast_compat.store_redis_client(services_store)
    for key in client.scan_iter(match=b"*" + services_store.project.encode()):
        client.delete(key)
    rate = 1000
    monkeypatch.setenv("FP_MATERIALIZE_MAX_ROWS_PER_S", str(rate))
    t0 = time.perf_counter()
    summary = materialize_window(
        services_store, start, TEST_END, views=["customer_stats"]
    )
    seconds = time.perf_counter() - t0
    rows = summary["views"]["customer_stats"]["rows"]
    assert rows > 400  # several batches
    # The last piece goes out at once; every earlier one waited for its turn.
    assert seconds >= (rows - writer.PACE_ROWS) / rate
    assert _hashes(services_store) == expected
    monkeypatch.setenv("FP_MATERIALIZE_MAX_ROWS_PER_S", "1000000")
    materialize_window(
        services_store, start, TEST_END - timedelta(days=1), views=["customer_stats"]
    )
    assert _hashes(services_store) == expected
