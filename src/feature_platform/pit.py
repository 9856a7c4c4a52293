"""A fast, exact point-in-time join (DuckDB ASOF JOIN), every entity row kept.

For each entity row ``(key, ts)`` the result carries the feature row of the same
key with the greatest ``(event_timestamp, created_timestamp)`` such that

* ``event_timestamp <= ts`` and ``event_timestamp >= ts - ttl`` (both inclusive),
* as known at ``ts`` (``as_known_at=True``): ``created_timestamp <= ts`` too, so
  late-arriving rows never leak into training,

and nulls when there is none. Row count and order of ``entities`` are preserved,
duplicate entity rows included. This is exactly ``tests/reference.py``'s
brute-force ``pit_join``, computed with two ASOF joins instead of a Python loop:

* "on-time" rows (``created <= event``, or every row when not as-known-at) are
  available from their event time, so an ASOF JOIN on the ordered pair
  ``(event, created) <= (ts, +inf)`` picks the best of them directly;
* late rows (``created > event``) become available at their created time but
  rank by event time: a running arg-max over them (by created time) followed by
  an ASOF JOIN on ``created <= ts`` picks the best late row;
* the better of the two candidates wins, then the ttl is checked on it (if the
  best available row is older than ttl, every available row is).

Feast's file offline store drops entity rows without a match and its DuckDB
store is several times slower; see ``benchmarks/`` for the numbers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["pit_join"]


_TWO64 = "18446744073709551616::HUGEINT"
_TWO63 = "9223372036854775808::HUGEINT"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ttl_micros(ttl: Any) -> int | None:
    if ttl is None:
        return None
    if hasattr(ttl, "total_seconds"):
        seconds = ttl.total_seconds()
    else:
        seconds = float(ttl)
    if seconds <= 0:
        return None  # Feast: a zero ttl means "no limit"
    micros = round(seconds * 1_000_000)
    return micros


def pit_join(
    entities: pd.DataFrame | pa.Table,
    source: pd.DataFrame | pa.Table | str | Path,
    key: str,
    features: list[str],
    *,
    ttl: timedelta | Any | None,
    as_known_at: bool = True,
    timestamp_field: str = "event_timestamp",
    created_timestamp_column: str | None = "created_timestamp",
    entity_timestamp_column: str = "event_timestamp",
    threads: int | None = None,
) -> pd.DataFrame:
    """Point-in-time join of ``features`` from ``source`` onto ``entities``.

    ``source`` is a dataframe, an Arrow table or a parquet path/glob; a
    ``created_timestamp_column`` absent from it is ignored. Timestamps must be
    timezone-aware (UTC). Returns ``entities``' columns followed by ``features``.
    """
    import duckdb
    import pyarrow as pa

    ent = (
        entities
        if isinstance(entities, pa.Table)
        else pa.Table.from_pandas(entities, preserve_index=False)
    )
    for col in (key, entity_timestamp_column):
        if col not in ent.column_names:
            raise ValueError(f"entities lack column {col!r}")
    overlap = [f for f in features if f in ent.column_names]
    if overlap:
        raise ValueError(f"entities already have feature column(s) {overlap}")

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if isinstance(source, str | Path):
            literal = "'" + str(source).replace("'", "''") + "'"
            con.execute(f"CREATE VIEW __src AS SELECT * FROM read_parquet({literal})")
        else:
            src = (
                source
                if isinstance(source, pa.Table)
                else pa.Table.from_pandas(source, preserve_index=False)
            )
            con.register("__src", src)
        src_cols = [r[0] for r in con.execute("DESCRIBE __src").fetchall()]
        missing = [c for c in (key, timestamp_field, *features) if c not in src_cols]
        if missing:
            raise ValueError(f"source lacks column(s) {missing}")
        created = (
            created_timestamp_column
            if created_timestamp_column and created_timestamp_column in src_cols
            else None
        )
        rid = pa.array(range(ent.num_rows), type=pa.int64())
        con.register("__ent", ent.append_column("__rid", rid))
        table = _join(
            con,
            key=key,
            features=features,
            ev=timestamp_field,
            created=created,
            ets=entity_timestamp_column,
            ttl_us=_ttl_micros(ttl),
            as_known_at=as_known_at,
            entity_columns=ent.column_names,
        )
    finally:
        con.close()
    return table.to_pandas()


def _join(
    con: Any,
    *,
    key: str,
    features: list[str],
    ev: str,
    created: str | None,
    ets: str,
    ttl_us: int | None,
    as_known_at: bool,
    entity_columns: list[str],
) -> pa.Table:
    fsel = ", ".join(f"{_q(f)} AS f{i}" for i, f in enumerate(features))
    # One HUGEINT orders (event, created) lexicographically: event micros in the
    # high 64 bits, created micros (+2^63, or 0 when there is none) in the low.
    cr_us = f"epoch_us({_q(created)}::TIMESTAMPTZ)" if created else "NULL::BIGINT"
    con.execute(
        f"CREATE TEMP TABLE __e AS SELECT __rid AS rid, {_q(key)} AS k, "
        f"epoch_us({_q(ets)}::TIMESTAMPTZ) AS ts_us, "
        f"epoch_us({_q(ets)}::TIMESTAMPTZ)::HUGEINT * {_TWO64} + ({_TWO64} - 1) "
        "AS eord FROM __ent"
    )
    # Only feature rows that can match some entity row: a key that is asked for
    # and an event time inside [min(ts) - ttl, max(ts)].
    lo, hi = con.execute("SELECT min(ts_us), max(ts_us) FROM __e").fetchall()[0]
    if lo is None:  # no entity row has a timestamp: nothing can match
        lo, hi = 1, 0
    window = f"ev_us <= {int(hi)}" + (
        f" AND ev_us >= {int(lo) - ttl_us}" if ttl_us else ""
    )
    con.execute(
        "CREATE TEMP VIEW __f AS SELECT k, ev_us, cr_us, "
        f"ev_us::HUGEINT * {_TWO64} + coalesce(cr_us::HUGEINT + {_TWO63}, 0) AS ord, "
        f"{', '.join(f'f{i}' for i in range(len(features)))} FROM ("
        f"SELECT {_q(key)} AS k, epoch_us({_q(ev)}::TIMESTAMPTZ) AS ev_us, "
        f"{cr_us} AS cr_us, {fsel} FROM __src "
        f"WHERE {_q(key)} IS NOT NULL AND {_q(ev)} IS NOT NULL"
        + (f" AND {_q(created)} IS NOT NULL" if created and as_known_at else "")
        + f") WHERE {window} AND k IN (SELECT DISTINCT k FROM __e)"
    )
    late_cond = "cr_us > ev_us" if created and as_known_at else "false"
    # Late rows are few: materialize them once; on-time rows stream from parquet
    # straight into the ASOF join (one scan, no 10M-row temp table).
    con.execute(f"CREATE TEMP TABLE __lf AS SELECT * FROM __f WHERE {late_cond}")
    fcols = ", ".join(f"f{i}" for i in range(len(features)))
    # Candidate 1: on-time rows (available from their event time), best by
    # (event, created) <= (ts, +inf).
    con.execute(
        f"CREATE TEMP TABLE __c1 AS SELECT e.rid, o.ord, o.ev_us, {fcols} "
        f"FROM __e e ASOF LEFT JOIN (SELECT * FROM __f WHERE NOT ({late_cond})) o "
        "ON e.k = o.k AND e.eord >= o.ord"
    )
    best = "__c1"
    late = con.execute("SELECT count(*) FROM __lf").fetchall()[0][0]
    if late:
        # Candidate 2: late rows, available from cr; running best by (ev, cr).
        packed = ", ".join(f"f{i} := f{i}" for i in range(len(features)))
        con.execute(
            "CREATE TEMP TABLE __l AS SELECT k, cr_us AS avail, "
            f"arg_max(struct_pack(ord := ord, ev_us := ev_us, {packed}), ord) "
            "OVER (PARTITION BY k ORDER BY cr_us "
            "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS b "
            "FROM __lf"
        )
        pick2 = "(c2.b IS NOT NULL AND (c1.ord IS NULL OR c2.b.ord > c1.ord))"
        cols = ", ".join(
            f"CASE WHEN {pick2} THEN c2.b.f{i} ELSE c1.f{i} END AS f{i}"
            for i in range(len(features))
        )
        con.execute(
            f"CREATE TEMP TABLE __best AS SELECT c1.rid, "
            f"CASE WHEN {pick2} THEN c2.b.ev_us ELSE c1.ev_us END AS ev_us, {cols} "
            "FROM __c1 c1 JOIN __e e USING (rid) "
            "ASOF LEFT JOIN __l c2 ON e.k = c2.k AND e.ts_us >= c2.avail"
        )
        best = "__best"
    ttl_ok = f"b.ev_us >= e.ts_us - {ttl_us}" if ttl_us else "true"
    out = ", ".join(
        f"CASE WHEN {ttl_ok} THEN b.f{i} END AS {_q(f)}" for i, f in enumerate(features)
    )
    ent_cols = ", ".join(f"x.{_q(c)}" for c in entity_columns)
    return con.sql(
        f"SELECT {ent_cols}, {out} FROM __ent x JOIN __e e ON e.rid = x.__rid "
        f"JOIN {best} b ON b.rid = x.__rid ORDER BY x.__rid"
    ).to_arrow_table()
