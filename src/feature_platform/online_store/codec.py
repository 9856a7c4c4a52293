"""Feast's Redis online store format, encoded and decoded without protos.

One home for the bytes the platform reads and writes, so plain Feast reads what
the platform writes and vice versa (tested byte for byte against Feast's stock
store):

* entity keys: ``serialize_entity_key`` v3 of one join key + the project name;
* hash fields: ``mmh3("<view>:<feature>")`` per feature and ``_ts:<view>``;
* values: a serialized ``feast.types.Value`` with one scalar field set (empty
  for null), timestamps a serialized ``google.protobuf.Timestamp``.

Scalar helpers (``redis_entity_key``, ``decode_value``, ``decode_timestamp_parts``)
serve reads; the vectorized ``Segment`` encoders serve the streaming writer: a
batch is encoded as segments ``(matrix uint8 [n, width], lengths [n])`` (or an
Arrow binary array for strings), row i of a segment contributing its first
``lengths[i]`` bytes, so a whole batch of RESP commands is assembled with numpy
and Arrow compute and no Python work per row or per cell.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "STATUS_NOT_FOUND",
    "STATUS_NULL_VALUE",
    "STATUS_OUTSIDE_MAX_AGE",
    "STATUS_PRESENT",
    "FEATURE_TAGS",
    "Segment",
    "VT_INT32",
    "VT_INT64",
    "VT_STRING",
    "assemble",
    "assemble_rows",
    "bulk",
    "bulk_segments",
    "command",
    "command_head",
    "const",
    "decode_timestamp",
    "decode_timestamp_nanos",
    "decode_timestamp_parts",
    "decode_value",
    "encode_entity_value",
    "encode_hset_batch",
    "entity_key_prefix",
    "key_parts",
    "redis_entity_key",
    "row_bytes",
    "value_parts",
]

STATUS_PRESENT = "PRESENT"
STATUS_NULL_VALUE = "NULL_VALUE"
STATUS_NOT_FOUND = "NOT_FOUND"
STATUS_OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"

# Feast ValueType numbers used by the entity key format.
VT_STRING = 2
VT_INT32 = 3
VT_INT64 = 4
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_I32 = struct.Struct("<i")
_F64 = struct.Struct("<d")
_F32 = struct.Struct("<f")


# ---------------------------------------------------------------- RESP framing
#
# Redis' protocol, written once: a command is an array header then each
# argument as a bulk string. The streaming writer frames whole batches with the
# same bytes as segments (``bulk_segments``, ``encode_hset_batch``).


def bulk(data: bytes) -> bytes:
    """One RESP bulk string: ``$<len>\\r\\n<data>\\r\\n``."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command_head(name: bytes, nargs: int) -> bytes:
    """The start of a command of ``nargs`` items (its name included): the
    array header and the name, before the arguments' bulk strings."""
    return b"*%d\r\n" % nargs + bulk(name)


def command(*parts: bytes) -> bytes:
    """One whole RESP command (name and arguments)."""
    return command_head(parts[0], len(parts)) + b"".join(bulk(p) for p in parts[1:])


# ------------------------------------------------------------------ key format


def entity_key_prefix(join_key: str, value_type: int) -> bytes:
    """Bytes of a v3 single-join-key entity key before the value payload."""
    name = join_key.encode("utf8")
    head = _U32.pack(1) + _U32.pack(VT_STRING) + _U32.pack(len(name)) + name
    return head + _U32.pack(value_type)


def encode_entity_value(value: Any, value_type: int) -> bytes:
    if value_type == VT_INT64:
        return b"\x08\x00\x00\x00" + _I64.pack(int(value))
    if value_type == VT_INT32:
        return b"\x04\x00\x00\x00" + _I32.pack(int(value))
    raw = str(value).encode("utf8")
    return _U32.pack(len(raw)) + raw


def redis_entity_key(join_key: str, value: Any, value_type: int, project: str) -> bytes:
    """Feast's Redis key (``serialize_entity_key`` v3 + project) for one join key."""
    return (
        entity_key_prefix(join_key, value_type)
        + encode_entity_value(value, value_type)
        + project.encode("utf8")
    )


# ------------------------------------------------------------- value decoding


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _proto_fallback(raw: bytes) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(Value.FromString(raw))


def decode_value(raw: bytes | None) -> Any:
    """Python value of a serialized Feast ``Value`` (``None`` when empty)."""
    if not raw:
        return None
    tag = raw[0]
    n = len(raw)
    if tag == 0x29 and n == 9:  # double_val
        return _F64.unpack_from(raw, 1)[0]
    if tag == 0x35 and n == 5:  # float_val
        return _F32.unpack_from(raw, 1)[0]
    if tag == 0x20:  # int64_val
        v, end = _varint(raw, 1)
        if end == n:
            return _signed64(v)
    elif tag == 0x18:  # int32_val
        v, end = _varint(raw, 1)
        if end == n:
            v = _signed64(v)
            return v - (1 << 32) if v >= 1 << 31 else v
    elif tag == 0x12:  # string_val
        length, start = _varint(raw, 1)
        if start + length == n:
            return raw[start:].decode("utf8")
    elif tag == 0x38 and n == 2:  # bool_val
        return bool(raw[1])
    return _proto_fallback(raw)


def decode_timestamp(raw: bytes | None) -> float | None:
    """Epoch seconds of a serialized ``google.protobuf.Timestamp``."""
    parts = decode_timestamp_parts(raw)
    if parts is None:
        return None
    return parts[0] + parts[1] / 1e9


def decode_timestamp_parts(raw: bytes | None) -> tuple[int, int] | None:
    """``(seconds, nanos)`` of a serialized ``google.protobuf.Timestamp``."""
    if not raw:
        return None
    seconds = nanos = 0
    pos, n = 0, len(raw)
    while pos < n:
        tag = raw[pos]
        v, pos = _varint(raw, pos + 1)
        if tag == 0x08:
            seconds = _signed64(v)
        elif tag == 0x10:
            nanos = v
        else:
            raise ValueError(f"unexpected field tag {tag} in a Timestamp")
    return seconds, nanos


def decode_timestamp_nanos(raw: bytes | None) -> int:
    """Nanoseconds since the epoch of a serialized ``Timestamp`` (0 when empty)."""
    parts = decode_timestamp_parts(raw)
    if parts is None:
        return 0
    return parts[0] * 1_000_000_000 + parts[1]


FEATURE_TAGS = {  # feast ValueType name -> protobuf field tag byte
    "INT64": 0x20,
    "INT32": 0x18,
    "DOUBLE": 0x29,
    "FLOAT": 0x35,
    "STRING": 0x12,
    "BOOL": 0x38,
}

# ------------------------------------------------------------- serialization
#
# A batch is encoded as a list of "segments": (matrix uint8 [n, width], lengths
# [n]); row i of a segment contributes its first lengths[i] bytes. Laying the
# segments side by side and compressing with the length mask yields the RESP
# stream of all rows in order, with no Python work per row or per cell.

# A segment's first element is a uint8 matrix, or an Arrow binary array whose
# values are the bytes themselves (strings: no padded copy); lengths as above.
Segment = tuple[Any, np.ndarray]


def const(data: bytes, n: int) -> Segment:
    row = np.frombuffer(data, dtype=np.uint8)
    return np.broadcast_to(row, (n, len(data))), np.full(n, len(data), np.int64)


def _fixed(values: np.ndarray, fmt: str, present: np.ndarray) -> Segment:
    """Little-endian fixed-width values; absent rows contribute nothing."""
    arr = np.ascontiguousarray(values.astype(fmt))
    mat = arr.view(np.uint8).reshape(len(arr), arr.dtype.itemsize)
    return mat, np.where(present, arr.dtype.itemsize, 0).astype(np.int64)


def _tag(tag: int, present: np.ndarray) -> Segment:
    n = len(present)
    return np.full((n, 1), tag, np.uint8), present.astype(np.int64)


def _varint_seg(values: np.ndarray, present: np.ndarray) -> Segment:
    """Protobuf varints of int64 values (negatives as 10-byte two's complement)."""
    v = values.astype(np.int64).view(np.uint64)
    shifts = (np.arange(10, dtype=np.uint64) * np.uint64(7))[None, :]
    groups = ((v[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    nonzero = (v[:, None] >> shifts) != 0
    lens = np.where(nonzero[:, 1:].any(axis=1), _highest(nonzero) + 1, 1)
    cont = np.arange(10)[None, :] < (lens - 1)[:, None]
    groups |= (cont * 0x80).astype(np.uint8)
    return groups, np.where(present, lens, 0).astype(np.int64)


def _highest(mask: np.ndarray) -> np.ndarray:
    """Index of the last True per row (0 when none)."""
    width = mask.shape[1]
    return width - 1 - np.argmax(mask[:, ::-1], axis=1)


def _decimal(values: np.ndarray) -> Segment:
    """ASCII decimal digits of non-negative ints."""
    v = values.astype(np.int64)
    width = max(1, len(str(int(v.max())))) if len(v) else 1
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (v[:, None] // powers[None, :]) % 10
    lens = np.ones(len(v), np.int64)
    for k in range(1, width):
        lens += v >= 10**k
    # left-align: drop leading zeros by rolling each row
    shift = width - lens
    idx = (np.arange(width)[None, :] + shift[:, None]) % width
    out = np.take_along_axis(digits, idx, axis=1).astype(np.uint8) + ord("0")
    return out, lens


def _strings(column: pa.Array) -> tuple[Segment, np.ndarray]:
    """UTF-8 bytes of a string column as a segment (the Arrow values, nulls
    empty), plus the byte lengths."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = pc.fill_null(column.cast(pa.large_binary()), b"")
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    n = len(col)
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int64)[
        col.offset : col.offset + n + 1
    ]
    lens = np.diff(offsets).astype(np.int64)
    return (col, lens), lens


def bulk_segments(parts: list[Segment], n: int) -> list[Segment]:
    """RESP bulk string ``$<len>\\r\\n<parts...>\\r\\n`` around the given parts."""
    total = np.zeros(n, np.int64)
    for _, lens in parts:
        total += lens
    return [
        const(b"$", n),
        _decimal(total),
        const(b"\r\n", n),
        *parts,
        const(b"\r\n", n),
    ]


def value_parts(column: pa.Array, type_name: str) -> list[Segment]:
    """Serialized Feast ``Value`` of each cell (empty for null / NaN, like Feast)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tag = FEATURE_TAGS[type_name]
    present = ~np.asarray(column.is_null(nan_is_null=True), dtype=bool)
    if type_name in ("DOUBLE", "FLOAT"):
        values = column.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        fmt = "<f8" if type_name == "DOUBLE" else "<f4"
        return [_tag(tag, present), _fixed(values, fmt, present)]
    if type_name in ("INT64", "INT32", "BOOL"):
        values = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        return [_tag(tag, present), _varint_seg(values, present)]
    seg, lens = _strings(column)  # nulls are empty already
    return [_tag(tag, present), _varint_seg(lens, present), seg]


def _timestamp_parts(micros: np.ndarray) -> list[Segment]:
    """``google.protobuf.Timestamp`` wire bytes (zero fields omitted)."""
    seconds = np.floor_divide(micros, 1_000_000)
    nanos = (micros - seconds * 1_000_000) * 1000
    has_s, has_n = seconds != 0, nanos != 0
    return [
        _tag(0x08, has_s),
        _varint_seg(seconds, has_s),
        _tag(0x10, has_n),
        _varint_seg(nanos, has_n),
    ]


def key_parts(column: pa.Array, vtype: int, prefix: bytes, project: bytes) -> list:
    n = len(column)
    if vtype in (VT_INT64, VT_INT32):
        fmt = "<i8" if vtype == VT_INT64 else "<i4"
        width = np.dtype(fmt).itemsize
        values = column.to_numpy(zero_copy_only=False)
        return [
            const(prefix + struct.pack("<I", width), n),
            _fixed(values, fmt, np.ones(n, bool)),
            const(project, n),
        ]
    seg, lens = _strings(column)
    u32 = lens.astype("<u4").view(np.uint8).reshape(n, 4)
    return [const(prefix, n), (u32, np.full(n, 4, np.int64)), seg, const(project, n)]


def _binary(segment: Segment, n: int) -> Any:
    """A segment as an Arrow large_binary array (a scalar when constant)."""
    import pyarrow as pa

    m, lens = segment
    if isinstance(m, pa.Array):
        return m
    width = m.shape[1]
    if m.strides[0] == 0 and (n == 0 or lens.min() == width):  # a constant
        return pa.scalar(m[0].tobytes(), pa.large_binary())
    offsets = np.zeros(n + 1, np.int64)
    if n and lens.min() == width:  # every row full width: the matrix as is
        data = np.ascontiguousarray(m).reshape(-1)
        offsets[1:] = np.arange(1, n + 1, dtype=np.int64) * width
    else:
        data = m[np.arange(width)[None, :] < lens[:, None]]
        np.cumsum(lens, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def assemble_rows(segments: list[Segment], rows: np.ndarray | None = None) -> Any:
    """The segments joined row by row: an Arrow large_binary array, one element
    per row (only ``rows`` if given).

    Arrow's ``binary_join_element_wise`` joins the rows in C++; constants are
    scalars and full-width matrices are used as they are, so only
    variable-length pieces are compacted in numpy (measured: 1.9 -> 1.0 s of
    client CPU per million rows against the earlier one padded numpy matrix
    of all segments).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(segments[0][1]) if segments else 0
    parts = [_binary(seg, n) for seg in segments]
    if all(isinstance(p, pa.Scalar) for p in parts):  # constants: one row, repeated
        parts = [pa.array([b"".join(p.as_py() for p in parts)] * n, pa.large_binary())]
    joined = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary()))
    if rows is not None:
        joined = joined.take(pa.array(rows, pa.int64()))
    return joined


def row_bytes(joined: Any, start: int = 0, stop: int | None = None) -> bytes:
    """The bytes of rows ``[start, stop)`` of :func:`assemble_rows`' array."""
    stop = len(joined) if stop is None else min(stop, len(joined))
    if stop <= start:
        return b""
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)
    first, last = offsets[joined.offset + start], offsets[joined.offset + stop]
    return joined.buffers()[2][int(first) : int(last)].to_pybytes()


def assemble(segments: list[Segment], rows: np.ndarray | None = None) -> bytes:
    """Concatenate the segments row by row (only ``rows`` if given)."""
    if not segments or len(segments[0][1]) == 0:
        return b""
    return row_bytes(assemble_rows(segments, rows))


def encode_hset_batch(
    keys: list[Segment],
    ts_field: bytes,
    micros: np.ndarray,
    fields: list[bytes],
    values: list[list[Segment]],
) -> list[Segment]:
    """Segments of ``HSET key _ts:<view> <ts> <field> <value> ...`` per row."""
    n = len(micros)
    segs = [const(command_head(b"HSET", 2 + 2 * (len(fields) + 1)), n)]
    segs += bulk_segments(keys, n)
    segs.append(const(bulk(ts_field), n))
    segs += bulk_segments(_timestamp_parts(micros), n)
    for field, parts in zip(fields, values, strict=True):
        segs.append(const(bulk(field), n))
        segs += bulk_segments(parts, n)
    return segs
