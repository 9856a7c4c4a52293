"""Freshness at read: the one rule, the response filter, and read_online."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.freshness import (
    as_of,
    column_ttls,
    enforce_on_response,
    is_stale,
    is_stale_epoch,
    now_seconds,
    output_ttls,
    ttl_seconds,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
H6 = timedelta(hours=6)


@pytest.mark.parametrize(
    ("event", "ttl", "stale"),
    [
        (NOW - timedelta(hours=1), H6, False),
        (NOW - H6, H6, False),  # exactly ttl old: still fresh (inclusive bound)
        (NOW - H6 - timedelta(seconds=1), H6, True),
        (NOW - timedelta(days=30), None, False),  # no ttl: never expires
        (NOW - timedelta(days=30), timedelta(0), False),  # ttl 0 = infinite (Feast)
        (None, H6, False),  # no value, nothing to expire
        (0, H6, False),  # Feast's "no timestamp"
        ((NOW - timedelta(hours=7)).timestamp(), H6, True),  # epoch seconds
        (int((NOW - timedelta(hours=5)).timestamp()), H6.total_seconds(), False),
        (NOW + timedelta(hours=1), H6, False),  # future event time is not stale
    ],
)
def test_is_stale(event, ttl, stale: bool) -> None:
    assert is_stale(event, ttl, NOW) is stale


def test_is_stale_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        is_stale(datetime(2026, 1, 1), H6, NOW)
    with pytest.raises(ValueError, match="no timezone"):
        is_stale(NOW, H6, datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("event_s", "ttl_s", "stale"),
    [
        (NOW.timestamp() - 3600, H6.total_seconds(), False),
        (NOW.timestamp() - H6.total_seconds(), H6.total_seconds(), False),  # edge
        (NOW.timestamp() - H6.total_seconds() - 1e-6, H6.total_seconds(), True),
        (NOW.timestamp() - 1e9, None, False),  # no ttl: never expires
        (None, H6.total_seconds(), False),  # no value
        (0.0, H6.total_seconds(), False),  # Feast's "no timestamp"
    ],
)
def test_is_stale_epoch_is_the_rule(event_s, ttl_s, stale: bool) -> None:
    assert is_stale_epoch(event_s, ttl_s, NOW.timestamp()) is stale
    assert ttl_seconds(timedelta(0)) is None and ttl_seconds(None) is None


def test_as_of_pins_the_clock_for_the_block() -> None:
    assert abs(now_seconds() - datetime.now(UTC).timestamp()) < 5
    with as_of(NOW):
        assert now_seconds() == NOW.timestamp()
        with as_of(None):  # None changes nothing
            assert now_seconds() == NOW.timestamp()
    assert abs(now_seconds() - datetime.now(UTC).timestamp()) < 5
    with pytest.raises(ValueError, match="no timezone"), as_of(datetime(2026, 1, 1)):
        pass


def test_column_ttls_follow_projections(applied_local_store) -> None:
    service = applied_local_store.get_feature_service("driver_matching_service")
    grouped = [
        (applied_local_store.get_feature_view(p.name), [f.name for f in p.features])
        for p in service.feature_view_projections
    ]
    ttls = column_ttls(grouped, full_feature_names=False)
    assert ttls["avg_rating"] == timedelta(hours=6)
    assert ttls["preferred_category"] == timedelta(days=3)
    full = column_ttls(grouped, full_feature_names=True)
    assert full["driver_stats__avg_rating"] == timedelta(hours=6)


def _response(ts_seconds: list[int]):
    from feast.online_response import OnlineResponse
    from feast.protos.feast.serving.ServingService_pb2 import (
        FieldStatus,
        GetOnlineFeaturesResponse,
    )
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp

    proto = GetOnlineFeaturesResponse()
    proto.metadata.feature_names.val.extend(["driver_id", "avg_rating"])
    proto.results.append(
        GetOnlineFeaturesResponse.FeatureVector(
            values=[Value(int64_val=i) for i in range(len(ts_seconds))],
            statuses=[FieldStatus.PRESENT] * len(ts_seconds),
            event_timestamps=[Timestamp() for _ in ts_seconds],
        )
    )
    proto.results.append(
        GetOnlineFeaturesResponse.FeatureVector(
            values=[Value(double_val=4.0 + i) for i in range(len(ts_seconds))],
            statuses=[FieldStatus.PRESENT] * len(ts_seconds),
            event_timestamps=[Timestamp(seconds=s) for s in ts_seconds],
        )
    )
    return OnlineResponse(proto)


def test_enforce_on_response_sets_outside_max_age() -> None:
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    fresh = int((NOW - timedelta(hours=2)).timestamp())
    old = int((NOW - timedelta(hours=9)).timestamp())
    response = _response([fresh, old, fresh])
    assert enforce_on_response(response, {"avg_rating": H6}, now=NOW) == 1
    out = response.to_dict()
    assert out["avg_rating"] == [4.0, None, 6.0]
    assert out["driver_id"] == [0, 1, 2]
    statuses = list(response.proto.results[1].statuses)
    assert statuses == [
        FieldStatus.PRESENT,
        FieldStatus.OUTSIDE_MAX_AGE,
        FieldStatus.PRESENT,
    ]


def test_output_ttls(applied_local_store) -> None:
    by_service = output_ttls(
        applied_local_store, feature_service="driver_matching_service"
    )
    assert by_service["avg_rating"] == timedelta(hours=6)
    assert by_service["acceptance_rate"] == timedelta(hours=6)
    assert by_service["preferred_category"] == timedelta(days=3)
    refs = ["customer_stats:total_orders", "driver_stats:avg_rating"]
    assert output_ttls(applied_local_store, features=refs) == {
        "total_orders": timedelta(days=3),
        "avg_rating": timedelta(hours=6),
    }
    full = output_ttls(applied_local_store, features=refs, full_feature_names=True)
    assert set(full) == {"customer_stats__total_orders", "driver_stats__avg_rating"}
    with pytest.raises(ValueError, match="<feature_view>:<feature>"):
        output_ttls(applied_local_store, features=["total_orders"])


def test_read_online_never_serves_values_past_ttl(tmp_path: Path) -> None:
    """Data whose newest rows are 8 h old: drivers (ttl 6 h) come back null,
    customers (ttl 3 days) present; Feast alone returns both as present."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.online import read_online
    from feature_platform.profiles import PLAIN_FEAST_LOCAL, get_store
    from feature_platform.sample_data import SampleSpec
    from feature_platform.utc import utc_now
    from tests.conftest import make_repo

    end = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=8)
    spec = SampleSpec(customers=50, drivers=20, days=15, seed=3, end=end)
    repo = make_repo(tmp_path / "repo", spec)
    store = get_store("local", repo=repo)
    apply_definitions(store)
    # A backfill (or a pipeline that stopped 8 hours ago) put the old rows online.
    materialize_window(store, end - timedelta(days=2), end + timedelta(seconds=1))
    drivers = pd.read_parquet(repo / "data" / "driver_stats.parquet")["driver_id"]
    customers = pd.read_parquet(repo / "data" / "customer_stats.parquet")
    ids = zip(drivers.unique()[:3], customers["customer_id"].unique()[:3], strict=True)
    rows = [{"driver_id": int(d), "customer_id": int(c)} for d, c in ids]
    refs = ["driver_stats:avg_rating", "customer_stats:total_orders"]

    # Plain Feast (stock SQLite store) over the same registry and online store.
    plain = get_store("local", repo=repo, overrides=PLAIN_FEAST_LOCAL)
    raw = plain.get_online_features(features=refs, entity_rows=rows).to_dict()
    assert all(v is not None for v in raw["avg_rating"])  # feast#6821

    # Feast's own call on the platform's profile goes through the plugin.
    sdk = store.get_online_features(features=refs, entity_rows=rows).to_dict()
    assert sdk["avg_rating"] == [None, None, None]
    got = read_online(store, rows, features=refs)
    assert got == sdk
    assert got["avg_rating"] == [None, None, None]
    assert got["total_orders"] == raw["total_orders"]
    assert all(v is not None for v in got["total_orders"])
    # Read as of the data's end the same values are fresh again.
    as_of_end = read_online(store, rows, features=refs, now=end + timedelta(hours=1))
    assert as_of_end["avg_rating"] == raw["avg_rating"]
