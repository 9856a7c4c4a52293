"""``offline``: the one latest-rows read of a local parquet window is the
offline store's ``pull_latest_from_table_or_query``."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from feature_platform.offline import (
    latest_parquet_batches,
    latest_rows_sql,
    pull_latest,
)
from tests.conftest import TEST_END

EDGES = 10**9  # entity ids of the edge rows (not in the sample)


def _edge_source(sample: Path, out: Path, start, end) -> None:
    """The sample source plus entities whose rows decide the rule: the same
    event time with a later created time (the tie-break), events exactly at
    a bound and a microsecond outside, a newer event with an older created
    time; ``total_orders`` says which row it was."""
    df = pd.read_parquet(sample)
    us = timedelta(microseconds=1)
    edges = [  # (entity, event, created, total_orders)
        (1, end - timedelta(hours=1), end - timedelta(minutes=30), 10_000),
        (1, end - timedelta(hours=1), end - timedelta(minutes=10), 10_001),  # wins
        (2, start, start, 10_002),  # at the lower bound: in
        (3, start - us, start, 10_003),  # before it: out
        (4, end - timedelta(hours=1), end, 10_006),
        (4, end, end - timedelta(days=1), 10_004),  # newer event wins
        (5, end + us, end + us, 10_005),  # after the upper bound: out
    ]
    rows = pd.concat([df.iloc[:1]] * len(edges), ignore_index=True)
    rows["customer_id"] = [EDGES + e for e, *_ in edges]
    rows["event_timestamp"] = pd.to_datetime([ev for _, ev, _, _ in edges], utc=True)
    rows["created_timestamp"] = pd.to_datetime([cr for *_, cr, _ in edges], utc=True)
    rows["total_orders"] = [t for *_, t in edges]
    rows = rows.astype(df.dtypes.to_dict())
    pd.concat([df, rows], ignore_index=True).to_parquet(out, index=False)


@pytest.mark.parametrize("view_name", ["customer_stats", "driver_stats"])
def test_latest_parquet_batches_equal_pull_latest(
    applied_local_store, sample_repo: Path, tmp_path: Path, view_name: str
) -> None:
    from feast import FileSource

    store = applied_local_store
    view = copy.copy(store.get_feature_view(view_name))
    start, end = TEST_END - timedelta(days=3), TEST_END
    source = view.batch_source
    if view_name == "customer_stats":
        path = tmp_path / "edges.parquet"
        _edge_source(sample_repo / "data" / "customer_stats.parquet", path, start, end)
        view.batch_source = FileSource(
            name="edges",
            path=str(path),
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column,
        )
    key = view.entity_columns[0].name
    features = [f.name for f in view.features]

    expected = (
        pull_latest(store, view, start, end)
        .to_df()
        .rename(columns={key: "k", source.timestamp_field: "__ts"})[
            ["k", *features, "__ts"]
        ]
        .sort_values("k", ignore_index=True)
    )
    batches = list(latest_parquet_batches(view, start, end, batch_rows=7))
    assert batches and all(b.num_rows <= 7 for b in batches)
    got = pa.Table.from_batches(batches).to_pandas().sort_values("k", ignore_index=True)
    assert len(got) == len(expected) > 10
    expected["__ts"] = pd.to_datetime(expected["__ts"], utc=True)
    got["__ts"] = pd.to_datetime(got["__ts"], utc=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    if view_name == "customer_stats":
        won = dict(zip(got["k"] - EDGES, got["total_orders"], strict=True))
        assert {e: won.get(e) for e in range(1, 6)} == {
            1: 10_001,
            2: 10_002,
            3: None,
            4: 10_004,
            5: None,
        }


def test_latest_rows_sql_applies_transforms_after_the_aggregation() -> None:
    sql = latest_rows_sql(
        "id", ["a", 'q"x'], "ts", None, transforms={"a": lambda c: f"upper({c})"}
    )
    assert 'upper(r."a") AS "a"' in sql
    assert 'r."q""x" AS "q""x"' in sql
    assert (
        'arg_max(struct_pack("a" := "a", "q""x" := "q""x", __ts := "ts"), "ts")' in sql
    )


def test_growing_batches_regroup_without_losing_a_row() -> None:
    from feature_platform.offline import growing_batches

    sizes = [3, 1, 0, 7, 2, 9, 9, 9, 1]
    start = 0
    batches = []
    for n in sizes:
        batches.append(
            pa.record_batch({"v": pa.array(range(start, start + n), pa.int64())})
        )
        start += n
    out = list(growing_batches(batches, 2, 10))
    assert [b.num_rows for b in out] == [2, 4, 8, 10, 10, 7]
    assert pa.Table.from_batches(out).column("v").to_pylist() == list(range(start))


def test_latest_parquet_batches_start_small(applied_local_store) -> None:
    view = applied_local_store.get_feature_view("customer_stats")
    start, end = TEST_END - timedelta(days=3), TEST_END
    whole = pa.Table.from_batches(list(latest_parquet_batches(view, start, end)))
    grown = list(
        latest_parquet_batches(view, start, end, batch_rows=20, first_batch_rows=3)
    )
    sizes = [b.num_rows for b in grown]
    assert sizes[:4] == [3, 6, 12, 20] and max(sizes) == 20
    assert pa.Table.from_batches(grown).sort_by("k").equals(whole.sort_by("k"))
