"""The training set: the point-in-time join, its provenance, and the time split.

Step 1 of the training job (:func:`prepare_training_set`) and step 2
(:func:`split_training_set`). A :class:`TrainingSet` carries the rows plus what
they were built from (feature service, features in the service's order, label,
window, project, registry), so every later step - in ``run_training``, in a KFP
component that read it back from a parquet file, in a notebook - records the
same facts about the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from feature_platform.errors import BadInput
from feature_platform.redact import redact_url
from feature_platform.utc import ensure_utc, ensure_utc_column

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

__all__ = [
    "DEFAULT_LABEL",
    "DEFAULT_SERVICE",
    "ENTITY_TS",
    "Split",
    "TrainingSet",
    "TrainingSetSummary",
    "TrainingWindow",
    "as_training_set",
    "build_training_set",
    "describe_training_set",
    "feature_service_features",
    "request_columns",
    "prepare_training_set",
    "read_training_set",
    "split_training_set",
    "time_split",
    "write_training_set",
]

ENTITY_TS = "event_timestamp"
DEFAULT_SERVICE = "churn_prediction_service"
DEFAULT_LABEL = "churned"
_PARQUET_KEY = b"feature_platform.training_set"


class TrainingWindow(TypedDict):
    """A training window as UTC ISO-8601 strings, ``[start, end)``."""

    start: str
    end: str


def feature_service_features(store: FeatureStore, service: str) -> list[str]:
    """The feature names a feature service serves, in the service's order."""
    fs = store.get_feature_service(service)
    return [f.name for proj in fs.feature_view_projections for f in proj.features]


def _on_demand_views(store: FeatureStore, service: str) -> list[Any]:
    """The on-demand views the service reads (by its projections' names)."""
    names = {
        p.name for p in store.get_feature_service(service).feature_view_projections
    }
    return [
        v
        for v in store.list_on_demand_feature_views(allow_cache=True)
        if v.name in names
    ]


def entity_keys(store: FeatureStore, service: str) -> list[str]:
    """The join keys of the service's feature views (an on-demand view's: those
    of the views it reads), in first-seen order."""
    fs = store.get_feature_service(service)
    on_demand = {v.name: v for v in _on_demand_views(store, service)}
    keys: list[str] = []
    for proj in fs.feature_view_projections:
        if proj.name in on_demand:
            sources = on_demand[proj.name].source_feature_view_projections.values()
            views = [store.get_feature_view(s.name) for s in sources]
        else:
            views = [store.get_feature_view(proj.name)]
        for view in views:
            for col in view.entity_columns:
                if col.name not in keys:
                    keys.append(col.name)
    return keys


def request_columns(store: FeatureStore, service: str) -> list[str]:
    """The request fields the service's on-demand views compute from: columns
    a training set's entity rows carry (a read sends them with the keys)."""
    out: list[str] = []
    for view in _on_demand_views(store, service):
        for source in view.source_request_sources.values():
            out += [f.name for f in source.schema if f.name not in out]
    return out


def _check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise BadInput(
            f"empty training window: {start.isoformat()} >= {end.isoformat()}"
        )


def build_training_set(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    *,
    feature_service: str = DEFAULT_SERVICE,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Join the feature service's features onto labelled entity rows, point in time.

    ``entity_df`` needs the entity keys and a UTC ``event_timestamp``. Rows with
    timestamps outside ``[start, end)`` are dropped (no rows from after the
    training window). Every remaining entity row is kept, with nulls where no
    feature value was valid at that time. The join is Feast's own
    ``get_historical_features`` as known at the entity timestamp
    (``filter_by_created_timestamp=True``): late-arriving rows cannot leak.
    """
    entity_df = ensure_utc_column(entity_df, ENTITY_TS)
    start = ensure_utc(start, "start") if start is not None else None
    end = ensure_utc(end, "end") if end is not None else None
    _check_window(start, end)
    keys = entity_keys(store, feature_service)
    missing = [k for k in keys if k not in entity_df.columns]
    if missing:
        raise BadInput(
            f"entity rows lack key column(s) {missing} needed by {feature_service!r}"
        )
    missing = [
        c for c in request_columns(store, feature_service) if c not in entity_df.columns
    ]
    if missing:
        raise BadInput(
            f"entity rows lack request column(s) {missing}: the on-demand features "
            f"of {feature_service!r} are computed from them (at serving time the "
            "request sends them)"
        )
    mask = entity_df[ENTITY_TS].notna()
    if start is not None:
        mask &= entity_df[ENTITY_TS] >= start
    if end is not None:
        mask &= entity_df[ENTITY_TS] < end
    rows = entity_df.loc[mask].reset_index(drop=True)
    if rows.empty:
        raise BadInput("no entity rows inside the training window")
    job = store.get_historical_features(
        entity_df=rows,
        features=store.get_feature_service(feature_service),
        filter_by_created_timestamp=True,
    )
    out = job.to_df()
    if len(out) != len(rows):
        raise RuntimeError(
            f"point-in-time join returned {len(out)} rows for {len(rows)} entity rows"
        )
    if getattr(store.config.offline_store, "type", None) == "spark":
        # Spark hands timestamps back naive, in its session time zone, which
        # the scale profile pins to UTC (spark.sql.session.timeZone).
        out[ENTITY_TS] = out[ENTITY_TS].dt.tz_localize("UTC")
    out = ensure_utc_column(out, ENTITY_TS)
    out = _mask_pii(store, feature_service, out)
    return out.sort_values([ENTITY_TS, *keys], kind="stable").reset_index(drop=True)


def _mask_pii(store: FeatureStore, service: str, df: pd.DataFrame) -> pd.DataFrame:
    """Mask the service's ``pii``-tagged features (see feature_platform.governance)."""
    from feature_platform.pii import mask_frame as mask_pii_frame
    from feature_platform.pii import pii_fields

    fs = store.get_feature_service(service)
    columns = [f for proj in fs.feature_view_projections for f in pii_fields(proj)]
    return mask_pii_frame(df, columns)


# ------------------------------------------------------------- the training set


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows with the service's features, and where they came from."""

    data: pd.DataFrame
    feature_service: str
    features: list[str]
    label: str
    window: TrainingWindow
    project: str
    registry: str  # credentials removed


class TrainingSetSummary(TypedDict):
    """What a training set looks like (KFP dataset metadata, logs)."""

    rows: int
    label: str
    label_counts: dict[str, int]
    positive_rate: float
    rows_with_null_features: int
    feature_service: str
    features: list[str]
    training_window: TrainingWindow
    entity_ts_min: str
    entity_ts_max: str
    project: str


def as_training_set(
    store: FeatureStore,
    data: pd.DataFrame,
    *,
    feature_service: str = DEFAULT_SERVICE,
    label: str = DEFAULT_LABEL,
    start: datetime | None = None,
    end: datetime | None = None,
) -> TrainingSet:
    """Wrap a point-in-time frame (ours or ``store.get_historical_features``).

    Checks the label and the service's features are there and timestamps are
    UTC; the window defaults to the rows' time range. Rows are put in time
    order (then entity key order), so the same rows train the same model
    whichever path built them.
    """
    if label not in data.columns:
        raise BadInput(f"entity rows have no label column {label!r}")
    features = feature_service_features(store, feature_service)
    missing = [f for f in features if f not in data.columns]
    if missing:
        raise BadInput(
            f"training rows lack feature(s) {missing} of {feature_service!r}"
        )
    data = ensure_utc_column(data, ENTITY_TS)
    if data.empty:
        raise BadInput("the training set has no rows")
    keys = [k for k in entity_keys(store, feature_service) if k in data.columns]
    data = data.sort_values([ENTITY_TS, *keys], kind="stable").reset_index(drop=True)
    first = data[ENTITY_TS].min() if start is None else ensure_utc(start, "start")
    last = data[ENTITY_TS].max() if end is None else ensure_utc(end, "end")
    window: TrainingWindow = {"start": first.isoformat(), "end": last.isoformat()}
    return TrainingSet(
        data=data,
        feature_service=feature_service,
        features=features,
        label=label,
        window=window,
        project=store.project,
        registry=redact_url(getattr(store.config.registry, "path", "")),
    )


def prepare_training_set(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    *,
    feature_service: str = DEFAULT_SERVICE,
    label: str = DEFAULT_LABEL,
    start: datetime | None = None,
    end: datetime | None = None,
) -> TrainingSet:
    """Step 1: labelled entity rows -> the point-in-time training set.

    Entity rows outside ``[start, end)`` are dropped before the join.
    """
    if label not in entity_df.columns:
        raise BadInput(f"entity rows have no label column {label!r}")
    # Features come only through the service: a column of the label rows the
    # service does not read (another service's request field, e.g. v2's
    # cart_value on a v1 training set) does not pass through into the set.
    needed = dict.fromkeys(
        [
            *entity_keys(store, feature_service),
            ENTITY_TS,
            label,
            *request_columns(store, feature_service),
        ]
    )
    entity_df = entity_df[[c for c in needed if c in entity_df.columns]]
    data = build_training_set(
        store, entity_df, feature_service=feature_service, start=start, end=end
    )
    return as_training_set(
        store, data, feature_service=feature_service, label=label, start=start, end=end
    )


def describe_training_set(training_set: TrainingSet) -> TrainingSetSummary:
    """Row count, label balance, null rows and time range, JSON-able."""
    data, label = training_set.data, training_set.label
    counts = data[label].value_counts().to_dict()
    return {
        "rows": len(data),
        "label": label,
        "label_counts": {str(k): int(v) for k, v in sorted(counts.items())},
        "positive_rate": round(float(data[label].mean()), 4),
        "rows_with_null_features": int(
            data[training_set.features].isna().any(axis=1).sum()
        ),
        "feature_service": training_set.feature_service,
        "features": list(training_set.features),
        "training_window": training_set.window,
        "entity_ts_min": data[ENTITY_TS].min().isoformat(),
        "entity_ts_max": data[ENTITY_TS].max().isoformat(),
        "project": training_set.project,
    }


def write_training_set(training_set: TrainingSet, path: Path | str) -> Path:
    """Write the rows as parquet, with the provenance in the file's metadata.

    A plain parquet file to any reader; :func:`read_training_set` gets the
    whole :class:`TrainingSet` back (how KFP components pass it on).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = {
        "feature_service": training_set.feature_service,
        "features": training_set.features,
        "label": training_set.label,
        "window": training_set.window,
        "project": training_set.project,
        "registry": training_set.registry,
    }
    table = pa.Table.from_pandas(training_set.data, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), _PARQUET_KEY: json.dumps(info)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def read_training_set(path: Path | str) -> TrainingSet:
    """Read a training set written by :func:`write_training_set`."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(_PARQUET_KEY)
    if raw is None:
        raise BadInput(f"{path} is not a training set (no {_PARQUET_KEY!r})")
    info: dict[str, Any] = json.loads(raw)
    return TrainingSet(
        data=ensure_utc_column(table.to_pandas(), ENTITY_TS),
        feature_service=info["feature_service"],
        features=list(info["features"]),
        label=info["label"],
        window=TrainingWindow(start=info["window"]["start"], end=info["window"]["end"]),
        project=info["project"],
        registry=info["registry"],
    )


# ------------------------------------------------------------------- the split


@dataclass(frozen=True)
class Split:
    """Train rows strictly earlier than test rows; test starts at ``cutoff``."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: datetime
    test_fraction: float


def time_split(
    df: pd.DataFrame, *, test_fraction: float = 0.25
) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Split by time: every test row is strictly later than every train row."""
    if not 0 < test_fraction < 1:
        raise BadInput("test_fraction must be in (0, 1)")
    ts = df[ENTITY_TS]
    cutoff = ts.sort_values().iloc[int(len(ts) * (1 - test_fraction))]
    train, test = df[ts < cutoff], df[ts >= cutoff]
    if train.empty or test.empty:
        raise BadInput("time split left an empty side; need more distinct timestamps")
    return (
        train.reset_index(drop=True),
        test.reset_index(drop=True),
        cutoff.to_pydatetime(),
    )


def split_training_set(
    training_set: TrainingSet, *, test_fraction: float = 0.25
) -> Split:
    """Step 2: the time split (deterministic: the same rows give the same split)."""
    train, test, cutoff = time_split(training_set.data, test_fraction=test_fraction)
    return Split(train=train, test=test, cutoff=cutoff, test_fraction=test_fraction)
