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

Great Expectations is imported inside the functions (it takes seconds), with its
analytics disabled. Feast's own GE profiler does not work with GE 1.x, so GE is
called directly (ephemeral context, pandas data source, suites and validation
definitions as code).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc, utc_now
from feature_platform.offline import batch_source

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore, FeatureView

__all__ = [
    "batch_source",
    "SourceRules",
    "rules_for",
    "ValidationFailed",
    "format_failures",
    "read_source",
    "validate_frame",
    "validate_sources",
    "validate_view_window",
]

log = logging.getLogger(__name__)

# Rows stamped up to this far after "now" are tolerated (clock skew).
FUTURE_GRACE = timedelta(minutes=5)
DEFAULT_MAX_NULL_RATE = 0.05
TIMESTAMP_FIELDS = ("event_timestamp", "created_timestamp")


@dataclass(frozen=True)
class SourceRules:
    """Data rules for one feature view's source, beyond its schema."""

    ranges: Mapping[str, tuple[float | None, float | None]] = field(
        default_factory=dict
    )
    max_null_rate: Mapping[str, float] = field(default_factory=dict)
    max_staleness: timedelta = timedelta(days=1)


def _rules() -> dict[str, SourceRules]:
    """Each view's rules, from ``feature_repo/operations.py`` (``VALIDATION``)."""
    from feature_platform.config import repo_module

    return {
        view: SourceRules(**rules)
        for view, rules in repo_module("operations").VALIDATION.items()
    }


def rules_for(view: str) -> SourceRules:
    """The rules of one view (defaults for a view the metadata does not name)."""
    return _rules().get(view, SourceRules())


# Feast value type -> pandas dtypes accepted in the source (as GE reports them).
_DTYPES: dict[str, list[str]] = {
    "INT64": ["int64", "Int64"],
    "INT32": ["int32", "Int32", "int64", "Int64"],
    "DOUBLE": ["float64", "Float64"],
    "FLOAT": ["float32", "Float32", "float64", "Float64"],
    "STRING": ["str", "object", "string"],
    "BOOL": ["bool", "boolean"],
}


class ValidationFailed(RuntimeError):
    """Source data broke expectations; nothing was materialized.

    ``summary`` is the JSON-able result of :func:`validate_sources`.
    """

    def __init__(self, summary: dict[str, Any]):
        self.summary = summary
        failures = summary.get("failures", [])
        super().__init__(
            f"source validation failed: {len(failures)} expectation(s) broken; "
            "nothing was materialized\n" + format_failures(failures)
        )


# ------------------------------------------------------------------ reading


def read_source(
    store: FeatureStore,
    view: FeatureView,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    include_after: datetime | None = None,
) -> pd.DataFrame:
    """The raw rows of ``view``'s batch source with event time in ``[start, end]``
    (see ``read_source_rows``), read with the store's offline store."""
    from feature_platform.feast_compat import provider

    return read_source_rows(
        store.config,
        provider(store).offline_store,
        view,
        start=start,
        end=end,
        include_after=include_after,
    )


def read_source_rows(
    config: Any,
    offline_store: Any,
    view: FeatureView,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    include_after: datetime | None = None,
) -> pd.DataFrame:
    """The raw rows of ``view``'s batch source with event time in ``[start, end]``.

    Rows after ``include_after`` are kept too (to catch future timestamps). File
    sources are read as they are stored (naive timestamps stay naive, so they can
    be reported); other sources go through the offline store.
    """
    import pandas as pd
    from feast import FileSource

    source = batch_source(view)
    ts = source.timestamp_field
    if isinstance(source, FileSource):
        frame = _read_parquet_window(source.path, ts, start, end, include_after)
    else:  # BigQuery and others: the offline store reads the same table
        job = offline_store.pull_all_from_table_or_query(
            config=config,
            data_source=source,
            join_key_columns=[c.name for c in view.entity_columns],
            feature_name_columns=[f.name for f in view.features],
            timestamp_field=ts,
            created_timestamp_column=source.created_timestamp_column or None,
            start_date=start,
            end_date=include_after or end,
        )
        frame = job.to_df()
        # An offline store returns UTC (Spark hands pandas naive values in its
        # session zone, UTC): naive from a store means UTC (config.stored_utc).
        # The strict check is for files, whose bytes are the data contract.
        for col in (ts, source.created_timestamp_column):
            if col and col in frame.columns and frame[col].dt.tz is None:
                frame[col] = frame[col].dt.tz_localize("UTC")
    if ts not in frame.columns or (start is None and end is None):
        return frame
    stamps = frame[ts]
    if not pd.api.types.is_datetime64_any_dtype(stamps.dtype):
        return frame  # reported by the schema checks
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize("UTC")  # for slicing only; reported later
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= stamps >= pd.Timestamp(start)
    if end is not None:
        in_window = stamps <= pd.Timestamp(end)
        if include_after is not None:
            in_window |= stamps > pd.Timestamp(include_after)
        keep &= in_window
    return frame[keep].reset_index(drop=True)


def _read_parquet_window(
    path: str,
    ts: str,
    start: datetime | None,
    end: datetime | None,
    include_after: datetime | None,
) -> pd.DataFrame:
    """Only the rows a window needs (pushed down into the parquet scan), so a
    large source is not loaded whole; a source whose timestamps cannot be
    compared that way (naive, not a timestamp) is read whole and reported."""
    import pandas as pd

    if start is None or end is None:
        return pd.read_parquet(path)
    window = [(ts, ">=", start), (ts, "<=", end)]
    filters = [window, [(ts, ">", include_after)]] if include_after else [window]
    try:
        return pd.read_parquet(path, filters=filters)
    except Exception:  # noqa: BLE001 - naive or non-timestamp column: read it all
        return pd.read_parquet(path)


# --------------------------------------------------------------- the suites


def _expected_columns(view: FeatureView) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {}
    for col in [*view.entity_columns, *view.features]:
        kind = col.dtype.to_value_type().name
        columns[col.name] = _DTYPES.get(kind, [])
    return columns


def _build_suite(
    view: FeatureView, *, end: datetime, now: datetime, rules: SourceRules
) -> list[Any]:
    import great_expectations.expectations as gxe

    source = batch_source(view)
    ts = source.timestamp_field
    created = source.created_timestamp_column or None
    keys = [c.name for c in view.entity_columns]
    features = {f.name for f in view.features}
    latest_ok = now + FUTURE_GRACE
    out: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    for name, dtypes in _expected_columns(view).items():
        out.append(gxe.ExpectColumnToExist(column=name))
        if dtypes:
            out.append(
                gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=dtypes)
            )
    for key in keys:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=key))
    for stamp in [ts, *([created] if created else [])]:
        out.append(gxe.ExpectColumnToExist(column=stamp))
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=stamp))
        out.append(gxe.ExpectColumnValuesToBeBetween(column=stamp, max_value=latest_ok))
    if created:
        out.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=created, column_B=ts, or_equal=True
            )
        )
    out.append(
        gxe.ExpectColumnMaxToBeBetween(
            column=ts, min_value=end - rules.max_staleness, max_value=latest_ok
        )
    )
    for name in sorted(features):
        ceiling = rules.max_null_rate.get(name, DEFAULT_MAX_NULL_RATE)
        if ceiling <= 0:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
        else:
            out.append(
                gxe.ExpectColumnValuesToNotBeNull(column=name, mostly=1 - ceiling)
            )
        lo, hi = rules.ranges.get(name, (None, None))
        if lo is not None or hi is not None:
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=lo, max_value=hi
                )
            )
    return out


def _timezone_failures(
    frame: pd.DataFrame, columns: Iterable[str]
) -> list[dict[str, Any]]:
    """Timestamp columns that are naive or not UTC (GE 1.x cannot check a tz)."""
    import pandas as pd

    failures = []
    for col in columns:
        if col not in frame.columns:
            continue
        dtype = frame[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
            continue
        if pd.api.types.is_datetime64_any_dtype(dtype) and not isinstance(
            dtype, pd.DatetimeTZDtype
        ):
            observed = (
                f"naive timestamps (dtype {dtype}); localize column {col!r} to UTC"
            )
        else:
            observed = f"dtype {dtype}; expected timezone-aware UTC timestamps"
        failures.append(
            {
                "expectation": "expect_column_timestamps_to_be_utc",
                "column": col,
                "observed": observed,
            }
        )
    return failures


def _observed(result: Any) -> str:
    """A short, readable description of what GE saw."""
    if result.exception_info and result.exception_info.get("raised_exception"):
        return f"error: {result.exception_info.get('exception_message')}"
    res = result.result or {}
    if "unexpected_count" in res:
        count = res.get("unexpected_count") or 0
        total = res.get("element_count")
        pct = res.get("unexpected_percent")
        sample = [str(v) for v in (res.get("partial_unexpected_list") or [])[:3]]
        text = f"{count} unexpected"
        if total is not None:
            text += f" of {total} rows"
        if pct is not None:
            text += f" ({pct:.2f}%)"
        if sample:
            text += f", e.g. {', '.join(sample)}"
        return text
    if "observed_value" in res:
        return f"observed {res['observed_value']}"
    return "failed"


def _silence_gx() -> None:
    # Analytics are switched off in the context's own config (_gx_context), not
    # through GX_ANALYTICS_ENABLED: the package writes no environment variable.
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _gx_context() -> Any:
    """An in-memory GE context with analytics off and no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def validate_frame(
    frame: pd.DataFrame,
    view: FeatureView,
    *,
    end: datetime,
    now: datetime,
    rules: SourceRules | None = None,
) -> dict[str, Any]:
    """Run ``view``'s suite over ``frame``; a JSON-able result with the failures."""
    _silence_gx()
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    end = ensure_utc(end, "end")
    now = ensure_utc(now, "now")
    rules = rules or rules_for(view.name)
    source = batch_source(view)
    stamps = [source.timestamp_field]
    if source.created_timestamp_column:
        stamps.append(source.created_timestamp_column)
    failures = _timezone_failures(frame, stamps)
    checked = frame
    naive = [
        c
        for c in stamps
        if c in frame.columns
        and pd.api.types.is_datetime64_any_dtype(frame[c].dtype)
        and not isinstance(frame[c].dtype, pd.DatetimeTZDtype)
    ]
    if naive:  # reported above; compare the rest as if UTC (GE would crash on them)
        checked = frame.copy()
        for col in naive:
            checked[col] = checked[col].dt.tz_localize("UTC")

    context = _gx_context()
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(f"{view.name}_source").add_dataframe_asset(
        view.name
    )
    batch = asset.add_batch_definition_whole_dataframe("run_slice")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{view.name}_suite"))
    for expectation in _build_suite(view, end=end, now=now, rules=rules):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{view.name}_validation", data=batch, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": checked})
    for res in result.results:
        if res.success:
            continue
        config = res.expectation_config
        assert config is not None  # results always carry their expectation
        kwargs = config.kwargs
        column = kwargs.get("column") or ",".join(
            str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs
        )
        failures.append(
            {
                "expectation": config.type,
                "column": column or "(table)",
                "observed": _observed(res),
            }
        )
    return {
        "suite": f"{view.name}_suite",
        "rows_checked": len(frame),
        "evaluated": len(result.results) + len(stamps),
        "success": not failures,
        "failures": failures,
    }


def format_failures(failures: list[dict[str, Any]]) -> str:
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
        from feature_platform.config import get_store

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
) -> dict[str, Any]:
    """Validate the slice ``[start, end]`` of each online view's source.

    Returns a JSON-able summary; raises :class:`ValidationFailed` (whose message
    is a table of the failed expectations) when any suite fails, unless
    ``raise_on_failure`` is false.
    """
    from feature_platform.config import require_applied
    from feature_platform.offline import online_views

    store = _as_store(store_or_repo)
    require_applied(store)  # a never-applied repo: "run apply first"
    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    now = ensure_utc(now, "now") if now is not None else utc_now()
    if start >= end:
        raise ValueError(
            f"empty window: start {start.isoformat()} >= end {end.isoformat()}"
        )
    summary: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "now": now.isoformat(),
        "sources": {},
        "failures": [],
    }
    from feature_platform.feast_compat import provider

    offline_store = provider(store).offline_store
    for view in online_views(store, views):
        report = validate_view_window(
            store.config, offline_store, view, start=start, end=end, now=now
        )
        summary["sources"][view.name] = report
        summary["failures"] += [{"source": view.name, **f} for f in report["failures"]]
        log.info(
            "validated %s: %s rows, %s failed expectation(s)",
            view.name,
            report["rows_checked"],
            len(report["failures"]),
        )
    summary["success"] = not summary["failures"]
    if raise_on_failure and not summary["success"]:
        raise ValidationFailed(summary)
    return summary


def validate_view_window(
    config: Any,
    offline_store: Any,
    view: FeatureView,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Validate the rows of ``view``'s source that materializing ``[start, end]``
    reads (extended back to the view's freshness horizon, plus any row stamped
    after ``now``): the gate every materialization path passes through
    (``feature_platform.engine``). A JSON-able report with the failures."""
    rules = rules_for(view.name)
    lo = min(start, end - rules.max_staleness)
    frame = read_source_rows(
        config, offline_store, view, start=lo, end=end, include_after=now + FUTURE_GRACE
    )
    report = validate_frame(frame, view, end=end, now=now, rules=rules)
    report["source"] = batch_source(view).name
    report["checked_from"] = lo.isoformat()
    return report
