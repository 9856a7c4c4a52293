"""A fast, exact point-in-time join (DuckDB), every entity row kept.

For each entity row ``(key, ts)`` the result carries the feature row of the same
key with the greatest ``(event_timestamp, created_timestamp)`` such that

* ``event_timestamp <= ts`` and ``event_timestamp >= ts - ttl`` (both inclusive),
* as known at ``ts`` (``as_known_at=True``): ``created_timestamp <= ts`` too, so
  late-arriving rows never leak into training,

and nulls when there is none. Row count and order of ``entities`` are preserved,
duplicate entity rows included. This is exactly ``tests/reference.py``'s
brute-force ``pit_join``.

With a ttl (every Feast view the platform defines has one) the join is one
hash join of the projected source columns on the key and a ttl-wide time
bucket (each entity row entered under its bucket and the one before) with the
time conditions as join predicates (as known at is one more predicate, late rows need no
separate pass), the best row per entity row picked by a ``QUALIFY``
``row_number()``, and the winners scattered back into entity order with Arrow
(the entity columns never go through DuckDB). Measured on the benchmark data
(``benchmarks/pit.py``), this beat one ASOF join on a combined (event, created)
key plus a late-row ASOF join: DuckDB's ASOF join sorts the whole source while
the hash join only probes it. Without a ttl the candidate set of a hash join is
unbounded, so that case keeps the two ASOF joins:

* "on-time" rows (``created <= event``, or every row when not as-known-at) are
  available from their event time, so an ASOF JOIN on the ordered pair
  ``(event, created) <= (ts, +inf)`` picks the best of them directly;
* late rows (``created > event``) become available at their created time but
  rank by event time: a running arg-max over them (by created time) followed by
  an ASOF JOIN on ``created <= ts`` picks the best late row;
* the better of the two candidates wins.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict, Unpack

from feature_platform.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["PitJoinOptions", "pit_join", "pit_join_columns"]


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


class PitJoinOptions(TypedDict, total=False):
    """The keyword options of :func:`pit_join_columns` (defaults there), which
    :func:`pit_join` passes through unchanged."""

    ttl: Required[timedelta | Any | None]
    as_known_at: bool
    timestamp_field: str
    created_timestamp_column: str | None
    entity_timestamp_column: str
    threads: int | None


def pit_join(
    entities: pd.DataFrame | pa.Table,
    source: pd.DataFrame | pa.Table | str | Path,
    key: str,
    features: list[str],
    **options: Unpack[PitJoinOptions],
) -> pd.DataFrame:
    """Point-in-time join of ``features`` from ``source`` onto ``entities``.

    ``source`` is a dataframe, an Arrow table or a parquet path/glob; a
    ``created_timestamp_column`` absent from it is ignored. Timestamps must be
    timezone-aware (UTC). Returns ``entities``' columns followed by ``features``.
    The options are :func:`pit_join_columns`'.
    """
    import pyarrow as pa

    columns = pit_join_columns(entities, source, key, features, **options)
    out = (
        entities.to_pandas() if isinstance(entities, pa.Table) else entities.copy()
    ).reset_index(drop=True)
    for name in features:
        out[name] = columns[name].to_pandas()
    return out


def pit_join_columns(
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
) -> dict[str, pa.Array]:
    """:func:`pit_join`'s feature columns only, as Arrow arrays in entity order.

    For callers that keep their own entity frame (the offline store plugin):
    the entity columns are neither copied nor converted.
    """
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(entities, pa.Table):
        names = entities.column_names
    else:
        names = list(entities.columns)
    for col in (key, entity_timestamp_column):
        if col not in names:
            raise BadInput(f"entities lack column {col!r}")
    overlap = [f for f in features if f in names]
    if overlap:
        raise BadInput(f"entities already have feature column(s) {overlap}")
    # Only the key and the timestamp go to DuckDB.
    if isinstance(entities, pa.Table):
        ent = entities.select([key, entity_timestamp_column])
    else:  # column by column: selecting a sub-frame first would copy it
        ent = pa.table(
            {
                col: pa.Array.from_pandas(entities[col])
                for col in (key, entity_timestamp_column)
            }
        )
    n = ent.num_rows
    ent = ent.append_column("__rid", pa.array(np.arange(n, dtype=np.int64)))

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
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
            raise BadInput(f"source lacks column(s) {missing}")
        created = (
            created_timestamp_column
            if created_timestamp_column and created_timestamp_column in src_cols
            else None
        )
        con.register("__ent", ent)
        con.execute(
            f"CREATE TEMP TABLE __e AS SELECT __rid AS rid, {_q(key)} AS k, "
            f"epoch_us({_q(entity_timestamp_column)}::TIMESTAMPTZ) AS ts_us "
            "FROM __ent"
        )
        ttl_us = _ttl_micros(ttl)
        lo, hi = con.execute("SELECT min(ts_us), max(ts_us) FROM __e").fetchall()[0]
        rows = _source_rows(
            lo,
            hi,
            key=key,
            features=features,
            ev=timestamp_field,
            created=created,
            as_known_at=as_known_at,
            ttl_us=ttl_us,
        )
        n_features = len(features)
        if ttl_us:
            best = _bounded_join(
                con,
                rows,
                lo,
                n_features=n_features,
                created=created,
                ttl_us=ttl_us,
                as_known_at=as_known_at,
            )
        else:
            best = _asof_join(
                con,
                rows,
                n_features=n_features,
                created=created,
                as_known_at=as_known_at,
            )
    finally:
        con.close()
    # Scatter the winners (at most one per entity row) into entity order.
    index = np.full(n, -1, dtype=np.int64)
    index[best.column(0).to_numpy()] = np.arange(best.num_rows, dtype=np.int64)
    take = pa.array(index, mask=index < 0)
    out = {}
    for i, name in enumerate(features):
        column = best.column(i + 1)
        out[name] = pc.take(column, take).combine_chunks() if n else column[:0]
    return out


def _source_rows(
    lo: int | None,
    hi: int | None,
    *,
    key: str,
    features: list[str],
    ev: str,
    created: str | None,
    as_known_at: bool,
    ttl_us: int | None,
) -> str:
    """SQL of the projected source rows that can match some entity row: a key
    that is asked for, an event time inside ``[lo - ttl, hi]`` (``lo``, ``hi``:
    the entity rows' earliest and latest ``ts_us``)."""
    if lo is None or hi is None:  # no entity row has a timestamp: nothing can match
        lo, hi = 1, 0
    window = f"ev_us <= {int(hi)}" + (
        f" AND ev_us >= {int(lo) - ttl_us}" if ttl_us else ""
    )
    fsel = ", ".join(f"{_q(f)} AS f{i}" for i, f in enumerate(features))
    cr_us = f"epoch_us({_q(created)}::TIMESTAMPTZ)" if created else "NULL::BIGINT"
    return (
        f"SELECT * FROM (SELECT {_q(key)} AS k, "
        f"epoch_us({_q(ev)}::TIMESTAMPTZ) AS ev_us, {cr_us} AS cr_us, {fsel} "
        f"FROM __src WHERE {_q(key)} IS NOT NULL AND {_q(ev)} IS NOT NULL"
        + (f" AND {_q(created)} IS NOT NULL" if created and as_known_at else "")
        + f") WHERE {window}"
    )


def _bounded_join(
    con: Any,
    rows: str,
    lo: int | None,
    *,
    n_features: int,
    created: str | None,
    ttl_us: int,
    as_known_at: bool,
) -> pa.Table:
    """(rid, f0, f1, ...) of the entity rows with a match: one hash join. ``rows`` is
    :func:`_source_rows`' SQL, ``lo`` the entity rows' earliest ``ts_us``."""
    ttl = int(ttl_us)
    known = " AND o.cr_us <= e.ts_us" if created and as_known_at else ""
    order = "o.ev_us DESC" + (", o.cr_us DESC NULLS LAST" if created else "")
    fcols = ", ".join(f"o.f{i}" for i in range(n_features))
    # Time buckets of width ttl, counted from the earliest event time that can
    # match (so never negative): a row with ts - ttl <= ev <= ts lies in ts's
    # bucket or the one before, so each entity row is entered under both and
    # the join key becomes (key, bucket). Same result, but the time predicates
    # run on about 2 * ttl / span of the same-key pairs instead of all of them
    # (0.54 -> 0.44 s on the 1M x 10M benchmark data, 30 days, ttl 3 days).
    base = (int(lo) - ttl) if lo is not None else 0
    con.execute(
        f"CREATE TEMP TABLE __eb AS SELECT rid, k, ts_us, "
        f"(ts_us - {base}) // {ttl} AS b FROM __e "
        f"UNION ALL SELECT rid, k, ts_us, (ts_us - {base}) // {ttl} - 1 FROM __e"
    )
    return con.sql(
        f"SELECT e.rid, {fcols} FROM __eb e JOIN ({rows}) o ON e.k = o.k "
        f"AND e.b = (o.ev_us - {base}) // {ttl} "
        f"AND o.ev_us <= e.ts_us AND o.ev_us >= e.ts_us - {ttl}{known} "
        f"QUALIFY row_number() OVER (PARTITION BY e.rid ORDER BY {order}) = 1"
    ).to_arrow_table()


def _asof_join(
    con: Any,
    rows: str,
    *,
    n_features: int,
    created: str | None,
    as_known_at: bool,
) -> pa.Table:
    """(rid, f0, f1, ...) per entity row without a ttl: two ASOF joins. ``rows`` is
    :func:`_source_rows`' SQL."""
    fcols = ", ".join(f"f{i}" for i in range(n_features))
    # One HUGEINT orders (event, created) lexicographically: event micros in the
    # high 64 bits, created micros (+2^63, or 0 when there is none) in the low.
    con.execute(
        f"CREATE TEMP VIEW __f AS SELECT k, ev_us, cr_us, "
        f"ev_us::HUGEINT * {_TWO64} + coalesce(cr_us::HUGEINT + {_TWO63}, 0) AS ord, "
        f"{fcols} FROM ({rows}) WHERE k IN (SELECT DISTINCT k FROM __e)"
    )
    con.execute(
        f"CREATE TEMP VIEW __eo AS SELECT rid, k, ts_us, "
        f"ts_us::HUGEINT * {_TWO64} + ({_TWO64} - 1) AS eord FROM __e"
    )
    late_cond = "cr_us > ev_us" if created and as_known_at else "false"
    # Late rows are few: materialize them once; on-time rows stream from the
    # source straight into the ASOF join.
    con.execute(f"CREATE TEMP TABLE __lf AS SELECT * FROM __f WHERE {late_cond}")
    # Candidate 1: on-time rows (available from their event time), best by
    # (event, created) <= (ts, +inf).
    con.execute(
        f"CREATE TEMP TABLE __c1 AS SELECT e.rid, e.k, e.ts_us, o.ord, {fcols} "
        f"FROM __eo e ASOF LEFT JOIN (SELECT * FROM __f WHERE NOT ({late_cond})) o "
        "ON e.k = o.k AND e.eord >= o.ord"
    )
    late = con.execute("SELECT count(*) FROM __lf").fetchall()[0][0]
    if not late:
        return con.sql(f"SELECT rid, {fcols} FROM __c1").to_arrow_table()
    # Candidate 2: late rows, available from cr; running best by (ev, cr).
    packed = ", ".join(f"f{i} := f{i}" for i in range(n_features))
    con.execute(
        "CREATE TEMP TABLE __l AS SELECT k, cr_us AS avail, "
        f"arg_max(struct_pack(ord := ord, {packed}), ord) "
        "OVER (PARTITION BY k ORDER BY cr_us "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS b "
        "FROM __lf"
    )
    pick2 = "(c2.b IS NOT NULL AND (c1.ord IS NULL OR c2.b.ord > c1.ord))"
    cols = ", ".join(
        f"CASE WHEN {pick2} THEN c2.b.f{i} ELSE c1.f{i} END AS f{i}"
        for i in range(n_features)
    )
    return con.sql(
        f"SELECT c1.rid, {cols} FROM __c1 c1 "
        "ASOF LEFT JOIN __l c2 ON c1.k = c2.k AND c1.ts_us >= c2.avail"
    ).to_arrow_table()
