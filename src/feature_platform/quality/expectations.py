"""Great Expectations suites evaluated in one streaming SQL pass (DuckDB).

A suite is a list of Great Expectations expectation configurations — GE's own
``{"type": "expect_...", "kwargs": {...}}`` format, the one ``gx.ExpectationSuite``
serializes to (``to_gx_suite`` builds the real GE object from it) — and the
result is GE's ``ExpectationSuiteValidationResult`` in its JSON shape: per
expectation ``success``, ``result`` (``element_count``, ``unexpected_count``,
``unexpected_percent``, ``partial_unexpected_list``, ``observed_value``...) and
``exception_info``, plus ``statistics``. What differs is the engine:

* every row-level metric of every expectation is one aggregate of ONE query
  over the window, so the rows stream through DuckDB once and are never held
  (a 10M-row window: well under a second and under 200 MB here). GE's pandas
  engine loaded the window into a DataFrame: 6.3 GB RSS at 10M rows; importing
  GE alone takes 2-4 s on this 2-core machine, more than the whole gate at 1M
  rows, which is why the materialization path does not import it;
* only a failed expectation costs a second, filtered query: its examples
  (``partial_unexpected_list``, and the entity keys of those rows in
  ``partial_unexpected_index_list``), at most ``EXAMPLES`` rows;
* column existence and types are checked on the window's Arrow schema (the
  contract every source shares), not per value.

The input is anything DuckDB scans as a table, more than once: a
``DuckDBPyRelation`` (a parquet window with its filter pushed into the scan;
a warehouse's window, e.g. BigQuery through a relation over its table, stays
a query), a ``pyarrow.Table`` (what an offline store's ``to_arrow`` returns)
or a pandas frame.

``tests/unit/test_expectations.py`` runs each supported expectation through
GE's own engine on the same data and checks both agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "EXAMPLES",
    "SUPPORTED",
    "Expectation",
    "ExpectationResult",
    "SuiteResult",
    "evaluate",
    "expectation",
    "to_gx_suite",
]

# GE's partial_unexpected_list holds up to 20 values (result_format SUMMARY).
EXAMPLES = 20
SUPPORTED = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_column_to_exist",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_max_to_be_between",
    }
)


class Expectation(TypedDict):
    """One expectation configuration, as Great Expectations serializes it."""

    type: str
    kwargs: dict[str, Any]


class ExceptionInfo(TypedDict):
    raised_exception: bool
    exception_traceback: str | None
    exception_message: str | None


class ExpectationConfig(TypedDict):
    type: str
    kwargs: dict[str, Any]  # the expectation's own arguments (JSON-able)
    meta: dict[str, Any]


class ExpectationResult(TypedDict):
    """One expectation's result, as GE serializes it."""

    success: bool
    expectation_config: ExpectationConfig
    # GE's per-expectation result: its keys depend on the expectation type
    # (observed_value, element_count, unexpected_count, ...): free-form
    result: dict[str, Any]
    meta: dict[str, Any]
    exception_info: ExceptionInfo


class SuiteStatistics(TypedDict):
    evaluated_expectations: int
    successful_expectations: int
    unsuccessful_expectations: int
    success_percent: float | None


class SuiteResult(TypedDict):
    """A suite's validation result, as GE serializes it."""

    success: bool
    results: list[ExpectationResult]
    suite_name: str
    suite_parameters: dict[str, Any]
    statistics: SuiteStatistics
    meta: dict[str, str]


def expectation(type_: str, **kwargs: Any) -> Expectation:
    """``{"type": type_, "kwargs": kwargs}`` (None-valued kwargs dropped)."""
    if type_ not in SUPPORTED:
        raise ValueError(
            f"expectation {type_!r} is not supported by the one-pass engine; "
            f"supported: {sorted(SUPPORTED)}"
        )
    return {"type": type_, "kwargs": {k: v for k, v in kwargs.items() if v is not None}}


def to_gx_suite(name: str, suite: Iterable[Expectation]) -> Any:
    """The same suite as a Great Expectations ``ExpectationSuite`` (imports GE);
    each expectation's ``meta["position"]`` is its index in ``suite``."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    gx_suite = gx.ExpectationSuite(name=name)
    for position, exp in enumerate(suite):
        config = ExpectationConfiguration(
            type=exp["type"], kwargs=dict(exp["kwargs"]), meta={"position": position}
        )
        gx_suite.add_expectation_configuration(config)
    return gx_suite


# ------------------------------------------------------------------- SQL text


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"bound {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"bound {value!r} is a naive datetime; give it in UTC")
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise ValueError(f"bound {value!r} of type {type(value).__name__} not supported")


def _comparable(field: pa.Field | None, bound: Any) -> bool:
    """Whether the column's Arrow type can be compared with ``bound`` in SQL."""
    import pyarrow as pa

    if field is None or bound is None:
        return True
    t = field.type
    if isinstance(bound, datetime | date):
        return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))
    return bool(
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    )


def _uncomparable(field: pa.Field, kwargs: Mapping[str, Any]) -> str | None:
    """Why the column cannot be compared with the expectation's bounds, if so."""
    for bound in (kwargs.get("min_value"), kwargs.get("max_value")):
        if not _comparable(field, bound):
            return (
                f"column {field.name!r} of type {field.type} cannot be compared "
                f"with {bound!r}"
            )
    return None


def _between_sql(column: str, kwargs: Mapping[str, Any]) -> str:
    """The SQL condition of an unexpected value of ``expect_..._to_be_between``."""
    col = _q(column)
    out = []
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None:
        out.append(f"{col} {'<=' if kwargs.get('strict_min') else '<'} {_literal(lo)}")
    if hi is not None:
        out.append(f"{col} {'>=' if kwargs.get('strict_max') else '>'} {_literal(hi)}")
    return " OR ".join(out) if out else "FALSE"


def _in_range(value: Any, kwargs: Mapping[str, Any]) -> bool:
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if value is None:
        return False
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a naive column compares as UTC
    if lo is not None and (value <= lo if kwargs.get("strict_min") else value < lo):
        return False
    return not (
        hi is not None and (value >= hi if kwargs.get("strict_max") else value > hi)
    )


# ------------------------------------------------------------------ evaluate


@dataclass
class _Step:
    """One expectation's share of the query: its aggregates' positions, and
    the condition and value of an unexpected row (for the examples query)."""

    exp: Expectation
    aggregates: tuple[int, ...] = ()
    unexpected: str | None = None  # SQL condition of an unexpected row
    value: str | None = None  # SQL of the example value (None: nulls)
    problem: str | None = None  # why it could not be evaluated


class _Plan:
    """The aggregates of the one query, named a0, a1, ... in order."""

    def __init__(self) -> None:
        self.select: list[str] = []

    def add(self, sql: str) -> int:
        self.select.append(f"{sql} AS a{len(self.select)}")
        return len(self.select) - 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _exception(message: str | None) -> ExceptionInfo:
    return {
        "raised_exception": message is not None,
        "exception_traceback": None,
        "exception_message": message,
    }


def _mostly_ok(unexpected: int, considered: int, mostly: float | None) -> bool:
    if considered == 0 or unexpected == 0:
        return True
    return (considered - unexpected) / considered >= (1.0 if mostly is None else mostly)


def _plan(
    suite: Sequence[Expectation], fields: Mapping[str, pa.Field]
) -> tuple[_Plan, list[_Step]]:
    # count_if / count(col) rather than count(*) FILTER (WHERE ...): measured on
    # a 10M-row window, 10 count_if 0.01 s, 4 FILTERed counts 0.6 s.
    plan = _Plan()
    steps: list[_Step] = []
    for exp in suite:
        kind, kw = exp["type"], exp["kwargs"]
        if kind not in SUPPORTED:
            raise ValueError(f"expectation {kind!r} is not supported")
        step = _Step(exp)
        steps.append(step)
        columns = [kw[c] for c in ("column", "column_A", "column_B") if c in kw]
        missing = [c for c in columns if c not in fields]
        if missing and kind != "expect_column_to_exist":
            step.problem = f"column(s) {missing} not found in the source"
        elif kind == "expect_column_values_to_not_be_null":
            col = _q(kw["column"])
            step.aggregates = (plan.add(f"count({col})"),)
            step.unexpected = f"{col} IS NULL"
        elif kind == "expect_column_values_to_be_between":
            step.problem = _uncomparable(fields[kw["column"]], kw)
            if step.problem is None:
                col = _q(kw["column"])
                step.unexpected = _between_sql(kw["column"], kw)
                step.value = col
                step.aggregates = (
                    plan.add(f"count({col})"),
                    plan.add(f"count_if({step.unexpected})"),
                )
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = _q(kw["column_A"]), _q(kw["column_B"])
            op = ">=" if kw.get("or_equal") else ">"
            step.unexpected = f"NOT ({a} {op} {b})"
            step.value = f"[CAST({a} AS VARCHAR), CAST({b} AS VARCHAR)]"
            step.aggregates = (
                plan.add(f"count_if({a} IS NOT NULL OR {b} IS NOT NULL)"),
                plan.add(f"count_if({step.unexpected})"),
            )
        elif kind == "expect_column_max_to_be_between":
            step.problem = _uncomparable(fields[kw["column"]], kw)
            if step.problem is None:
                step.aggregates = (plan.add(f"max({_q(kw['column'])})"),)
        # row count, existence, types: from count(*) and the schema
    return plan, steps


def _scan(con: duckdb.DuckDBPyConnection, data: Any, sql: str) -> list[Any]:
    """Rows of ``sql`` (which reads the table ``__gate_window``) over ``data``."""
    import duckdb

    if isinstance(data, duckdb.DuckDBPyRelation):
        result = data.query("__gate_window", sql)
        assert result is not None  # a SELECT always has a result
        return result.fetchall()
    con.register("__gate_window", data)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.unregister("__gate_window")


def evaluate(
    con: duckdb.DuckDBPyConnection,
    data: Any,
    schema: pa.Schema,
    suite: Sequence[Expectation],
    *,
    suite_name: str,
    keys: Sequence[str] = (),
    redact: Iterable[str] = (),
) -> SuiteResult:
    """Run ``suite`` over ``data`` in one pass; GE's validation result (JSON-able).

    ``data``: a DuckDB relation, an Arrow table or a pandas frame, whose
    columns ``schema`` describes. Every metric is an aggregate of one query;
    only when an expectation fails does a second, filtered query read up to
    ``EXAMPLES`` of its unexpected rows (so ``data`` must be re-scannable: a
    one-shot ``RecordBatchReader`` is refused). ``keys`` are the entity columns
    that identify those rows; example values of the ``redact`` columns are
    replaced by ``"<pii>"`` (the error and the log carry no personal data).
    """
    import pyarrow as pa

    if isinstance(data, pa.RecordBatchReader):
        raise TypeError(
            "the gate needs a re-scannable source (a DuckDB relation, an Arrow "
            "table or a frame): a failed expectation's examples are read again"
        )
    fields = {f.name: f for f in schema}
    keys = [k for k in keys if k in fields]
    plan, steps = _plan(suite, fields)
    count = plan.add("count(*)")
    [row] = _scan(con, data, f"SELECT {', '.join(plan.select)} FROM __gate_window")
    n = int(row[count])
    results = [_result(step, row, n, fields) for step in steps]
    redacted = set(redact)
    for step, res in zip(steps, results, strict=True):
        if (
            not res["success"]
            and step.unexpected
            and "unexpected_count" in res["result"]
        ):
            _add_examples(con, data, step, res["result"], keys, redacted)
    passed = sum(1 for r in results if r["success"])
    return {
        "success": passed == len(results),
        "results": results,
        "suite_name": suite_name,
        "suite_parameters": {},
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": 100.0 * passed / len(results) if results else None,
        },
        "meta": {"engine": "feature_platform.quality.expectations (DuckDB, one pass)"},
    }


def _add_examples(
    con: duckdb.DuckDBPyConnection,
    data: Any,
    step: _Step,
    res: dict[str, Any],
    keys: Sequence[str],
    redacted: set[str],
) -> None:
    """GE's ``partial_unexpected_list`` (values) and ``..._index_list`` (the
    rows' entity keys) of a failed expectation, read by a filtered query."""
    value = step.value or "NULL"
    picked = ", ".join([f"{value} AS __value", *(_q(k) for k in keys)])
    sql = f"SELECT {picked} FROM __gate_window WHERE {step.unexpected} LIMIT {EXAMPLES}"
    rows = _scan(con, data, sql)
    redact = step.exp["kwargs"].get("column") in redacted
    res["partial_unexpected_list"] = [
        "<pii>" if redact and r[0] is not None else _jsonable(r[0]) for r in rows
    ]
    res["partial_unexpected_index_list"] = [
        {k: _jsonable(v) for k, v in zip(keys, r[1:], strict=True)} for r in rows
    ]


def _result(
    step: _Step, row: Sequence[Any], n: int, fields: Mapping[str, pa.Field]
) -> ExpectationResult:
    kind, kw = step.exp["type"], step.exp["kwargs"]
    out: ExpectationResult = {
        "success": False,
        "expectation_config": {"type": kind, "kwargs": _jsonable(kw), "meta": {}},
        "result": {},
        "meta": {},
        "exception_info": _exception(step.problem),
    }
    if step.problem is not None:  # could not be evaluated: fails, says why
        return out
    res: dict[str, Any] = out["result"]
    column = str(kw.get("column", ""))
    agg = [row[i] for i in step.aggregates]
    if kind == "expect_table_row_count_to_be_between":
        res["observed_value"] = n
        out["success"] = _in_range(n, kw)
    elif kind == "expect_column_to_exist":
        out["success"] = column in fields
    elif kind == "expect_column_values_to_be_in_type_list":
        observed = str(fields[column].type)
        res["observed_value"] = observed
        out["success"] = kw.get("type_list") is None or observed in kw["type_list"]
    elif kind == "expect_column_values_to_not_be_null":
        unexpected = n - int(agg[0] or 0)
        res.update(
            element_count=n,
            unexpected_count=unexpected,
            unexpected_percent=100.0 * unexpected / n if n else None,
            partial_unexpected_list=[],
        )
        out["success"] = _mostly_ok(unexpected, n, kw.get("mostly"))
    elif kind in (
        "expect_column_values_to_be_between",
        "expect_column_pair_values_a_to_be_greater_than_b",
    ):
        considered, unexpected = int(agg[0] or 0), int(agg[1] or 0)  # NULL: no rows
        res.update(
            element_count=n,
            unexpected_count=unexpected,
            unexpected_percent=100.0 * unexpected / considered if considered else None,
            partial_unexpected_list=[],
            missing_count=n - considered,
        )
        out["success"] = _mostly_ok(unexpected, considered, kw.get("mostly"))
    elif kind == "expect_column_max_to_be_between":
        res["observed_value"] = _jsonable(agg[0])
        out["success"] = _in_range(agg[0], kw)
    return out
