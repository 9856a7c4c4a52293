"""The one online-vs-offline sampler: what the online store serves for a sample
of entities, next to what the offline data says it should serve.

``sample_online(store, view, as_of=...)``:

1. reads the view's *offline latest within ttl*: per entity, the newest source
   row with an event time in ``[as_of - ttl, as_of]`` (created time breaking
   ties), through the offline store (``feature_platform.offline.pull_latest``,
   the rows materializing that window writes). With ``start`` only entities
   whose latest row is at or after ``start`` are candidates (the ones a run of
   ``[start, as_of]`` wrote);
2. picks ``size`` of those entities at random (``seed``), and masks their
   ``pii`` values (the online store only ever holds them masked);
3. reads their online values through the platform's read call
   (``feature_platform.online.read_online``, freshness judged at ``as_of``);
4. compares every (entity, feature) cell, type-aware (``values_match``).

The result is an ``OnlineSample``: the per-cell comparison and, when asked
(``event_times=True``), the event time the online store holds per entity.

Its users keep their own reports: the skew check (mismatch and null rates),
recovery (missing / behind entities), monitoring (online null and expired
rates) and governance (raw ``pii`` values served).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_platform.offline import batch_source, pull_latest
from feature_platform.pii import mask_frame, pii_fields
from feature_platform.utc import ensure_utc, ensure_utc_column

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore, FeatureView

__all__ = [
    "DEFAULT_LOOKBACK",
    "Cell",
    "OnlineSample",
    "is_null",
    "lookback",
    "offline_latest",
    "sample_online",
    "values_match",
]

# How far back "latest" reaches for a view without a ttl (it never expires).
DEFAULT_LOOKBACK = timedelta(days=1)
_FLOAT_KINDS = {"FLOAT", "DOUBLE"}
_INT_KINDS = {"INT32", "INT64"}


def is_null(value: Any) -> bool:
    """``None`` and NaN (or anything else that is not equal to itself)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA-safe enough for scalars
    except (TypeError, ValueError):
        return False


def values_match(
    offline: Any,
    online: Any,
    kind: str,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
) -> bool:
    """Whether an online value equals the offline one (Feast value type ``kind``).

    Floats within a relative tolerance (Float32 features round-trip through
    float32), integers and strings exactly, null equals null.
    """
    if is_null(offline) or is_null(online):
        return is_null(offline) and is_null(online)
    if kind in _FLOAT_KINDS:
        return math.isclose(
            float(offline), float(online), rel_tol=rel_tol, abs_tol=abs_tol
        )
    if kind in _INT_KINDS:
        return int(offline) == int(online)
    if kind == "STRING":
        return str(offline) == str(online)
    return bool(offline == online)


def lookback(view: FeatureView) -> timedelta:
    """How far back the latest value of ``view`` may lie: its ttl, or
    ``DEFAULT_LOOKBACK`` for a view that never expires."""
    ttl = view.ttl
    return ttl if ttl is not None and ttl.total_seconds() > 0 else DEFAULT_LOOKBACK


def _py(value: Any) -> Any:
    """A plain Python scalar (numpy and pandas scalars unwrapped); nulls -> None."""
    if is_null(value):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class Cell:
    """One (entity, feature) of the sample: offline latest vs online value."""

    entity: dict[str, Any]
    feature: str
    offline: Any  # None for null; pii values masked
    online: Any  # what the online read returned (None: null or expired)
    match: bool


@dataclass(frozen=True)
class OnlineSample:
    """A view's sampled entities and their cells, feature by feature."""

    view: str
    as_of: datetime
    candidates: int  # entities with an offline row in the window
    entities: list[dict[str, Any]]
    offline_event_times: list[datetime]
    kinds: dict[str, str]  # feature -> Feast value type name, in view order
    cells: dict[str, list[Cell]] = field(default_factory=dict)  # entity order
    # Event time (epoch seconds) of the value the online store holds per entity,
    # 0 when it holds none; only with ``event_times=True``.
    online_event_seconds: list[int] | None = None

    @property
    def sampled(self) -> int:
        return len(self.entities)

    def nulls(self, feature: str) -> int:
        """How many sampled entities read back null for ``feature``."""
        return sum(is_null(c.online) for c in self.cells[feature])

    def mismatches(self, feature: str) -> list[Cell]:
        return [c for c in self.cells[feature] if not c.match]


def offline_latest(
    store: FeatureStore,
    view: FeatureView,
    as_of: datetime,
    *,
    features: list[str] | None = None,
) -> pd.DataFrame:
    """Per entity, the offline row valid online at ``as_of``: the newest event in
    ``[as_of - lookback(view), as_of]`` (timestamps as UTC)."""
    as_of = ensure_utc(as_of, "as_of")
    frame = pull_latest(
        store, view, as_of - lookback(view), as_of, features=features
    ).to_df()
    source = batch_source(view)
    for column in (source.timestamp_field, source.created_timestamp_column):
        if column and column in frame.columns and len(frame):
            frame = ensure_utc_column(frame, column)
    return frame


def _stored_event_seconds(
    store: FeatureStore, view: FeatureView, rows: list[dict[str, Any]]
) -> list[int]:
    """Event time of the value the online store holds per entity (0: none).

    Feast keeps one event time per entity and view, so one feature tells it.
    ``read_online`` returns values only; this is the one extra read, until it
    can return event times too.
    """
    from feast.online_response import TIMESTAMP_POSTFIX

    feature = view.features[0].name
    got = store.get_online_features(
        features=[f"{view.name}:{feature}"], entity_rows=rows
    ).to_dict(include_event_timestamps=True)
    return [int(s or 0) for s in got[feature + TIMESTAMP_POSTFIX]]


def sample_online(
    store: FeatureStore,
    view: FeatureView,
    *,
    as_of: datetime,
    size: int,
    seed: int = 0,
    start: datetime | None = None,
    features: list[str] | None = None,
    event_times: bool = False,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
) -> OnlineSample:
    """Compare ``size`` entities' online values of ``view`` with the offline
    latest within ttl as of ``as_of`` (see the module doc).

    ``features`` (default: all of the view's) limits the features read and
    compared; ``start`` limits the candidates to entities whose latest row is
    at or after it.
    """
    import pandas as pd

    from feature_platform.online import read_online

    as_of = ensure_utc(as_of, "as_of")
    if size < 1:
        raise ValueError(f"sample size must be >= 1, got {size}")
    kinds = {
        f.name: f.dtype.to_value_type().name
        for f in view.features
        if features is None or f.name in features
    }
    names = list(kinds)
    ts = batch_source(view).timestamp_field
    candidates = offline_latest(store, view, as_of, features=names)
    if start is not None and len(candidates):
        start = ensure_utc(start, "start")
        candidates = candidates[candidates[ts] >= pd.Timestamp(start)]
    n = min(size, len(candidates))
    picked = candidates.sample(n=n, random_state=seed) if n else candidates.iloc[:0]
    # The online store only ever holds pii values masked (idempotent).
    picked = mask_frame(picked, [f for f in pii_fields(view) if f in kinds])
    keys = [c.name for c in view.entity_columns]
    rows = [
        {k: _py(v) for k, v in zip(keys, row, strict=True)}
        for row in picked[keys].itertuples(index=False, name=None)
    ]
    sample = OnlineSample(
        view=view.name,
        as_of=as_of,
        candidates=len(candidates),
        entities=rows,
        offline_event_times=[t.to_pydatetime() for t in picked[ts]],
        kinds=kinds,
        cells={name: [] for name in names},
        online_event_seconds=[] if event_times else None,
    )
    if not rows:
        return sample
    online = read_online(
        store, rows, features=[f"{view.name}:{name}" for name in names], now=as_of
    )
    for name, kind in kinds.items():
        offline_values = picked[name].tolist()
        sample.cells[name].extend(
            Cell(
                entity=entity,
                feature=name,
                offline=_py(want),
                online=got,
                match=values_match(want, got, kind, rel_tol=rel_tol, abs_tol=abs_tol),
            )
            for entity, want, got in zip(
                rows, offline_values, online[name], strict=True
            )
        )
    if sample.online_event_seconds is not None:
        sample.online_event_seconds.extend(_stored_event_seconds(store, view, rows))
    return sample
