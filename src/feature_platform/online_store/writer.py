"""Streaming writes into Feast's Redis online store format.

Feast's local engine loads the whole window into memory, builds one
``EntityKey``/``Value`` proto per cell in Python and writes through redis-py's
pipeline: about 10k rows/s and several GB of RSS per million rows. This module
writes the *same bytes* to the *same keys* (``codec``) much faster and in
bounded memory; the batch engine plugin (``feature_platform.engine``) drives it:

* the window's latest row per entity comes from ``offline.latest_parquet_batches``
  (one DuckDB query over the parquet source, Feast's
  ``pull_latest_from_table_or_query`` semantics, under a memory limit with
  spilling) as a stream of Arrow record batches; ``pii`` string columns are
  masked in that query (``pii.mask_sql``);
* each batch is serialized column by column (numpy and Arrow compute, see
  ``codec``);
* writes go out as pre-packed RESP ``HSET`` (and ``EXPIRE``) commands on one
  connection (``redis_pipe.RawPipe``), sent by a sender thread while the next
  batch is encoded; like Feast's ``online_write_batch`` a row is skipped when
  the stored event timestamp is the same or newer (a batch's pipelined
  ``HGET``s go out one batch ahead of its writes); ``max_rows_per_s`` paces
  small pieces instead.

``write_proto_rows`` is the online store plugin's ``online_write_batch``: the
same skip rule and bytes for rows that arrive as Feast protos (pushes).

``supports(config, view)`` says whether a view qualifies (a single Redis
server, entity key v3, one int/string join key, scalar features, a local
parquet ``FileSource``); the engine writes other views through the online
store's ``online_write_batch``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from feature_platform.offline import latest_parquet_batches, source_path
from feature_platform.online_store.codec import (
    FEATURE_TAGS,
    VT_INT32,
    VT_INT64,
    VT_STRING,
    assemble,
    assemble_rows,
    bulk,
    bulk_segments,
    command,
    command_head,
    const,
    decode_timestamp_nanos,
    encode_hset_batch,
    entity_key_prefix,
    key_parts,
    row_bytes,
    value_parts,
)
from feature_platform.online_store.redis_pipe import RawPipe

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.repo_config import RepoConfig

__all__ = [
    "PACE_ROWS",
    "hset_payloads",
    "materialize_view_fast",
    "supports",
    "write_proto_rows",
]

# Rows per paced piece when throttled. Measured with the serving benchmark's
# batch-1 reads at 200/s during a 1M-row materialization throttled to 60k rows/s
# (idle p99 about 0.2 ms): read p99 1.46 ms with 1,000-row pieces, 0.56-0.63 ms
# with 200, 0.31-0.36 ms with 50, 0.26 ms with 25. With 50 the paced path tops
# out near 110k rows/s (one dedup round trip per piece).
PACE_ROWS = 50
# Rows of a materialization's first batch (each next one twice as many, up to
# the batch size). Redis idles until the first batch's writes arrive: with
# whole 50k-row batches that waited for the aggregation, the email HMAC of 50k
# rows and their encoding. Measured at 100k rows (min of 10-15 runs, the two
# alternating, machine loaded by other work, load 3.8-6.5): first HSET sent
# after 0.61 -> 0.22 s; whole write 0.93 -> 0.80 s, 1.46 -> 1.38 s, 1.83 ->
# 1.76 s in three sessions (the gain needs an idle core). At 1M rows: same
# client CPU (6.76 vs 6.66 s), wall within noise.
FIRST_BATCH_ROWS = 2048


def supports(config: RepoConfig, view: FeatureView) -> bool:
    """True when ``view`` can take the streaming path on this repo config."""
    from feature_platform.online_store.reader import UnsupportedRead, check_store_config

    try:
        check_store_config(config)
    except UnsupportedRead:
        return False
    cols = list(view.entity_columns)
    if len(cols) != 1:
        return False
    if int(cols[0].dtype.to_value_type().value) not in (VT_INT64, VT_INT32, VT_STRING):
        return False
    if any(f.dtype.to_value_type().name not in FEATURE_TAGS for f in view.features):
        return False
    return source_path(view) is not None


@dataclass
class _Encoded:
    """One batch of the window, ready to send."""

    n: int
    keys: list[Any]  # key segments (for HMGET / EXPIRE)
    micros: np.ndarray  # event time of each row
    hset: list[Any]  # HSET segments (codec.assemble)


def _encoded_batches(
    config: RepoConfig,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    batch_rows: int | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    on_total: Callable[[int], None] | None = None,
    first_batch_rows: int | None = None,
) -> Iterator[_Encoded]:
    """The latest row per entity of ``[start, end]`` (``offline``'s DuckDB
    read, on ``threads`` threads, all cores when None), encoded batch by batch."""
    import pyarrow as pa

    from feature_platform.feast_compat import feature_field
    from feature_platform.pii import mask_array, mask_sql, pii_fields, pii_salt

    if not supports(config, view):
        raise ValueError(f"view {view.name!r} does not qualify for the fast path")
    key_col = view.entity_columns[0]
    vtype = int(key_col.dtype.to_value_type().value)
    features = [f.name for f in view.features]
    pii = set(pii_fields(view))  # masked before they reach the online store
    salt = pii_salt() if pii else ""
    types = [f.dtype.to_value_type().name for f in view.features]
    project = config.project.encode("utf8")
    prefix = entity_key_prefix(key_col.name, vtype)
    ts_field = f"_ts:{view.name}".encode()
    fields = [feature_field(view.name, name) for name in features]
    # String pii columns are masked by DuckDB, others in Python below.
    sql_masked = {
        n: partial(mask_sql, salt=salt)
        for n, t in zip(features, types, strict=True)
        if n in pii and t == "STRING"
    }
    for batch in latest_parquet_batches(
        view,
        start,
        end,
        transforms=sql_masked,
        batch_rows=batch_rows,
        memory_limit=memory_limit,
        threads=threads,
        on_total=on_total,
        first_batch_rows=first_batch_rows,
    ):
        n = batch.num_rows
        if n == 0:
            continue
        keys = key_parts(batch.column(0), vtype, prefix, project)
        micros = (
            batch.column(len(features) + 1)
            .cast(pa.timestamp("us", tz="UTC"))
            .cast(pa.int64())
            .to_numpy(zero_copy_only=False)
        )
        values = [
            value_parts(
                mask_array(batch.column(i + 1), salt)
                if name in pii and name not in sql_masked
                else batch.column(i + 1),
                t,
            )
            for i, (name, t) in enumerate(zip(features, types, strict=True))
        ]
        hset = encode_hset_batch(keys, ts_field, micros, fields, values)
        yield _Encoded(n, keys, micros, hset)


def _hget(enc: _Encoded, view: FeatureView) -> list[Any]:
    """Segments of ``HGET <key> _ts:<view>`` per row (the dedup rule's read)."""
    ts_field = f"_ts:{view.name}".encode()
    return [
        const(command_head(b"HGET", 3), enc.n),
        *bulk_segments(enc.keys, enc.n),
        const(bulk(ts_field), enc.n),
    ]


def _expire(enc: _Encoded, ttl: bytes) -> list[Any]:
    """Segments of ``EXPIRE <key> <ttl>`` per row (``key_ttl_seconds``)."""
    return [
        const(command_head(b"EXPIRE", 3), enc.n),
        *bulk_segments(enc.keys, enc.n),
        const(bulk(ttl), enc.n),
    ]


def _dedup(config: RepoConfig) -> bool:
    """Feast's skip rule is on unless the store sets ``skip_dedup``."""
    return not getattr(config.online_store, "skip_dedup", False)


def _key_ttl(config: RepoConfig) -> bytes:
    key_ttl = getattr(config.online_store, "key_ttl_seconds", None)
    return str(int(key_ttl)).encode() if key_ttl else b""


def hset_payloads(
    config: RepoConfig,
    view: FeatureView,
    start: datetime,
    end: datetime,
    *,
    all_commands: bool = False,
) -> Iterator[tuple[int, bytes, int]]:
    """(rows, RESP bytes, replies) of the ``HSET``s a materialization of the
    window sends, batch by batch, every row kept: the benchmark's physical
    floor replays exactly these bytes. ``all_commands`` adds what the store's
    config makes it send besides: the dedup rule's ``HGET`` and
    ``key_ttl_seconds``' ``EXPIRE`` per row."""
    dedup = _dedup(config)
    ttl = _key_ttl(config)
    for enc in _encoded_batches(config, view, start, end):
        payload = assemble(enc.hset)
        replies = enc.n
        if all_commands and dedup:
            payload = assemble(_hget(enc, view)) + payload
            replies += enc.n
        if all_commands and ttl:
            payload += assemble(_expire(enc, ttl))
            replies += enc.n
        yield enc.n, payload, replies


def materialize_view_fast(
    config: RepoConfig,
    client: Any,
    view: FeatureView,
    start: datetime,
    end: datetime,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    batch_rows: int | None = None,
    memory_limit: str | None = None,
    max_rows_per_s: float | None = None,
) -> int:
    """Write the latest row per entity of ``[start, end]`` into Redis; rows written.

    ``client`` is the online store's redis-py client. Rows whose stored event
    timestamp is the same or newer are skipped (counted as written, like Feast's
    ``online_write_batch``), so re-running a window leaves the same state.
    ``max_rows_per_s`` throttles the writes (``Settings.materialize_max_rows_per_s``)
    so that serving from the same Redis keeps its latency: paced pieces of
    ``PACE_ROWS`` rows, DuckDB on one thread, and all of it on a thread of the
    lowest CPU priority.
    """

    def run() -> int:
        return _materialize_view(
            config,
            client,
            view,
            start,
            end,
            progress,
            batch_rows=batch_rows,
            memory_limit=memory_limit,
            max_rows_per_s=max_rows_per_s,
        )

    return _at_low_priority(run) if max_rows_per_s else run()


def _at_low_priority(work: Callable[[], int]) -> int:
    """``work()`` on a thread of its own at the lowest CPU priority (nice 19,
    Linux: inherited by the threads it starts, the sender and DuckDB's). The
    caller keeps its priority: lowering a thread's cannot be undone without
    privileges, so the thread ends with the work. Measured with the serving
    benchmark's reads sharing the 2 cores: p99 1.3 ms at normal priority,
    0.43 ms at this one (idle 0.2-0.4 ms), same throttle, same rows/s."""
    import os
    import threading

    result: dict[str, Any] = {}

    def body() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):  # no per-thread priority here
            pass
        try:
            result["rows"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=body, name="fp-materialize-throttled", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return int(result["rows"])


@dataclass(eq=False)
class _Replies:
    """Replies of one send, not read yet: ``count`` one-line replies
    (``HSET``/``EXPIRE``), or ``count`` ``HGET`` timestamps (``stored``)."""

    count: int
    timestamps: bool
    stored: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


class _ViewWrites:
    """One view's writes on one ``RawPipe``: the commands sent and, in the
    order they were sent, the replies not read yet (``_Replies``)."""

    def __init__(
        self,
        pipe: RawPipe,
        view: FeatureView,
        *,
        dedup: bool,
        ttl: bytes,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        self.pipe = pipe
        self.view = view
        self.dedup = dedup  # Feast's skip rule: read stored event times first
        self.ttl = ttl  # EXPIRE's argument (key_ttl_seconds), b"" for none
        self.progress = progress
        self.written = 0  # rows done (written or skipped as not newer)
        self.total = 0  # rows to come (the window's entities), for progress
        self.t0 = time.perf_counter()  # the pace's origin
        self._unread: deque[_Replies] = deque()

    def set_total(self, count: int) -> None:
        self.total = count

    def ask_timestamps(self, payload: bytes, count: int) -> _Replies:
        """Send ``count`` pipelined ``HGET``s of stored event times; their
        replies arrive in ``stored`` once read through."""
        self.pipe.send(payload)
        replies = _Replies(count, timestamps=True)
        self._unread.append(replies)
        return replies

    def read_through(self, replies: _Replies | None = None) -> None:
        """Read every reply up to ``replies`` (all of them when None)."""
        while self._unread:
            head = self._unread.popleft()
            if head.timestamps:
                head.stored = self.pipe.timestamps(head.count)
            else:
                self.pipe.line_replies(head.count)
            if head is replies:
                return

    def _newer(self, micros: np.ndarray, replies: _Replies) -> np.ndarray | None:
        """Rows (indices) newer than their stored event time, None for all:
        Feast's rule, the same or an older event is skipped."""
        self.read_through(replies)
        newer = micros * 1000 > replies.stored
        return None if newer.all() else np.flatnonzero(newer)

    def _send_writes(
        self, hset: Any, expire: Any, rows: np.ndarray | None = None
    ) -> None:
        """HSETs (and EXPIREs) of the joined rows (only ``rows`` if given)."""
        import pyarrow as pa

        if rows is not None:
            if not len(rows):
                return
            take = pa.array(rows, pa.int64())
            hset = hset.take(take)
            expire = expire.take(take) if expire is not None else None
        payload = row_bytes(hset)
        if expire is not None:
            payload += row_bytes(expire)
        self.pipe.send(payload)
        count = len(hset) * (2 if expire is not None else 1)
        self._unread.append(_Replies(count, timestamps=False))

    def _done(self, enc: _Encoded) -> None:
        self.written += enc.n
        if self.progress:
            self.progress(self.view.name, self.written, self.total)

    def write(self, enc: _Encoded, stored: _Replies | None) -> None:
        """Send a batch's writes, skipping the rows whose stored event time
        (``stored``, the batch's ``HGET`` replies) is the same or newer."""
        keep = self._newer(enc.micros, stored) if stored is not None else None
        if keep is None or len(keep):
            hset = assemble_rows(enc.hset, keep)
            expire = assemble_rows(_expire(enc, self.ttl), keep) if self.ttl else None
            self._send_writes(hset, expire)
        self._done(enc)

    def write_paced(self, enc: _Encoded, rate: float) -> None:
        """Throttled: the batch in pieces of ``PACE_ROWS`` rows, each piece's
        timestamps read (one round trip) and its writes sent at the allowed
        rate. Whole batches at once, reads and writes alike, kept Redis busy
        for their length and the reads of the serving benchmark waited behind
        them (see ``PACE_ROWS``)."""
        hget = assemble_rows(_hget(enc, self.view)) if self.dedup else None
        hset = assemble_rows(enc.hset)
        expire = assemble_rows(_expire(enc, self.ttl)) if self.ttl else None
        for lo in range(0, enc.n, PACE_ROWS):
            hi = min(enc.n, lo + PACE_ROWS)
            rows: np.ndarray | None = None
            if hget is not None:
                stored = self.ask_timestamps(row_bytes(hget, lo, hi), hi - lo)
                keep = self._newer(enc.micros[lo:hi], stored)
                rows = lo + keep if keep is not None else None
            ahead = (self.written + lo) / rate - (time.perf_counter() - self.t0)
            if ahead > 0:  # never ahead of the allowed rate
                time.sleep(ahead)
            if rows is None:
                self._send_writes(
                    hset.slice(lo, hi - lo),
                    expire.slice(lo, hi - lo) if expire is not None else None,
                )
            else:
                self._send_writes(hset, expire, rows)
        self._done(enc)


def _materialize_view(
    config: RepoConfig,
    client: Any,
    view: FeatureView,
    start: datetime,
    end: datetime,
    progress: Callable[[str, int, int], None] | None,
    *,
    batch_rows: int | None,
    memory_limit: str | None,
    max_rows_per_s: float | None,
) -> int:
    writes = _ViewWrites(
        RawPipe(client),
        view,
        dedup=_dedup(config),
        ttl=_key_ttl(config),
        progress=progress,
    )
    try:
        # With the dedup rule a batch's timestamps (HGET) go out as soon as it
        # is encoded and its writes one batch later, so Redis always has the
        # previous batch's writes to work on while these replies are read.
        # Keys are unique within a window (latest row per entity), so a batch's
        # reads never depend on the writes of the batch before it.
        held: tuple[_Encoded, _Replies] | None = None
        for enc in _encoded_batches(
            config,
            view,
            start,
            end,
            batch_rows=batch_rows,
            memory_limit=memory_limit,
            # Throttled, DuckDB's aggregation gets one core, not all: on all of
            # them it starved the serving process sharing the host (the slow
            # reads of the serving benchmark fell in that phase).
            threads=1 if max_rows_per_s else None,
            on_total=writes.set_total if progress else None,
            first_batch_rows=FIRST_BATCH_ROWS,
        ):
            if max_rows_per_s:
                writes.write_paced(enc, max_rows_per_s)
            elif not writes.dedup:
                writes.write(enc, None)
            else:
                stored = writes.ask_timestamps(assemble(_hget(enc, view)), enc.n)
                if held is not None:
                    writes.write(*held)
                held = (enc, stored)
        if held is not None:
            writes.write(*held)
        writes.read_through()
    finally:
        writes.pipe.close()
    return writes.written


def write_proto_rows(
    client: Any, config: RepoConfig, view: FeatureView, data: list[Any]
) -> int:
    """Feast's ``online_write_batch`` semantics for rows given as protos.

    ``data`` is ``[(EntityKeyProto, {feature: ValueProto}, event_ts, created_ts)]``.
    Same keys and bytes as Feast, the same rule (a row is written only when its
    event time is newer than the stored one and than an earlier row of the same
    key in this batch), ``key_ttl_seconds`` and ``skip_dedup``; the commands go
    out pre-packed, one pipelined round trip for the timestamps and one for the
    writes. Returns the rows written.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.utils import make_tzaware
    from google.protobuf.timestamp_pb2 import Timestamp

    from feature_platform.feast_compat import feature_field
    from feature_platform.online_store.redis_pipe import round_trip

    online: Any = config.online_store
    project = config.project.encode("utf8")
    version = config.entity_key_serialization_version
    ts_key = f"_ts:{view.name}".encode()
    keys = [
        serialize_entity_key(row[0], entity_key_serialization_version=version) + project
        for row in data
    ]
    prev: list[int] = [0] * len(data)
    if not online.skip_dedup:
        replies = round_trip(client, [command(b"HMGET", k, ts_key) for k in keys])
        prev = [decode_timestamp_nanos(r[0]) for r in replies]
    fields: dict[str, bytes] = {}
    ttl = str(int(online.key_ttl_seconds)).encode() if online.key_ttl_seconds else b""
    latest: dict[bytes, int] = {}
    commands: list[bytes] = []
    for key, stored, (_, values, event_ts, _) in zip(keys, prev, data, strict=True):
        ts = Timestamp()
        ts.FromDatetime(make_tzaware(event_ts))
        nanos = ts.seconds * 1_000_000_000 + ts.nanos
        if not online.skip_dedup:
            seen = max(stored, latest.get(key, 0))
            if seen and nanos <= seen:
                continue
            latest[key] = nanos
        parts = [b"HSET", key, ts_key, ts.SerializeToString()]
        for name, value in values.items():
            field = fields.get(name)
            if field is None:
                field = fields[name] = feature_field(view.name, name)
            parts += [field, value.SerializeToString()]
        commands.append(command(*parts))
        if ttl:
            commands.append(command(b"EXPIRE", key, ttl))
    if commands:
        errors = [r for r in round_trip(client, commands) if isinstance(r, Exception)]
        if errors:
            raise RuntimeError(f"Redis rejected a write: {errors[0]}")
    return len(latest) if not online.skip_dedup else len(data)
