"""The fast online path's key format and value decoding against Feast's own code."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp

from feature_platform.online_store.codec import (
    decode_timestamp,
    decode_value,
    entity_key_prefix,
    redis_entity_key,
)


@pytest.mark.parametrize(
    ("join_key", "value", "vtype", "proto"),
    [
        ("customer_id", 1001, 4, Value(int64_val=1001)),
        ("customer_id", -7, 4, Value(int64_val=-7)),
        ("customer_id", 2**62, 4, Value(int64_val=2**62)),
        ("driver_id", 0, 3, Value(int32_val=0)),
        ("driver_id", -123456, 3, Value(int32_val=-123456)),
        ("user", "ümlaut-42", 2, Value(string_val="ümlaut-42")),
        ("user", "", 2, Value(string_val="")),
    ],
)
def test_redis_key_matches_feast(join_key: str, value, vtype: int, proto) -> None:
    ek = EntityKey(join_keys=[join_key], entity_values=[proto])
    expected = _redis_key("proj_x", ek, entity_key_serialization_version=3)
    assert redis_entity_key(join_key, value, vtype, "proj_x") == expected
    assert serialize_entity_key(ek, 3).startswith(entity_key_prefix(join_key, vtype))


@pytest.mark.parametrize(
    "proto",
    [
        Value(),
        Value(double_val=3.25),
        Value(double_val=-0.0),
        Value(double_val=1e300),
        Value(float_val=0.1),
        Value(float_val=-2.5),
        Value(int64_val=0),
        Value(int64_val=1),
        Value(int64_val=-1),
        Value(int64_val=2**63 - 1),
        Value(int64_val=-(2**63)),
        Value(int32_val=-5),
        Value(int32_val=2**31 - 1),
        Value(string_val="electronics"),
        Value(string_val="x" * 300),
        Value(string_val=""),
        Value(bool_val=True),
        Value(bool_val=False),
        Value(int64_list_val={"val": [1, 2, 3]}),  # fallback path
        Value(unix_timestamp_val=1_700_000_000),  # fallback path
    ],
)
def test_decode_value_matches_feast(proto: Value) -> None:
    raw = proto.SerializeToString()
    expected = feast_value_type_to_python_type(proto) if raw else None
    assert decode_value(raw) == expected
    assert decode_value(None) is None


def test_decode_value_nan() -> None:
    assert math.isnan(decode_value(Value(double_val=float("nan")).SerializeToString()))


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_decode_timestamp(when: datetime) -> None:
    ts = Timestamp()
    ts.FromDatetime(when)
    raw = ts.SerializeToString()
    got = decode_timestamp(raw)
    assert got is None if not raw else got == pytest.approx(when.timestamp(), abs=1e-6)
    assert decode_timestamp(None) is None
