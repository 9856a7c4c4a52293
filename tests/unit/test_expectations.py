"""The one-pass expectation engine agrees with Great Expectations' own engine.

Each case runs one expectation configuration through GE 1.x (pandas engine,
ephemeral context) and through ``quality.expectations.evaluate`` (DuckDB, one
query) on the same rows, and compares the verdict, the unexpected count and
the observed value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from feature_platform.quality.expectations import (
    EXAMPLES,
    SUPPORTED,
    evaluate,
    expectation,
    to_gx_suite,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6, 7, 8],
            "score": [0.1, 0.5, None, 1.5, 0.9, -0.2, 0.3, None],
            "count": [1, 2, 3, 4, 5, 6, 7, 8],
            "name": ["a", "b", None, "d", "e", "f", "g", "h"],
            "event_ts": [T0 + timedelta(hours=h) for h in range(8)],
            "created_ts": [T0 + timedelta(hours=h) for h in (0, 1, 2, 2, 5, 6, 7, 7)],
        }
    )


CASES: list[tuple[str, dict[str, Any]]] = [
    ("expect_table_row_count_to_be_between", {"min_value": 1}),
    ("expect_table_row_count_to_be_between", {"min_value": 9}),
    ("expect_column_to_exist", {"column": "score"}),
    ("expect_column_to_exist", {"column": "nope"}),
    (
        "expect_column_values_to_be_in_type_list",
        {"column": "count", "type_list": ["int64"]},
    ),
    (
        "expect_column_values_to_be_in_type_list",
        {"column": "score", "type_list": ["int64"]},
    ),
    ("expect_column_values_to_not_be_null", {"column": "id"}),
    ("expect_column_values_to_not_be_null", {"column": "score"}),
    ("expect_column_values_to_not_be_null", {"column": "score", "mostly": 0.7}),
    ("expect_column_values_to_not_be_null", {"column": "score", "mostly": 0.8}),
    ("expect_column_values_to_not_be_null", {"column": "name", "mostly": 0.8}),
    (
        "expect_column_values_to_be_between",
        {"column": "score", "min_value": 0, "max_value": 1},
    ),
    ("expect_column_values_to_be_between", {"column": "score", "min_value": -1}),
    ("expect_column_values_to_be_between", {"column": "count", "max_value": 6}),
    (
        "expect_column_values_to_be_between",
        {"column": "count", "max_value": 6, "strict_max": True},
    ),
    (
        "expect_column_values_to_be_between",
        {"column": "score", "min_value": 0, "max_value": 1, "mostly": 0.6},
    ),
    (
        "expect_column_values_to_be_between",
        {"column": "event_ts", "max_value": T0 + timedelta(hours=5)},
    ),
    (
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "created_ts", "column_B": "event_ts", "or_equal": True},
    ),
    (
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "event_ts", "column_B": "created_ts", "or_equal": True},
    ),
    (
        "expect_column_max_to_be_between",
        {"column": "event_ts", "min_value": T0 + timedelta(hours=6)},
    ),
    (
        "expect_column_max_to_be_between",
        {"column": "event_ts", "min_value": T0 + timedelta(hours=8)},
    ),
    ("expect_column_max_to_be_between", {"column": "count", "max_value": 7}),
]


def _gx_results(frame: pd.DataFrame, suite: list[Any]) -> list[Any]:
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    config = DataContextConfig(
        analytics_enabled=False,  # no phoning home from a test
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("s").add_dataframe_asset("frame")
    batch = asset.add_batch_definition_whole_dataframe("all")
    out = []
    # One suite per case: a GE suite keeps one expectation per type and column.
    for i, exp in enumerate(suite):
        gx_suite = context.suites.add(to_gx_suite(f"case{i}", [exp]))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"v{i}", data=batch, suite=gx_suite)
        )
        [res] = definition.run(batch_parameters={"dataframe": frame}).results
        out.append(res)
    return out


def _ours(frame: pd.DataFrame, suite: list[Any]) -> list[dict[str, Any]]:
    import duckdb

    table = pa.Table.from_pandas(frame, preserve_index=False)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = evaluate(con, table, table.schema, suite, suite_name="cases", keys=["id"])
    return list(result["results"])


def test_every_supported_expectation_has_a_case() -> None:
    assert {c[0] for c in CASES} == SUPPORTED


def test_one_pass_engine_agrees_with_great_expectations() -> None:
    frame = _frame()
    suite = [expectation(kind, **kwargs) for kind, kwargs in CASES]
    theirs = _gx_results(frame, suite)
    ours = _ours(frame, suite)
    seen_failures = 0
    for exp, gx_res, res in zip(suite, theirs, ours, strict=True):
        label = f"{exp['type']} {exp['kwargs']}"
        assert res["success"] == gx_res.success, label
        seen_failures += not res["success"]
        gx_result = gx_res.result or {}
        if "unexpected_count" in gx_result:
            assert res["result"]["unexpected_count"] == gx_result["unexpected_count"]
            assert res["result"]["element_count"] == gx_result["element_count"]
            assert res["result"]["unexpected_percent"] == pytest.approx(
                gx_result["unexpected_percent"]
            ), label
        if exp["type"] in (
            "expect_table_row_count_to_be_between",
            "expect_column_max_to_be_between",
        ):
            observed = gx_result["observed_value"]
            if isinstance(observed, pd.Timestamp):
                observed = observed.isoformat()
            assert res["result"]["observed_value"] == observed, label
    assert 0 < seen_failures < len(suite)  # both verdicts are exercised


def test_examples_carry_values_and_entity_keys() -> None:
    suite = [
        expectation(
            "expect_column_values_to_be_between",
            column="score",
            min_value=0,
            max_value=1,
        ),
        expectation("expect_column_values_to_not_be_null", column="score"),
    ]
    between, nulls = _ours(_frame(), suite)
    assert sorted(between["result"]["partial_unexpected_list"]) == [-0.2, 1.5]
    assert sorted(
        r["id"] for r in between["result"]["partial_unexpected_index_list"]
    ) == [
        4,
        6,
    ]
    assert nulls["result"]["partial_unexpected_list"] == [None, None]
    assert sorted(
        r["id"] for r in nulls["result"]["partial_unexpected_index_list"]
    ) == [
        3,
        8,
    ]


def test_examples_are_capped_and_redacted() -> None:
    import duckdb

    table = pa.table({"id": list(range(100)), "email": ["x@example.com"] * 100})
    suite = [
        expectation(
            "expect_column_values_to_be_in_type_list",
            column="email",
            type_list=["int64"],
        ),
        expectation("expect_column_values_to_be_between", column="id", max_value=-1),
    ]
    con = duckdb.connect()
    result = evaluate(
        con, table, table.schema, suite, suite_name="s", keys=["id"], redact=["id"]
    )
    types, ids = result["results"]
    assert types["result"]["observed_value"] == "string"
    assert "x@example.com" not in repr(result)
    assert ids["result"]["unexpected_count"] == 100
    assert ids["result"]["partial_unexpected_list"] == ["<pii>"] * EXAMPLES


def test_a_one_shot_reader_is_refused() -> None:
    """The examples of a failed expectation are read again: a stream that
    cannot be re-read is refused up front, not silently left without them."""
    import duckdb

    table = pa.Table.from_pandas(_frame(), preserve_index=False)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    suite = [expectation("expect_column_values_to_not_be_null", column="id")]
    with pytest.raises(TypeError, match="re-scannable"):
        evaluate(duckdb.connect(), reader, table.schema, suite, suite_name="s")


def test_a_relation_is_scanned_in_place() -> None:
    """A DuckDB relation (how a parquet window arrives) is queried as it is."""
    import duckdb

    con = duckdb.connect()
    con.register("t", pa.Table.from_pandas(_frame(), preserve_index=False))
    rel = con.sql("SELECT * FROM t WHERE id > 2")
    schema = pa.Table.from_pandas(_frame(), preserve_index=False).schema
    suite = [
        expectation("expect_column_values_to_be_between", column="score", max_value=1),
        expectation("expect_table_row_count_to_be_between", min_value=1),
    ]
    between, count = evaluate(con, rel, schema, suite, suite_name="s", keys=["id"])[
        "results"
    ]
    assert count["result"]["observed_value"] == 6
    assert between["result"]["partial_unexpected_list"] == [1.5]
    assert between["result"]["partial_unexpected_index_list"] == [{"id": 4}]


def test_uncomparable_column_fails_with_a_reason() -> None:
    import duckdb

    table = pa.table({"n": ["1", "2"]})
    suite = [expectation("expect_column_values_to_be_between", column="n", min_value=0)]
    [res] = evaluate(duckdb.connect(), table, table.schema, suite, suite_name="s")[
        "results"
    ]
    assert res["success"] is False
    assert "cannot be compared" in res["exception_info"]["exception_message"]


def test_unsupported_expectation_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        expectation("expect_column_values_to_match_regex", column="x", regex=".")
