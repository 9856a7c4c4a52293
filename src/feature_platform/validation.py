"""Source data validation: Great Expectations 1.x suites, written as code.

One suite per online feature view's batch source, built from the real Feast
definitions (columns and dtypes come from the view's schema and entities) plus
the rules below (value ranges, null-rate ceilings, freshness). A run validates
the slice of each source that it is about to materialize, ``[start, end]``,
extended back to the view's freshness horizon, plus any row stamped in the
future; the materialization only starts when every suite passes.

Checks per source:

* schema: every key, timestamp and feature column exists with an expected dtype;
* keys are never null; the window holds at least one row;
* value ranges (``acceptance_rate`` and ``churn_risk_score`` in [0, 1],
  ``avg_rating`` in [1, 5], counts and amounts non-negative);
* null-rate ceilings per feature (``mostly=1 - ceiling``);
* timestamps are timezone-aware UTC (checked by the platform: GE 1.x has no
  expectation for a column's timezone), none lies in the future, and
  ``created_timestamp >= event_timestamp``;
* freshness: the newest event in the slice is no older than ``end - max_staleness``.

The suites are Great Expectations expectation configurations, evaluated by
``feature_platform.quality.expectations`` in ONE streaming DuckDB query over the
window (a parquet window is never loaded into Python; another source arrives
as an Arrow table or stream), and the result has GE's validation-result shape:
expectation names, unexpected counts, example values and the entity keys of
the rows that broke them. GE's pandas engine needed the window in a DataFrame
(6.3 GB RSS at 10M rows) and GE's import alone costs 2-4 s per run on this
machine; ``quality.expectations.to_gx_suite`` gives the same suite as a GE
object, and a test runs it through GE's own engine and compares the verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from feature_platform.errors import ValidationFailed
from feature_platform.offline import batch_source
from feature_platform.utc import CLOCK_SKEW, ensure_utc, utc_now

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa
    from feast import FeatureStore, FeatureView

    from feature_platform.quality.expectations import Expectation, SuiteResult

__all__ = [
    "ExpectationFailure",
    "ValidationReport",
    "ValidationSummary",
    "batch_source",
    "summarize",
    "SourceRules",
    "rules_for",
    "build_suite",
    "format_failures",
    "validate_data",
    "validate_frame",
    "validate_sources",
    "validate_view_window",
    "window_data",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_NULL_RATE = 0.05
TIMESTAMP_FIELDS = ("event_timestamp", "created_timestamp")
# DuckDB's memory ceiling for the gate's query (aggregates only: it needs little).
GATE_MEMORY_LIMIT = "384MB"


@dataclass(frozen=True)
class SourceRules:
    """Data rules for one feature view's source, beyond its schema."""

    ranges: Mapping[str, tuple[float | None, float | None]] = field(
        default_factory=dict
    )
    max_null_rate: Mapping[str, float] = field(default_factory=dict)
    max_staleness: timedelta = timedelta(days=1)


class ExpectationFailure(TypedDict):
    """One broken expectation (a row of ``format_failures``' table)."""

    source: NotRequired[str]  # the view whose source broke it (in summaries)
    expectation: str
    column: str
    observed: str


class ValidationReport(TypedDict):
    """One source's validation (``validate_data``; ``validate_view_window``
    adds where it read)."""

    suite: str
    rows_checked: int
    evaluated: int
    success: bool
    failures: list[ExpectationFailure]
    validation_result: SuiteResult
    source: NotRequired[str]  # the batch source's name
    checked_from: NotRequired[str]  # ISO-8601 UTC start of the rows read


class ValidationSummary(TypedDict):
    """The validation of several sources: what ``validate`` prints, the DAG's
    validate task returns and ``ValidationFailed.summary`` holds."""

    window: NotRequired[dict[str, str]]  # start, end (ISO-8601 UTC)
    now: NotRequired[str]
    sources: dict[str, ValidationReport]
    failures: list[ExpectationFailure]
    success: bool


def summarize(reports: dict[str, ValidationReport]) -> ValidationSummary:
    """The reports of several views' sources, their failures gathered (each
    naming its source); raises nothing."""
    failures: list[ExpectationFailure] = [
        {"source": name, **f}
        for name, report in reports.items()
        for f in report["failures"]
    ]
    return {"sources": reports, "failures": failures, "success": not failures}


def _rules() -> dict[str, SourceRules]:
    """Each view's rules, from ``feature_repo/operations.py`` (``VALIDATION``)."""
    from feature_platform.profiles import repo_module

    return {
        view: SourceRules(**rules)
        for view, rules in repo_module("operations").VALIDATION.items()
    }


def rules_for(view: str) -> SourceRules:
    """The rules of one view (defaults for a view the metadata does not name)."""
    return _rules().get(view, SourceRules())


# Feast value type -> column types accepted in the source: Arrow's names (what
# the gate checks) and pandas' (what GE's pandas engine reports), so the same
# suite gives the same verdict on both engines.
_DTYPES: dict[str, list[str]] = {
    "INT64": ["int64", "Int64"],
    "INT32": ["int32", "Int32", "int64", "Int64"],
    "DOUBLE": ["double", "float64", "Float64"],
    "FLOAT": ["float", "float32", "Float32", "double", "float64", "Float64"],
    "STRING": ["string", "large_string", "str", "object"],
    "BOOL": ["bool", "boolean"],
}


# --------------------------------------------------------------- the suites


def _expected_columns(view: FeatureView) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {}
    for col in [*view.entity_columns, *view.features]:
        kind = col.dtype.to_value_type().name
        columns[col.name] = _DTYPES.get(kind, [])
    return columns


def build_suite(
    view: FeatureView, *, end: datetime, now: datetime, rules: SourceRules
) -> list[Expectation]:
    """``view``'s suite for a window ending at ``end``, checked at ``now``:
    Great Expectations expectation configurations (``quality.expectations``)."""
    from feature_platform.quality.expectations import expectation as exp

    source = batch_source(view)
    ts = source.timestamp_field
    created = source.created_timestamp_column or None
    keys = [c.name for c in view.entity_columns]
    features = {f.name for f in view.features}
    latest_ok = now + CLOCK_SKEW
    out = [exp("expect_table_row_count_to_be_between", min_value=1)]
    for name, dtypes in _expected_columns(view).items():
        out.append(exp("expect_column_to_exist", column=name))
        if dtypes:
            out.append(
                exp(
                    "expect_column_values_to_be_in_type_list",
                    column=name,
                    type_list=dtypes,
                )
            )
    for key in keys:
        out.append(exp("expect_column_values_to_not_be_null", column=key))
    for stamp in [ts, *([created] if created else [])]:
        out.append(exp("expect_column_to_exist", column=stamp))
        out.append(exp("expect_column_values_to_not_be_null", column=stamp))
        out.append(
            exp("expect_column_values_to_be_between", column=stamp, max_value=latest_ok)
        )
    if created:
        out.append(
            exp(
                "expect_column_pair_values_a_to_be_greater_than_b",
                column_A=created,
                column_B=ts,
                or_equal=True,
            )
        )
    out.append(
        exp(
            "expect_column_max_to_be_between",
            column=ts,
            min_value=end - rules.max_staleness,
            max_value=latest_ok,
        )
    )
    for name in sorted(features):
        ceiling = rules.max_null_rate.get(name, DEFAULT_MAX_NULL_RATE)
        out.append(
            exp(
                "expect_column_values_to_not_be_null",
                column=name,
                mostly=None if ceiling <= 0 else 1 - ceiling,
            )
        )
        lo, hi = rules.ranges.get(name, (None, None))
        if lo is not None or hi is not None:
            out.append(
                exp(
                    "expect_column_values_to_be_between",
                    column=name,
                    min_value=lo,
                    max_value=hi,
                )
            )
    return out


def _timezone_failures(
    schema: pa.Schema, columns: Iterable[str]
) -> list[ExpectationFailure]:
    """Timestamp columns that are naive or not UTC (GE 1.x cannot check a tz),
    read from the window's Arrow schema."""
    import pyarrow as pa

    failures: list[ExpectationFailure] = []
    for col in columns:
        if col not in schema.names:
            continue
        dtype = schema.field(col).type
        if pa.types.is_timestamp(dtype) and dtype.tz in ("UTC", "+00:00", "Etc/UTC"):
            continue
        if pa.types.is_timestamp(dtype) and dtype.tz is None:
            observed = (
                f"naive timestamps (type {dtype}); localize column {col!r} to UTC"
            )
        else:
            observed = f"type {dtype}; expected timezone-aware UTC timestamps"
        failures.append(
            {
                "expectation": "expect_column_timestamps_to_be_utc",
                "column": col,
                "observed": observed,
            }
        )
    return failures


def _examples(res: Mapping[str, Any]) -> list[str]:
    values = res.get("partial_unexpected_list") or []
    index = res.get("partial_unexpected_index_list") or []
    out = []
    for i in range(min(3, max(len(values), len(index)))):
        value = values[i] if i < len(values) else None
        keys = index[i] if i < len(index) else {}
        where = ", ".join(f"{k}={v}" for k, v in keys.items())
        if value is None and where:
            out.append(f"null at {where}")
        elif where:
            out.append(f"{value} at {where}")
        else:
            out.append(str(value))
    return out


def _observed(result: Mapping[str, Any]) -> str:
    """A short, readable description of what the expectation saw."""
    info = result.get("exception_info") or {}
    if info.get("raised_exception"):
        return f"error: {info.get('exception_message')}"
    res = result.get("result") or {}
    if "unexpected_count" in res:
        count = res.get("unexpected_count") or 0
        total = res.get("element_count")
        pct = res.get("unexpected_percent")
        text = f"{count} unexpected"
        if total is not None:
            text += f" of {total} rows"
        if pct is not None:
            text += f" ({pct:.2f}%)"
        sample = _examples(res)
        if sample:
            text += f", e.g. {'; '.join(sample)}"
        return text
    if "observed_value" in res:
        return f"observed {res['observed_value']}"
    return "failed"


def _gate_connection(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # a naive column compares as UTC
    con.execute(f"SET memory_limit = '{memory_limit or GATE_MEMORY_LIMIT}'")
    return con


def validate_data(
    con: duckdb.DuckDBPyConnection,
    data: Any,
    schema: pa.Schema,
    view: FeatureView,
    *,
    end: datetime,
    now: datetime,
    rules: SourceRules | None = None,
) -> ValidationReport:
    """Run ``view``'s suite over ``data`` in one streaming pass; a JSON-able
    report with the failures and GE's validation result.

    ``data`` is anything DuckDB scans as a table, described by ``schema`` (its
    Arrow schema, where column types and timezones are checked): a DuckDB
    relation (a parquet window, ``validate_view_window``), a ``pyarrow``
    ``RecordBatchReader`` or ``Table`` — what another warehouse's window
    arrives as, e.g. BigQuery's Storage Read API stream, consumed batch by
    batch — or a pandas frame. The rows are never collected in Python.
    """
    from feature_platform.pii import pii_fields
    from feature_platform.quality.expectations import evaluate

    end = ensure_utc(end, "end")
    now = ensure_utc(now, "now")
    rules = rules or rules_for(view.name)
    source = batch_source(view)
    stamps = [source.timestamp_field]
    if source.created_timestamp_column:
        stamps.append(source.created_timestamp_column)
    failures = _timezone_failures(schema, stamps)
    result = evaluate(
        con,
        data,
        schema,
        build_suite(view, end=end, now=now, rules=rules),
        suite_name=f"{view.name}_suite",
        keys=[c.name for c in view.entity_columns],
        redact=pii_fields(view),
    )
    for res in result["results"]:
        if res["success"]:
            continue
        kwargs = res["expectation_config"]["kwargs"]
        column = kwargs.get("column") or ",".join(
            str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs
        )
        failures.append(
            {
                "expectation": res["expectation_config"]["type"],
                "column": column or "(table)",
                "observed": _observed(res),
            }
        )
    rows = next(
        r["result"]["observed_value"]
        for r in result["results"]
        if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"
    )
    return {
        "suite": f"{view.name}_suite",
        "rows_checked": rows,
        "evaluated": len(result["results"]) + len(stamps),
        "success": not failures,
        "failures": failures,
        "validation_result": result,
    }


def validate_frame(
    frame: pd.DataFrame | pa.Table,
    view: FeatureView,
    *,
    end: datetime,
    now: datetime,
    rules: SourceRules | None = None,
) -> ValidationReport:
    """``validate_data`` over an in-memory pandas frame or Arrow table."""
    import pyarrow as pa

    table = (
        frame
        if isinstance(frame, pa.Table)
        else pa.Table.from_pandas(frame, preserve_index=False)
    )
    con = _gate_connection()
    try:
        return validate_data(
            con, table, table.schema, view, end=end, now=now, rules=rules
        )
    finally:
        con.close()


def format_failures(failures: Sequence[Mapping[str, Any]]) -> str:
    """Failed expectations as a table: source, expectation, column, observed."""
    headers = ("source", "expectation", "column", "observed")
    rows = [tuple(str(f.get(h, "")) for h in headers) for f in failures]
    if not rows:
        return "(no failed expectations)"
    widths = [
        min(max(len(h), *(len(r[i]) for r in rows)), 60 if i < 3 else 200)
        for i, h in enumerate(headers)
    ]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers), line.format(*("-" * w for w in widths))]
    out += [
        line.format(
            *(
                c[:w] if i < 3 else c
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in out)


def _as_store(store_or_repo: FeatureStore | str | Path) -> FeatureStore:
    if isinstance(store_or_repo, str | Path):
        from feature_platform.profiles import get_store

        return get_store(repo=store_or_repo)
    return store_or_repo


def validate_sources(
    store_or_repo: FeatureStore | str | Path,
    *,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    views: Iterable[str] | None = None,
    raise_on_failure: bool = True,
) -> ValidationSummary:
    """Validate the slice ``[start, end]`` of each online view's source.

    Returns a JSON-able summary; raises :class:`ValidationFailed` (whose message
    is a table of the failed expectations) when any suite fails, unless
    ``raise_on_failure`` is false.
    """
    from feature_platform.offline import online_views
    from feature_platform.profiles import require_applied

    store = _as_store(store_or_repo)
    require_applied(store)  # a never-applied repo: "run apply first"
    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    now = ensure_utc(now, "now") if now is not None else utc_now()
    if start >= end:
        raise ValueError(
            f"empty window: start {start.isoformat()} >= end {end.isoformat()}"
        )
    from feature_platform.feast_compat import provider

    offline_store = provider(store).offline_store
    reports: dict[str, ValidationReport] = {}
    for view in online_views(store, views):
        report = reports[view.name] = validate_view_window(
            store.config, offline_store, view, start=start, end=end, now=now
        )
        log.info(
            "validated %s: %s rows, %s failed expectation(s)",
            view.name,
            report["rows_checked"],
            len(report["failures"]),
        )
    summary: ValidationSummary = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "now": now.isoformat(),
        **summarize(reports),
    }
    if raise_on_failure and not summary["success"]:
        raise ValidationFailed(summary, format_failures(summary["failures"]))
    return summary


def _local_parquet(view: FeatureView) -> str | None:
    """The local parquet file or directory of a file source (Feast's
    ``FileSource``, or a ``SparkSource`` over parquet: the scale profile's
    sources are the same files), else None."""
    from feast import FileSource
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource,
    )

    source = batch_source(view)
    if isinstance(source, FileSource):
        fmt = source.file_format
        if fmt is not None and type(fmt).__name__ != "ParquetFormat":
            return None
    elif not (isinstance(source, SparkSource) and source.file_format == "parquet"):
        return None
    path = source.path or ""
    if not path or ("://" in path and not path.startswith("file://")):
        return None
    path = path.removeprefix("file://")
    if Path(path).is_dir():
        return str(Path(path) / "**" / "*.parquet")
    return path if Path(path).exists() else None


def window_data(
    con: duckdb.DuckDBPyConnection,
    config: Any,
    offline_store: Any,
    view: FeatureView,
    *,
    start: datetime,
    end: datetime,
    include_after: datetime,
) -> tuple[Any, pa.Schema]:
    """The rows of ``view``'s source with event time in ``[start, end]`` or
    after ``include_after`` (to catch future timestamps), as something DuckDB
    scans, and their Arrow schema.

    A local parquet source is a DuckDB relation over the file with the window
    pushed into the scan: nothing is read until the suite's one query runs,
    and it reads the rows as stored (naive timestamps stay naive, so they are
    reported, and compare as UTC). Other sources (BigQuery, Spark, ...) come
    from the offline store's ``pull_all_from_table_or_query`` as Arrow, their
    timestamps UTC (an offline store's naive values are UTC, config.stored_utc);
    a store that can hand over a ``RecordBatchReader`` streams the same way.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    from feature_platform.offline import window_rows_job

    ts = batch_source(view).timestamp_field
    path = _local_parquet(view)
    if path is not None:
        schema = ds.dataset(path.replace("/**/*.parquet", ""), format="parquet").schema
        rel = con.read_parquet(path)
        if ts in schema.names and pa.types.is_timestamp(schema.field(ts).type):
            col = '"' + ts.replace('"', '""') + '"'
            rel = rel.filter(
                f"{col} >= $lo AND ({col} <= $hi OR {col} > $after)".replace(
                    "$lo", _ts_literal(start)
                )
                .replace("$hi", _ts_literal(end))
                .replace("$after", _ts_literal(include_after))
            )
        return rel, schema
    job = window_rows_job(config, offline_store, view, start, include_after)
    table = job.to_arrow()
    fields = [
        f.with_type(pa.timestamp(f.type.unit, tz="UTC"))
        if pa.types.is_timestamp(f.type) and f.type.tz is None
        else f
        for f in table.schema
    ]
    table = table.cast(pa.schema(fields))
    if ts in table.column_names:
        stamps = table.column(ts)
        import pyarrow.compute as pc

        keep = pc.and_(
            pc.greater_equal(stamps, pa.scalar(start, stamps.type)),
            pc.or_(
                pc.less_equal(stamps, pa.scalar(end, stamps.type)),
                pc.greater(stamps, pa.scalar(include_after, stamps.type)),
            ),
        )
        table = table.filter(keep)
    return table, table.schema


def _ts_literal(value: datetime) -> str:
    return f"TIMESTAMPTZ '{ensure_utc(value, 'bound').isoformat()}'"


def validate_view_window(
    config: Any,
    offline_store: Any,
    view: FeatureView,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    memory_limit: str | None = None,
) -> ValidationReport:
    """Validate the rows of ``view``'s source that materializing ``[start, end]``
    reads (extended back to the view's freshness horizon, plus any row stamped
    after ``now``): the gate every materialization path passes through
    (``feature_platform.engine``). A JSON-able report with the failures.

    The window streams through one DuckDB aggregate (``window_data``,
    ``validate_data``): memory stays flat whatever the window's size. The
    writer reads the window again (its latest-row query): reading it once
    would mean holding it, or its latest rows, until the gate's verdict; the
    second read costs the gate's own scan, about 1 s of a 10M-row window's
    70 s materialization (``python -m benchmarks --only materialize``, the
    ``gate s`` column), from the page cache."""
    rules = rules_for(view.name)
    lo = min(start, end - rules.max_staleness)
    con = _gate_connection(memory_limit)
    try:
        data, schema = window_data(
            con,
            config,
            offline_store,
            view,
            start=lo,
            end=end,
            include_after=now + CLOCK_SKEW,
        )
        report = validate_data(con, data, schema, view, end=end, now=now, rules=rules)
    finally:
        con.close()
    report["source"] = batch_source(view).name
    report["checked_from"] = lo.isoformat()
    return report
