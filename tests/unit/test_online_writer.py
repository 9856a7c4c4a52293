"""The vectorized RESP/protobuf encoder against Feast's own serialization."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from feature_platform.online_store.codec import (
    _decimal,
    _varint_seg,
    encode_hset_batch,
    entity_key_prefix,
)
from feature_platform.online_store.codec import assemble as _assemble
from feature_platform.online_store.codec import bulk_segments as _bulk
from feature_platform.online_store.codec import key_parts as _key_parts
from feature_platform.online_store.codec import value_parts as _value_parts


def _parse(payload: bytes) -> list[list[bytes]]:
    """RESP request stream -> commands (a request is an array of bulk strings)."""
    out, pos = [], 0
    while pos < len(payload):
        assert payload[pos : pos + 1] == b"*"
        end = payload.index(b"\r\n", pos)
        argc, pos = int(payload[pos + 1 : end]), end + 2
        args = []
        for _ in range(argc):
            end = payload.index(b"\r\n", pos)
            size = int(payload[pos + 1 : end])
            args.append(payload[end + 2 : end + 2 + size])
            assert payload[end + 2 + size : end + 4 + size] == b"\r\n"
            pos = end + 4 + size
        out.append(args)
    return out


@pytest.mark.parametrize(
    "values",
    [[0], [1, 127, 128, 300, 2**31, 2**62], [-1, -300, -(2**63)], [2**63 - 1, 0, 5]],
)
def test_varints_match_protobuf(values: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    seg = _varint_seg(arr, np.ones(len(arr), bool))
    got = _assemble(
        [(np.full((len(arr), 1), 0x20, np.uint8), np.ones(len(arr), np.int64)), seg]
    )
    assert got == b"".join(Value(int64_val=v).SerializeToString() for v in values)


@pytest.mark.parametrize("values", [[0], [9, 10, 99, 100, 999, 1000, 10**6, 7]])
def test_decimal_digits(values: list[int]) -> None:
    m, lens = _decimal(np.array(values))
    assert _assemble([(m, lens)]) == "".join(map(str, values)).encode()


def test_hset_batch_equals_feast_protos() -> None:
    rng = np.random.default_rng(0)
    n = 257
    ids = rng.integers(-(2**40), 2**40, n)
    micros = rng.integers(0, 2 * 10**15, n)
    micros[:3] = [0, 1_000_000, 1]  # zero seconds / zero nanos edge cases
    doubles = rng.normal(size=n)
    doubles[5] = np.nan
    floats = rng.random(n).astype("float32")
    ints = rng.integers(-(2**62), 2**62, n)
    words = [None if i % 7 == 0 else "ü" * (i % 5) + str(i) for i in range(n)]
    words[3] = ""
    cols = {
        "d": (pa.array(doubles, from_pandas=False).to_pylist(), pa.float64(), "DOUBLE"),
        "f": (floats.tolist(), pa.float32(), "FLOAT"),
        "i": (
            [None if i % 11 == 0 else int(v) for i, v in enumerate(ints)],
            pa.int64(),
            "INT64",
        ),
        "s": (words, pa.string(), "STRING"),
        "b": (
            [None if i % 3 == 0 else bool(i % 2) for i in range(n)],
            pa.bool_(),
            "BOOL",
        ),
    }
    parts = [_value_parts(pa.array(v, t), kind) for v, t, kind in cols.values()]
    keys = _key_parts(pa.array(ids), 4, entity_key_prefix("customer_id", 4), b"proj")
    fields = [b"F%d" % i for i in range(len(cols))]
    segs = encode_hset_batch(keys, b"_ts:view", micros, fields, parts)
    keep = np.flatnonzero(rng.random(n) < 0.8)
    commands = _parse(_assemble(segs, keep))
    assert len(commands) == len(keep)
    for cmd, i in zip(commands, keep.tolist(), strict=True):
        ek = EntityKey(
            join_keys=["customer_id"], entity_values=[Value(int64_val=int(ids[i]))]
        )
        ts = Timestamp(
            seconds=int(micros[i]) // 10**6, nanos=int(micros[i]) % 10**6 * 1000
        )
        expected = [
            b"HSET",
            serialize_entity_key(ek, 3) + b"proj",
            b"_ts:view",
            ts.SerializeToString(),
        ]
        for field, (values, _, kind) in zip(fields, cols.values(), strict=True):
            v = values[i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                proto = Value()
            else:
                key = {
                    "DOUBLE": "double_val",
                    "FLOAT": "float_val",
                    "INT64": "int64_val",
                    "STRING": "string_val",
                    "BOOL": "bool_val",
                }[kind]
                proto = Value(**{key: v})
            expected += [field, proto.SerializeToString()]
        assert cmd == expected


def test_string_keys_match_feast() -> None:
    ids = ["a", "", "ümlaut", "x" * 300]
    keys = _key_parts(pa.array(ids), 2, entity_key_prefix("user", 2), b"p")
    head = (np.frombuffer(b"*1\r\n", np.uint8)[None, :].repeat(4, 0), np.full(4, 4))
    got = _parse(_assemble([head, *_bulk(keys, 4)]))
    for (key,), s in zip(got, ids, strict=True):
        ek = EntityKey(join_keys=["user"], entity_values=[Value(string_val=s)])
        assert key == serialize_entity_key(ek, 3) + b"p"
