"""The responses of a fast read: Feast's proto, its ``to_dict`` and its JSON
come from the same decoded columns and report the same statuses."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(0, 0), (1_764_000_000, 0), (1_764_000_000, 5_000_000),
     (1_764_000_000, 474_944_000), (1_764_000_000, 123_456_789), (1, 1)],
)  # fmt: skip
def test_json_timestamps_match_feast(seconds: int, nanos: int) -> None:
    from feast.feature_server_utils import _timestamp_to_str
    from google.protobuf.timestamp_pb2 import Timestamp

    from feature_platform.online_store.response import timestamp_json

    expected = _timestamp_to_str(Timestamp(seconds=seconds, nanos=nanos))
    assert timestamp_json(seconds, nanos) == expected


def _read() -> tuple[Any, dict[str, list[Any]], list[Any]]:
    """Three rows of one view: fresh (one null feature), stale, missing."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.value_type import ValueType

    from feature_platform.online_store.reader import ReadPlan, ViewPlan, ViewRead

    view = ViewPlan(
        name="stats",
        join_key="id",
        value_type=4,
        prefix=b"",
        features=("rating", "trips"),
        outputs=("rating", "trips"),
        value_types=(ValueType.DOUBLE, ValueType.INT64),
        command_tail=b"",
        nargs=0,
        ttl_s=60.0,
    )
    plan = ReadPlan([view], "p")
    plan.entity_types = {"id": ValueType.INT64}
    rating = Value(double_val=float("nan")).SerializeToString()
    raw: list[list[bytes | None]] = [
        [rating, None, b""],
        [Value(double_val=2.0).SerializeToString(), None, b""],
        [None, None, None],
    ]
    read = ViewRead(
        plan=view,
        values=[[float("nan"), None, None], [None, None, None]],
        raw=raw,
        stamps=[(1_764_000_000, 5_000_000), (1_700_000_000, 0), None],
        stale=[False, True, False],
    )
    return plan, {"id": [1, 2, 3]}, [read]


def test_status_rule_is_one_for_proto_dict_and_json() -> None:
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    from feature_platform.online_store.response import PlatformOnlineResponse

    plan, columns, reads = _read()
    assert reads[0].statuses == ["PRESENT", "OUTSIDE_MAX_AGE", "PRESENT"]
    response = PlatformOnlineResponse(plan, columns, reads)
    body = json.loads(response.to_json_bytes())
    by_name = dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))
    assert list(by_name) == ["id", "rating", "trips"]
    assert by_name["rating"]["statuses"] == reads[0].statuses
    assert by_name["rating"]["values"] == ["NaN", None, None]  # protobuf JSON
    assert by_name["rating"]["event_timestamps"] == [
        "2025-11-24T16:00:00.005Z",
        "2023-11-14T22:13:20Z",  # a stale value keeps its event time
        "1970-01-01T00:00:00Z",
    ]
    as_dict = response.to_dict()
    assert as_dict["id"] == [1, 2, 3] and as_dict["trips"] == [None] * 3
    proto = response.proto
    vectors = dict(zip(proto.metadata.feature_names.val, proto.results, strict=True))
    assert list(vectors["rating"].statuses) == [
        FieldStatus.Value(s) for s in reads[0].statuses
    ]
    assert not vectors["rating"].values[1].HasField("double_val")  # withheld
    assert vectors["id"].values[2].int64_val == 3
