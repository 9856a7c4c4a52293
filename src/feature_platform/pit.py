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
    # A missing created time ranks lowest (nulls inside structs would rank highest).
    cr = (
        f"coalesce({_q(created)}::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)"
        if created
        else "'-infinity'::TIMESTAMPTZ"
    )
    # Normalized source: k, ev, cr, f0..fn. Rows without key or event time never match.
    con.execute(
        f"CREATE TEMP TABLE __f AS SELECT {_q(key)} AS k, {_q(ev)}::TIMESTAMPTZ AS ev, "
        f"{cr} AS cr, {fsel} FROM __src "
        f"WHERE {_q(key)} IS NOT NULL AND {_q(ev)} IS NOT NULL"
        + (f" AND {_q(created)} IS NOT NULL" if created and as_known_at else "")
    )
    con.execute(
        f"CREATE TEMP TABLE __e AS SELECT __rid AS rid, "
        f"{_q(key)} AS k, {_q(ets)}::TIMESTAMPTZ AS ts FROM __ent"
    )
    late_cond = "cr > ev" if created and as_known_at else "false"
    fcols = ", ".join(f"f{i}" for i in range(len(features)))
    # Candidate 1: on-time rows by (ev, cr) <= (ts, +inf).
    con.execute(
        f"CREATE TEMP TABLE __c1 AS SELECT e.rid, o.ev AS ev, o.cr AS cr, {fcols} "
        f"FROM __e e ASOF LEFT JOIN (SELECT * FROM __f WHERE NOT ({late_cond})) o "
        f"ON e.k = o.k AND struct_pack(t := e.ts, c := 'infinity'::TIMESTAMPTZ) "
        f">= struct_pack(t := o.ev, c := o.cr)"
    )
    best = "__c1"
    late = con.execute(f"SELECT count(*) FROM __f WHERE {late_cond}").fetchall()[0][0]
    if late:
        # Candidate 2: late rows, available from cr; running best by (ev, cr).
        packed = ", ".join(f"f{i} := f{i}" for i in range(len(features)))
        con.execute(
            "CREATE TEMP TABLE __l AS SELECT k, cr AS avail, "
            f"arg_max(struct_pack(ev := ev, cr := cr, {packed}), "
            "struct_pack(t := ev, c := cr)) OVER (PARTITION BY k ORDER BY cr "
            "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS b "
            f"FROM __f WHERE {late_cond}"
        )
        pick2 = "(c2.b IS NOT NULL AND (c1.ev IS NULL OR struct_pack(t := c2.b.ev, "
        pick2 += "c := c2.b.cr) > struct_pack(t := c1.ev, c := c1.cr)))"
        cols = ", ".join(
            f"CASE WHEN {pick2} THEN c2.b.f{i} ELSE c1.f{i} END AS f{i}"
            for i in range(len(features))
        )
        con.execute(
            f"CREATE TEMP TABLE __best AS SELECT c1.rid, "
            f"CASE WHEN {pick2} THEN c2.b.ev ELSE c1.ev END AS ev, {cols} "
            "FROM __c1 c1 JOIN __e e USING (rid) "
            "ASOF LEFT JOIN __l c2 ON e.k = c2.k AND e.ts >= c2.avail"
        )
        best = "__best"
    ttl_ok = f"b.ev >= e.ts - to_microseconds({ttl_us}::BIGINT)" if ttl_us else "true"
    out = ", ".join(
        f"CASE WHEN {ttl_ok} THEN b.f{i} END AS {_q(f)}" for i, f in enumerate(features)
    )
    ent_cols = ", ".join(f"x.{_q(c)}" for c in entity_columns)
    return con.sql(
        f"SELECT {ent_cols}, {out} FROM __ent x JOIN __e e ON e.rid = x.__rid "
        f"JOIN {best} b ON b.rid = x.__rid ORDER BY x.__rid"
    ).to_arrow_table()
