"""A lean online read path over Feast's Redis online store.

``store.get_online_features`` re-resolves the feature service, builds entity key
protos, serializes them, runs a redis-py pipeline, parses every value into a
``ValueProto`` and assembles an ``OnlineResponse`` proto on every call. For a
model server reading a fixed feature service that is mostly repeated work, so
``FastOnlineReader`` does it once:

* the feature service is resolved once (views, Redis hash field names
  ``mmh3("<view>:<feature>")`` and ``_ts:<view>``, ttls);
* entity keys are serialized with precomputed prefixes in Feast's
  ``entity_key_serialization_version`` 3 format plus the project suffix, so
  plain ``feast`` reads and writes the very same Redis hashes;
* all HMGETs of a request go out as one pre-packed pipelined write on one
  connection and come back in one read (hiredis parses the replies);
* values are decoded from their protobuf wire bytes directly (single-field
  ``Value`` messages), falling back to ``ValueProto`` for anything unusual.

Freshness follows ``feature_platform.freshness``: a value whose event time is
more than its view's ttl before ``now`` comes back ``None`` with status
``OUTSIDE_MAX_AGE`` (a ttl of ``None``/0 never expires).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "STATUS_NOT_FOUND",
    "STATUS_NULL_VALUE",
    "STATUS_OUTSIDE_MAX_AGE",
    "STATUS_PRESENT",
    "FastOnlineReader",
    "UnsupportedStoreError",
    "decode_timestamp_parts",
    "decode_value",
    "entity_key_prefix",
    "redis_entity_key",
]

STATUS_PRESENT = "PRESENT"
STATUS_NULL_VALUE = "NULL_VALUE"
STATUS_NOT_FOUND = "NOT_FOUND"
STATUS_OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"

# Feast ValueType numbers used by the entity key format.
_VT_STRING = 2
_VT_INT32 = 3
_VT_INT64 = 4
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_I32 = struct.Struct("<i")
_F64 = struct.Struct("<d")
_F32 = struct.Struct("<f")


class UnsupportedStoreError(ValueError):
    """The fast path only serves Redis online stores with serialization v3."""


# ------------------------------------------------------------------ key format


def entity_key_prefix(join_key: str, value_type: int) -> bytes:
    """Bytes of a v3 single-join-key entity key before the value payload."""
    name = join_key.encode("utf8")
    head = _U32.pack(1) + _U32.pack(_VT_STRING) + _U32.pack(len(name)) + name
    return head + _U32.pack(value_type)


def _encode_entity_value(value: Any, value_type: int) -> bytes:
    if value_type == _VT_INT64:
        return b"\x08\x00\x00\x00" + _I64.pack(int(value))
    if value_type == _VT_INT32:
        return b"\x04\x00\x00\x00" + _I32.pack(int(value))
    raw = str(value).encode("utf8")
    return _U32.pack(len(raw)) + raw


def redis_entity_key(join_key: str, value: Any, value_type: int, project: str) -> bytes:
    """Feast's Redis key (``serialize_entity_key`` v3 + project) for one join key."""
    return (
        entity_key_prefix(join_key, value_type)
        + _encode_entity_value(value, value_type)
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


# --------------------------------------------------------------------- reader


def _feast_order(names: Iterable[str]) -> list[str]:
    """Feature names of one view in the order Feast's online read returns them.

    ``feast.utils._group_feature_refs`` collects them in a ``set`` (one
    ``add`` per reference, in request order) and lists it; the same adds give
    the same order in this process. Duplicates collapse, as in Feast.
    """
    collected: set[str] = set()
    for name in names:
        collected.add(name)
    return list(collected)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


@dataclass(frozen=True)
class _ViewPlan:
    name: str
    join_key: str
    value_type: int
    prefix: bytes
    outputs: tuple[str, ...]  # output column per requested feature
    command_tail: bytes  # packed HMGET field list (features + _ts)
    nargs: int
    ttl_s: float | None


class FastOnlineReader:
    """Reads one feature service (or a fixed feature list) from Redis, fast.

    Build it once per process (it snapshots the registry's definitions) and call
    :meth:`read` per request. Returns the same dict as
    ``store.get_online_features(...).to_dict()``, with freshness enforced.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        feature_service: str | None = None,
        features: Sequence[str] | None = None,
        enforce_ttl: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (feature_service is None) == (features is None):
            raise ValueError("pass exactly one of feature_service and features")
        config = store.config
        if getattr(config.online_store, "type", None) != "redis":
            raise UnsupportedStoreError(
                f"fast online reads need the redis online store, "
                f"not {getattr(config.online_store, 'type', config.online_store)!r}"
            )
        if getattr(config.online_store, "redis_type", "redis") != "redis":
            raise UnsupportedStoreError("fast online reads need redis_type: redis")
        if config.entity_key_serialization_version != 3:
            raise UnsupportedStoreError("fast online reads need entity key v3")
        if getattr(config.registry, "enable_online_feature_view_versioning", False):
            raise UnsupportedStoreError("versioned online feature views unsupported")
        from feast.infra.online_stores.helpers import _mmh3

        self._store = store
        self._project = config.project.encode("utf8")
        self._enforce_ttl = enforce_ttl
        self._clock = clock
        requests = self._requested(store, feature_service, features)
        plans: list[_ViewPlan] = []
        self.join_keys: list[str] = []
        for view_name, use_name, names in requests:
            view = store.get_feature_view(view_name, allow_registry_cache=True)
            columns = list(view.entity_columns)
            if len(columns) != 1:
                raise UnsupportedStoreError(
                    f"view {view_name!r}: fast reads support one join key"
                )
            key = columns[0].name
            vtype = int(columns[0].dtype.to_value_type().value)
            if vtype not in (_VT_INT64, _VT_INT32, _VT_STRING):
                raise UnsupportedStoreError(
                    f"view {view_name!r}: join key type {vtype} unsupported"
                )
            fields = [_mmh3(f"{view.name}:{n}") for n in names]
            fields.append(f"_ts:{view.name}".encode())
            tail = b"".join(_bulk(f) for f in fields)
            ttl = view.ttl.total_seconds() if view.ttl else 0.0
            plans.append(
                _ViewPlan(
                    name=use_name,
                    join_key=key,
                    value_type=vtype,
                    prefix=entity_key_prefix(key, vtype),
                    outputs=tuple(names),
                    command_tail=tail,
                    nargs=2 + len(fields),
                    ttl_s=ttl if ttl > 0 else None,
                )
            )
            if key not in self.join_keys:
                self.join_keys.append(key)
        self._plans = plans
        self.feature_names = [o for p in plans for o in p.outputs]
        online: Any = store._get_provider().online_store
        self._client = online._get_client(config.online_store)

    @staticmethod
    def _requested(
        store: FeatureStore,
        feature_service: str | None,
        features: Sequence[str] | None,
    ) -> list[tuple[str, str, list[str]]]:
        out: list[tuple[str, str, list[str]]] = []
        if feature_service is not None:
            service = store.get_feature_service(feature_service, allow_cache=True)
            for proj in service.feature_view_projections:
                names = _feast_order(f.name for f in proj.features)
                out.append((proj.name, proj.name_to_use(), names))
            return out
        grouped: dict[str, list[str]] = {}
        for ref in features or []:
            view, sep, feature = ref.partition(":")
            if not sep or not feature:
                raise ValueError(f"feature reference {ref!r} is not 'view:feature'")
            grouped.setdefault(view, []).append(feature)
        return [(v, v, _feast_order(names)) for v, names in grouped.items()]

    @property
    def views(self) -> list[tuple[str, tuple[str, ...], float | None]]:
        """``(output view name, output columns, ttl seconds or None)`` per view."""
        return [(p.name, p.outputs, p.ttl_s) for p in self._plans]

    def fetch_columns(self, columns: Mapping[str, Sequence[Any]]) -> list[list[Any]]:
        """Raw HMGET replies per view (see :attr:`views`) for entity columns.

        Each reply lists the serialized values of the view's features in
        order, then its ``_ts`` field (``None`` where the key does not exist).
        """
        n = len(next(iter(columns.values()), []))
        if n == 0:
            raise ValueError("no entity rows")
        commands: list[bytes] = []
        for plan in self._plans:
            if plan.join_key not in columns:
                raise ValueError(f"entities lack join key {plan.join_key!r}")
            head = b"*%d\r\n$5\r\nHMGET\r\n" % plan.nargs
            tail = plan.command_tail
            for k in self._keys_of(plan, columns[plan.join_key]):
                commands.append(b"%s$%d\r\n%s\r\n%s" % (head, len(k), k, tail))
        replies = self._fetch(commands, len(commands))
        return [replies[i * n : (i + 1) * n] for i in range(len(self._plans))]

    def _keys(self, plan: _ViewPlan, entity_rows: Sequence[dict[str, Any]]) -> list:
        try:
            values = [row[plan.join_key] for row in entity_rows]
        except KeyError as exc:
            raise ValueError(f"entity row lacks join key {plan.join_key!r}") from exc
        return self._keys_of(plan, values)

    def _keys_of(self, plan: _ViewPlan, values: Sequence[Any]) -> list:
        prefix, project = plan.prefix, self._project
        if plan.value_type == _VT_INT64:
            pack = _I64.pack
            return [prefix + b"\x08\x00\x00\x00" + pack(v) + project for v in values]
        return [
            prefix + _encode_entity_value(v, plan.value_type) + project for v in values
        ]

    def _fetch(self, commands: list[bytes], count: int) -> list[Any]:
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([b"".join(commands)], check_health=False)
            replies = [conn.read_response() for _ in range(count)]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return replies

    def read(
        self,
        entity_rows: Sequence[dict[str, Any]],
        *,
        now: datetime | None = None,
        include_status: bool = False,
    ) -> dict[str, list[Any]]:
        """Feature values for ``entity_rows``; join key columns come first.

        With ``include_status`` a ``"__status__"`` entry maps each feature
        column to per-row status names (PRESENT, NULL_VALUE, NOT_FOUND,
        OUTSIDE_MAX_AGE).
        """
        if not entity_rows:
            raise ValueError("entity_rows is empty")
        n = len(entity_rows)
        commands: list[bytes] = []
        for plan in self._plans:
            head = b"*%d\r\n$5\r\nHMGET\r\n" % plan.nargs
            tail = plan.command_tail
            for k in self._keys(plan, entity_rows):
                commands.append(b"%s$%d\r\n%s\r\n%s" % (head, len(k), k, tail))
        replies = self._fetch(commands, len(commands))
        now_s = ensure_utc(now, "now").timestamp() if now is not None else self._clock()

        result: dict[str, list[Any]] = {}
        # Like Feast: every entity column passed comes back, served keys first.
        entity_columns = dict.fromkeys(self.join_keys)
        for row in entity_rows:
            entity_columns.update(dict.fromkeys(row))
        for key in entity_columns:
            result[key] = [row.get(key) for row in entity_rows]
        statuses: dict[str, list[str]] = {}
        offset = 0
        for plan in self._plans:
            block = replies[offset : offset + n]
            offset += n
            nf = len(plan.outputs)
            columns: list[list[Any]] = [[None] * n for _ in range(nf)]
            status_cols: list[list[str]] = [[STATUS_NOT_FOUND] * n for _ in range(nf)]
            ttl_s = plan.ttl_s if self._enforce_ttl else None
            for i, reply in enumerate(block):
                ts_s = decode_timestamp(reply[nf])
                if ts_s is None:
                    continue
                stale = ttl_s is not None and now_s - ts_s > ttl_s
                for j in range(nf):
                    if stale:
                        status_cols[j][i] = STATUS_OUTSIDE_MAX_AGE
                        continue
                    value = decode_value(reply[j])
                    columns[j][i] = value
                    status_cols[j][i] = (
                        STATUS_NULL_VALUE if value is None else STATUS_PRESENT
                    )
            for name, col, st in zip(plan.outputs, columns, status_cols, strict=True):
                result[name] = col
                statuses[name] = st
        if include_status:
            result["__status__"] = statuses  # type: ignore[assignment,unused-ignore]
        return result
