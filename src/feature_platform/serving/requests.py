"""Validation of ``/get-online-features`` and ``/push`` bodies against the catalog.

Each problem is a ``RequestError`` (a 4xx whose body is Feast's error detail
with the platform's ``error`` code and ``detail``) naming what was wrong; a
correct request passes unchanged.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from feature_platform.errors import InvalidFeatureReference, NaiveTimestampError
from feature_platform.feature_refs import parse_ref
from feature_platform.serving.errors import RequestError, _bad, _not_found
from feature_platform.serving.snapshot import _INT_BITS, RegistrySnapshot
from feature_platform.utc import parse_utc

log = logging.getLogger(__name__)

# Feast's endpoint accepts ``to`` by these names (``PushMode``, lower case).
_PUSH_MODES = ("online", "offline", "online_and_offline")


@functools.cache
def _model_fields(model: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """The fields of one of Feast's request models (``feast.feature_server``,
    e.g. ``GetOnlineFeaturesRequest``) and which of them are true/false flags
    (sorted): a body is checked against the very model Feast's endpoint parses
    it with."""
    from feast import feature_server

    fields = getattr(feature_server, model).model_fields
    flags = sorted(n for n, f in fields.items() if f.annotation is bool)
    return frozenset(fields), tuple(flags)


# ------------------------------------------------------------------- validation


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "(none)"


def _unknown(kind: str, name: object, available: Iterable[str]) -> RequestError:
    """404 for a name the registry does not hold, listing what it holds (code
    ``unknown_<kind>``, e.g. ``unknown_feature_view``)."""
    return _not_found(
        f"unknown {kind} {name}; available: {_names(available)}",
        "unknown_" + kind.replace(" ", "_").removesuffix("(s)"),
    )


def _check_value(value: Any, kind: str, *, where: str, nullable: bool) -> None:
    if value is None:
        if nullable:
            return
        raise _bad(f"{where} is null; entity keys must have a value", "invalid_value")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = {
        "int32": is_int,
        "int64": is_int,
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "bool": isinstance(value, bool),
        "timestamp": isinstance(value, str | int) and not isinstance(value, bool),
    }.get(kind, True)
    if not ok:
        expected = {
            "int32": "an integer",
            "int64": "an integer",
            "float": "a number",
            "string": "a string",
        }
        raise _bad(
            f"{where} must be {expected.get(kind, kind)}, got {json.dumps(value)}",
            "invalid_value",
        )
    bits = _INT_BITS.get(kind)
    if bits and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise _bad(
            f"{where}={value} is out of range for a {bits}-bit integer",
            "invalid_value",
        )
    if kind == "float" and is_int and not -(2**63) <= value < 2**63:
        # pandas/pyarrow cannot take such an int as a number (Feast: a 500).
        raise _bad(
            f"{where}={value} is too large an integer; send it as a float "
            f"(e.g. {float(value):.6e})",
            "invalid_value",
        )


def _columns(
    data: Any, *, what: str, max_rows: int
) -> tuple[dict[str, list[Any]], int]:
    """An object of equal-length, non-empty lists; returns it and the row count."""
    if not isinstance(data, dict) or not data:
        raise _bad(f"{what} must be a non-empty object of column -> list of values")
    lengths = {}
    for name, values in data.items():
        if not isinstance(values, list):
            raise _bad(
                f"{what}.{name} must be a list of values, got {json.dumps(values)}"
            )
        lengths[name] = len(values)
    sizes = set(lengths.values())
    if len(sizes) > 1:
        raise _bad(
            f"{what} columns have different lengths: {lengths}", "ragged_columns"
        )
    rows = sizes.pop()
    if rows == 0:
        raise _bad(f"{what} has no rows")
    if rows > max_rows:
        raise RequestError(
            413,
            "batch_too_large",
            f"{what} has {rows} rows; the limit is {max_rows} per request "
            "(split the batch or raise FP_SERVER_MAX_ENTITY_ROWS)",
        )
    return data, rows


def _check_fields(payload: Any, model: str) -> dict[str, Any]:
    """The request body as the JSON object it must be, with only ``model``'s
    fields and booleans in its flags (free-form: the client's JSON)."""
    if not isinstance(payload, dict):
        raise _bad("the request body must be a JSON object")
    allowed, flags = _model_fields(model)
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise _bad(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    for flag in flags:
        value = payload.get(flag)
        if value is not None and not isinstance(value, bool):
            raise _bad(f"{flag} must be true or false, got {json.dumps(value)}")
    return payload


def _table(payload: dict[str, Any], field: str, keys: str, max_rows: int) -> Any:
    """The required column table ``field`` of a body (``keys`` -> value lists)."""
    if field not in payload:
        raise _bad(f"{field} is required: an object of {keys} -> list of values")
    return _columns(payload[field], what=field, max_rows=max_rows)[0]


def _snapshot_naming(
    snapshot_for: Callable[[bool], RegistrySnapshot],
    names: Iterable[str],
    table: Callable[[RegistrySnapshot], Collection[str]],
) -> RegistrySnapshot:
    """The cached registry snapshot, refreshed once when its ``table`` lacks
    one of ``names`` (it may have been applied since the cache was built)."""
    catalog = snapshot_for(False)
    if any(name not in table(catalog) for name in names):
        catalog = snapshot_for(True)
    return catalog


def check_read(
    payload: Any, snapshot_for: Callable[[bool], RegistrySnapshot], max_rows: int
) -> None:
    """Validate a ``/get-online-features`` body; raise ``RequestError`` if bad."""
    payload = _check_fields(payload, "GetOnlineFeaturesRequest")
    service = payload.get("feature_service")
    features = payload.get("features")
    if service is not None and features:
        raise _bad("pass either feature_service or features, not both")
    if service is None and not features:
        raise _bad(
            "pass a feature_service name or a non-empty features list "
            "('<feature_view>:<feature>' references)"
        )
    entities = _table(payload, "entities", "join key", max_rows)

    # (view, features, join key map) triples being read.
    reads: list[tuple[str, list[str], dict[str, str]]]
    if service is not None:
        if not isinstance(service, str):
            raise _bad(f"feature_service must be a string, got {json.dumps(service)}")
        catalog = _snapshot_naming(snapshot_for, [service], lambda c: c.services)
        if service not in catalog.services:
            raise _unknown("feature service", repr(service), catalog.services)
        reads = catalog.services[service]
    else:
        if not isinstance(features, list) or not all(
            isinstance(f, str) for f in features
        ):
            raise _bad("features must be a list of '<feature_view>:<feature>' strings")
        by_view: dict[str, list[str]] = {}
        for ref in features:
            try:
                view_name, feature = parse_ref(ref)
            except InvalidFeatureReference as exc:
                raise _bad(str(exc), "invalid_feature_reference") from None
            by_view.setdefault(view_name, []).append(feature)
        catalog = _snapshot_naming(snapshot_for, by_view, lambda c: c.views)
        for view_name, names in by_view.items():
            view = catalog.views.get(view_name)
            if view is None:
                raise _unknown("feature view", repr(view_name), catalog.views)
            missing = [n for n in names if n not in view.features]
            if missing:
                raise _not_found(
                    f"unknown feature(s) {missing} in feature view {view_name!r}; "
                    f"available: {_names(list(view.features))}",
                    "unknown_feature",
                )
        reads = [(v, f, {}) for v, f in by_view.items()]

    required: dict[str, tuple[str, str]] = {}  # request key -> (kind, view)
    optional: dict[str, str] = {}
    for view_name, _features, key_map in reads:
        view = catalog.views.get(view_name)
        if view is None:  # a service pointing at a deleted view: Feast reports it
            continue
        for key, kind in view.keys.items():
            required.setdefault(key_map.get(key, key), (kind, view_name))
        optional.update(view.request_fields)
    for name, kind in optional.items():
        required.setdefault(name, (kind, "request data"))
    missing_keys = sorted(set(required) - set(entities))
    if missing_keys:
        needs = {k: required[k][1] for k in missing_keys}
        raise _bad(
            f"missing entity key(s) {missing_keys} (needed by {needs}); "
            f"this request needs {sorted(required)}",
            "missing_entity_key",
        )
    extra = sorted(set(entities) - set(required))
    if extra:
        raise _bad(
            f"unexpected entity key(s) {extra}; this request needs exactly "
            f"{sorted(required)}",
            "unexpected_entity_key",
        )
    for key, values in entities.items():
        kind = required[key][0]
        if _plain_column(values, kind):
            continue
        for i, value in enumerate(values):
            _check_value(value, kind, where=f"entities.{key}[{i}]", nullable=False)


def _plain_column(values: list[Any], kind: str) -> bool:
    """Whether a column is all ints in range of an integer ``kind`` or all
    strings of a string one: what ``_check_value`` passes, checked in C (a
    ``False`` is checked value by value, for the message)."""
    if kind == "string":
        return all(type(v) is str for v in values)
    bits = _INT_BITS.get(kind)
    return (
        bits is not None
        and all(type(v) is int for v in values)
        and -(2 ** (bits - 1)) <= min(values)
        and max(values) < 2 ** (bits - 1)
    )


def _parse_timestamp(value: Any, where: str) -> datetime:
    """``value`` as aware UTC (``utc.parse_utc``, the platform's one parser),
    else a 400 naming ``where``."""
    if not isinstance(value, str):
        raise _bad(
            f"{where} must be an ISO-8601 string with a UTC offset "
            f"(e.g. '2026-01-01T12:00:00Z'), got {json.dumps(value)}",
            "invalid_timestamp",
        )
    try:
        return parse_utc(value, where)
    except NaiveTimestampError:
        raise _bad(
            f"{where}={value!r} has no timezone; send UTC ('...Z' or '+00:00')",
            "invalid_timestamp",
        ) from None
    except ValueError:
        raise _bad(
            f"{where}={value!r} is not an ISO-8601 timestamp", "invalid_timestamp"
        ) from None


def check_push(
    payload: Any, snapshot_for: Callable[[bool], RegistrySnapshot], max_rows: int
) -> None:
    """Validate a ``/push`` body; raise ``RequestError`` if bad."""
    payload = _check_fields(payload, "PushFeaturesRequest")
    name = payload.get("push_source_name")
    if not isinstance(name, str) or not name:
        raise _bad("push_source_name is required (a string)")
    mode = payload.get("to", "online")
    if mode not in _PUSH_MODES:
        raise _bad(f"to must be one of {list(_PUSH_MODES)}, got {json.dumps(mode)}")
    df = _table(payload, "df", "column", max_rows)
    catalog = _snapshot_naming(snapshot_for, [name], lambda c: c.push_sources)
    source = catalog.push_sources.get(name)
    if source is None:
        raise _unknown("push source", repr(name), catalog.push_sources)
    _check_rows(
        df,
        [catalog.views[view_name] for view_name in source.views],
        timestamp_field=source.timestamp_field,
        created_field=source.created_field,
        target=f"push source {name!r}",
    )


def _check_rows(
    df: dict[str, list[Any]],
    views: Sequence[Any],
    *,
    timestamp_field: str,
    created_field: str | None,
    target: str,
) -> None:
    """The columns of rows written to ``views``: their join keys and event
    timestamp (required), features (nullable), the created timestamp
    (optional), each value of the column's type."""
    columns: dict[str, tuple[str, bool]] = {timestamp_field: ("timestamp", False)}
    for view in views:
        for key, kind in view.keys.items():
            columns[key] = (kind, False)
        for feature, kind in view.features.items():
            columns.setdefault(feature, (kind, True))
    missing = sorted(set(columns) - set(df))
    if missing:
        raise _bad(
            f"df is missing column(s) {missing}; {target} needs {sorted(columns)}",
            "missing_column",
        )
    allowed = set(columns) | ({created_field} if created_field else set())
    extra = sorted(set(df) - allowed)
    if extra:
        raise _bad(
            f"df has unexpected column(s) {extra}; {target} takes {sorted(allowed)}",
            "unexpected_column",
        )
    for column, values in df.items():
        kind, nullable = columns.get(column, ("timestamp", False))
        for i, value in enumerate(values):
            where = f"df.{column}[{i}]"
            if kind == "timestamp":
                _parse_timestamp(value, where)
            else:
                _check_value(value, kind, where=where, nullable=nullable)


# ------------------------------------------------- admin endpoints (when open)


def _parse_utc_field(payload: dict[str, Any], field: str) -> datetime:
    value = payload.get(field)
    if value is None:
        raise _bad(
            f"{field} is required: an ISO-8601 string with a UTC offset "
            "(e.g. '2026-01-01T12:00:00Z')",
            "invalid_timestamp",
        )
    return _parse_timestamp(value, field)


def _check_view_names(
    payload: dict[str, Any], snapshot_for: Callable[[bool], RegistrySnapshot]
) -> None:
    names = payload.get("feature_views")
    if names is None:
        return
    if names == []:
        raise _bad("feature_views is empty; omit it to materialize every view")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad(
            f"feature_views must be a list of view names, got {json.dumps(names)}"
        )
    catalog = _snapshot_naming(snapshot_for, names, lambda c: c.views)
    materializable = {n for n, v in catalog.views.items() if not v.on_demand}
    unknown = sorted(set(names) - materializable)
    if unknown:
        raise _unknown("feature view(s)", unknown, materializable)


def _check_materialize_fields(payload: Any, model: str) -> dict[str, Any]:
    """The body of a materialize request (free-form: the client's JSON)."""
    body = _check_fields(payload, model)
    if body.get("version") is not None:
        raise _bad("version is not supported: materialize the current version")
    return body


def check_materialize(
    payload: Any, snapshot_for: Callable[[bool], RegistrySnapshot], max_rows: int
) -> None:
    """Validate a ``/materialize`` body (Feast answers bad timestamps with a 500)."""
    body = _check_materialize_fields(payload, "MaterializeRequest")
    _check_view_names(body, snapshot_for)
    if body.get("disable_event_timestamp"):
        # Feast would materialize everything from 1970 to now in the request.
        raise _bad(
            "disable_event_timestamp is not supported: materialization is a "
            "window; send start_ts and end_ts (or use `feature-platform "
            "materialize`, which catches up from the watermark)"
        )
    start = _parse_utc_field(body, "start_ts")
    end = _parse_utc_field(body, "end_ts")
    if start >= end:
        raise _bad(
            f"start_ts ({start}) must be before end_ts ({end})", "invalid_window"
        )


def check_materialize_incremental(
    payload: Any, snapshot_for: Callable[[bool], RegistrySnapshot], max_rows: int
) -> None:
    """Validate a ``/materialize-incremental`` body."""
    body = _check_materialize_fields(payload, "MaterializeIncrementalRequest")
    _check_view_names(body, snapshot_for)
    _parse_utc_field(body, "end_ts")


def check_write(
    payload: Any, snapshot_for: Callable[[bool], RegistrySnapshot], max_rows: int
) -> None:
    """Validate a ``/write-to-online-store`` body: a known view and rows of its
    columns (Feast answers a malformed df with a 500)."""
    payload = _check_fields(payload, "WriteToFeatureStoreRequest")
    name = payload.get("feature_view_name")
    if not isinstance(name, str) or not name:
        raise _bad("feature_view_name is required (a string)")
    df = _table(payload, "df", "column", max_rows)
    catalog = _snapshot_naming(snapshot_for, [name], lambda c: c.views)
    view = catalog.views.get(name)
    if view is None or view.on_demand:
        writable = [n for n, v in catalog.views.items() if not v.on_demand]
        raise _unknown("feature view", repr(name), writable)
    _check_rows(
        df,
        [view],
        timestamp_field=view.timestamp_field,
        created_field=view.created_field,
        target=f"feature view {name!r}",
    )
