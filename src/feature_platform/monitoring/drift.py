"""Drift: PSI per feature between a reference and a current window of source rows.

Per-window feature statistics use Feast's own ``MetricsCalculator`` (the code
behind ``feast monitor run``: row/null counts, mean, p50..p99, top values), on
rows read with the offline store (``feature_platform.offline.window_rows_job``).
``feast monitor`` itself has no drift metric, so drift is computed here: PSI
on shared bins (deciles of the reference window; categories as bins; nulls as
their own bin), flagged above the feature's ``max_psi`` in
``operations.MONITORING`` (default ``PSI_THRESHOLD``, 0.2). PSI is ten lines of
numpy here: scipy has no PSI, and the libraries that do (evidently, nannyml)
are not in the lock and pull in far more than one formula. scipy's two-sample
tests (``ks_2samp``, ``chi2_contingency``) are reported beside it
(``two_sample_test``). ``pii``-tagged features are never profiled (their
distributions would leak).

An on-demand view's outputs have no stored window: ``on_demand_drift``
compares the values the feature server served (binned in its ``/metrics``,
``serving.metrics.OUTPUT_BINS``) with the outputs the same transformation
gives offline over the view's reference requests (recorded request values
with their entity keys and times, ``operations.MONITORING``'s
``reference_requests``) in the reference window: PSI on those shared bins
(``psi_bins``), nulls a bin of their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from feature_platform.monitoring.window import Window, as_utc
from feature_platform.offline import batch_source, window_rows_job
from feature_platform.pii import pii_fields

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from feast import FeatureStore, FeatureView, OnDemandFeatureView

    from feature_platform.monitoring.traffic import ServedView

__all__ = [
    "MAX_ROWS_PER_WINDOW",
    "PSI_THRESHOLD",
    "FeatureDrift",
    "Psi",
    "Rows",
    "TwoSample",
    "drift",
    "on_demand_drift",
    "psi_bins",
    "psi_categorical",
    "psi_numeric",
    "two_sample_test",
]

PSI_THRESHOLD = 0.2
PSI_BINS = 10
PSI_EPSILON = 1e-4  # floor of a bin's share, so empty bins do not give infinity
MAX_ROWS_PER_WINDOW = 200_000
NULL_BIN = "(null)"
OTHER_BIN = "(other)"
MAX_CATEGORIES = 20


class Psi(TypedDict):
    """A PSI and the bins it was computed on (``psi_numeric``,
    ``psi_categorical``, ``psi_bins``); ``psi`` None when a window is empty."""

    psi: float | None
    bins: list[str]
    edges: NotRequired[list[float]]  # numeric: the reference deciles
    reference: list[float]  # share of rows per bin
    current: list[float]


class TwoSample(TypedDict):
    """scipy's two-sample test of one feature (``two_sample_test``)."""

    test: str  # ks_2samp or chi2_contingency
    statistic: float
    pvalue: float


class Rows(TypedDict):
    reference: int
    current: int


class FeatureDrift(Psi):
    """One feature's drift (``drift``, ``on_demand_drift``; the monitor adds
    ``threshold`` and resets ``drifted`` from ``operations.MONITORING``)."""

    kind: str  # numeric or categorical
    two_sample: NotRequired[TwoSample | None]  # stored views only
    drifted: bool
    threshold: NotRequired[float | None]
    rows: Rows
    reference_stats: dict[str, Any]  # ``_stats``: Feast's metrics
    current_stats: dict[str, Any]
    current_source: NotRequired[str]  # on-demand: served traffic
    note: NotRequired[str]  # why PSI is None


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    import numpy as np

    r = np.clip(ref_share, PSI_EPSILON, None)
    c = np.clip(cur_share, PSI_EPSILON, None)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    *,
    bins: int = PSI_BINS,
) -> Psi:
    """PSI of a numeric feature on the reference window's quantile bins.

    Bin edges are the reference deciles (deduplicated for discrete values),
    open at both ends; nulls form their own bin when either window has any.
    """
    import numpy as np

    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref_ok, cur_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref_ok.size == 0 or cur.size == 0:
        return {"psi": None, "bins": [], "reference": [], "current": []}
    qs = np.quantile(ref_ok, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(qs)
    labels = []
    bounds = [-math.inf, *edges.tolist(), math.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        labels.append(f"[{_num(lo)}, {_num(hi)})")

    def shares(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        counts = np.bincount(
            np.searchsorted(edges, ok, side="right"), minlength=len(edges) + 1
        ).astype("float64")
        nulls = float(values.size - ok.size)
        return np.append(counts, nulls) / max(values.size, 1)

    r, c = shares(ref, ref_ok), shares(cur, cur_ok)
    if r[-1] == 0 and c[-1] == 0:
        r, c = r[:-1], c[:-1]
    else:
        labels.append(NULL_BIN)
    return {
        "psi": round(_psi(r, c), 6),
        "bins": labels,
        "edges": [float(e) for e in edges],
        "reference": [round(float(x), 6) for x in r],
        "current": [round(float(x), 6) for x in c],
    }


def psi_categorical(
    reference: Sequence[Any],
    current: Sequence[Any],
    *,
    max_categories: int = MAX_CATEGORIES,
) -> Psi:
    """PSI of a categorical feature: one bin per reference category (top N), plus
    ``(other)`` for unseen/rare values and ``(null)``."""
    import numpy as np
    import pandas as pd

    ref = pd.Series(list(reference), dtype="object")
    cur = pd.Series(list(current), dtype="object")
    if ref.empty or cur.empty:
        return {"psi": None, "bins": [], "reference": [], "current": []}
    top = ref.dropna().astype(str).value_counts().index[:max_categories].tolist()

    def bucket(s: pd.Series) -> pd.Series:
        b = s.astype(str).where(s.notna(), NULL_BIN)
        return b.where(b.isin([*top, NULL_BIN]), OTHER_BIN)

    labels = [*top, OTHER_BIN, NULL_BIN]
    r = bucket(ref).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    c = bucket(cur).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    keep = (r > 0) | (c > 0)
    r, c = r[keep], c[keep]
    return {
        "psi": round(_psi(np.asarray(r), np.asarray(c)), 6),
        "bins": [str(x) for x in r.index],
        "reference": [round(float(x), 6) for x in r],
        "current": [round(float(x), 6) for x in c],
    }


def psi_bins(
    reference: Mapping[str, float],
    current: Mapping[str, float],
    *,
    order: Sequence[str],
) -> Psi:
    """PSI of two distributions already counted per bin label (``order``: every
    label, in order; bins empty in both windows left out)."""
    import numpy as np

    ref_total, cur_total = sum(reference.values()), sum(current.values())
    if not ref_total or not cur_total:
        return {"psi": None, "bins": [], "reference": [], "current": []}
    labels = [b for b in order if reference.get(b) or current.get(b)]
    r = np.array([reference.get(b, 0) for b in labels], dtype="float64") / ref_total
    c = np.array([current.get(b, 0) for b in labels], dtype="float64") / cur_total
    return {
        "psi": round(_psi(r, c), 6),
        "bins": labels,
        "reference": [round(float(x), 6) for x in r],
        "current": [round(float(x), 6) for x in c],
    }


def two_sample_test(
    reference: pd.Series, current: pd.Series, kind: str
) -> TwoSample | None:
    """scipy's two-sample test of the non-null values, reported next to PSI.

    numeric: Kolmogorov-Smirnov (``ks_2samp``: the largest gap between the two
    empirical CDFs); categorical: chi-square on the category counts
    (``chi2_contingency``). Not used to alert: with the tens of thousands of
    rows a window holds, their p-values flag shifts far too small to matter,
    while PSI measures the size of the shift.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        return None
    if kind == "numeric":
        result = stats.ks_2samp(ref.astype("float64"), cur.astype("float64"))
        name = "ks_2samp"
    else:
        table = (
            pd.DataFrame(
                {
                    "reference": ref.astype(str).value_counts(),
                    "current": cur.astype(str).value_counts(),
                }
            )
            .fillna(0)
            .to_numpy()
        )
        if table.shape[0] < 2:
            return None
        result = stats.chi2_contingency(table)
        name = "chi2_contingency"
    return {
        "test": name,
        "statistic": round(float(result.statistic), 6),
        "pvalue": float(np.format_float_scientific(result.pvalue, precision=4)),
    }


def _num(x: float) -> str:
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:.4g}"


def _profiled_features(view: FeatureView) -> list[tuple[str, str]]:
    """(name, numeric|categorical) of the view's features, pii excluded."""
    from feast.monitoring.metrics_calculator import MetricsCalculator

    pii = set(pii_fields(view))
    out = []
    for f in view.features:
        kind = MetricsCalculator.classify_feature(f.dtype)
        if kind and f.name not in pii:
            out.append((f.name, kind))
    return out


def _window_rows(
    store: FeatureStore,
    view: FeatureView,
    features: list[str],
    window: Window,
    *,
    max_rows: int,
    seed: int,
) -> pd.DataFrame:
    from feature_platform.feast_compat import provider

    offline_store = provider(store).offline_store
    df = window_rows_job(
        store.config, offline_store, view, window.start, window.end, features=features
    ).to_df()
    if len(df) > max_rows:
        df = df.sample(max_rows, random_state=seed)
    return df


def _stats(df: pd.DataFrame, name: str, kind: str) -> dict[str, Any]:
    """Feast's own per-window metrics (the ``feast monitor`` calculator).

    Kept a plain dict: its keys are Feast's (``MetricsCalculator``'s numeric
    or categorical metrics, which differ by kind and by Feast version); the
    report reads only ``mean`` and ``null_rate``, with ``.get``."""
    import pyarrow as pa
    from feast.monitoring.metrics_calculator import MetricsCalculator

    calc = MetricsCalculator()
    column = pa.array(df[name].tolist(), from_pandas=True)
    if kind == "numeric":
        column = column.cast(pa.float64())
        metrics = calc.compute_numeric(column)
    else:
        metrics = calc.compute_categorical(column.cast(pa.string()))
    metrics.pop("histogram", None)
    metrics.pop("feature_type", None)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}


def drift(
    store: FeatureStore,
    views: Sequence[FeatureView],
    *,
    reference: Window,
    current: Window,
    max_rows: int = MAX_ROWS_PER_WINDOW,
    seed: int = 0,
    newest: dict[str, datetime | None] | None = None,
) -> dict[str, dict[str, FeatureDrift]]:
    """PSI per feature between the reference and the current window (source
    rows): view -> feature -> drift.

    ``newest`` (if given) receives each view's newest event in the current window.
    """
    out: dict[str, dict[str, FeatureDrift]] = {}
    newest = newest if newest is not None else {}
    for view in views:
        feats = _profiled_features(view)
        if not feats:
            continue
        names = [n for n, _ in feats]
        ref = _window_rows(store, view, names, reference, max_rows=max_rows, seed=seed)
        cur = _window_rows(store, view, names, current, max_rows=max_rows, seed=seed)
        ts = batch_source(view).timestamp_field
        if len(cur) and ts in cur.columns:
            newest[view.name] = as_utc(cur[ts].max().to_pydatetime())
        per: dict[str, FeatureDrift] = {}
        for name, kind in feats:
            result: Psi
            if kind == "numeric":
                result = psi_numeric(
                    ref[name].astype("float64"), cur[name].astype("float64")
                )
            else:
                result = psi_categorical(ref[name], cur[name])
            psi = result["psi"]
            per[name] = {
                "kind": kind,
                **result,
                "two_sample": two_sample_test(ref[name], cur[name], kind),
                "drifted": psi is not None and psi > PSI_THRESHOLD,
                "rows": {"reference": len(ref), "current": len(cur)},
                "reference_stats": _stats(ref, name, kind) if len(ref) else {},
                "current_stats": _stats(cur, name, kind) if len(cur) else {},
            }
        out[view.name] = per
    return out


def reference_outputs(
    store: FeatureStore,
    view: OnDemandFeatureView,
    requests: pd.DataFrame,
    window: Window,
    *,
    max_rows: int = MAX_ROWS_PER_WINDOW,
    seed: int = 0,
) -> pd.DataFrame:
    """The view's outputs over its reference requests in ``window``: the rows'
    entity keys, ``event_timestamp`` and request fields through Feast's
    ``get_historical_features`` (the same function, the stored inputs as of
    each row's time: what a training set of the view holds)."""
    from feature_platform.utc import ensure_utc_column

    keys: list[str] = []
    for projection in view.source_feature_view_projections.values():
        for column in store.get_feature_view(projection.name).entity_columns:
            if column.name not in keys:
                keys.append(column.name)
    fields = [
        f.name for source in view.source_request_sources.values() for f in source.schema
    ]
    columns = [*keys, "event_timestamp", *fields]
    missing = [c for c in columns if c not in requests.columns]
    if missing:
        raise ValueError(
            f"reference requests of {view.name!r} lack column(s) {missing}"
        )
    rows = ensure_utc_column(requests[columns], "event_timestamp")
    ts = rows["event_timestamp"]
    rows = rows[(ts >= window.start) & (ts < window.end)]
    if len(rows) > max_rows:
        rows = rows.sample(max_rows, random_state=seed)
    outputs = [f.name for f in view.features]
    if rows.empty:
        return rows.assign(**{o: [] for o in outputs})
    return store.get_historical_features(
        entity_df=rows.reset_index(drop=True),
        features=[f"{view.name}:{o}" for o in outputs],
    ).to_df()


def on_demand_drift(
    reference: pd.DataFrame,
    served: ServedView | None,
    features: Sequence[str],
    *,
    note: str | None = None,
) -> dict[str, FeatureDrift]:
    """PSI per output between ``reference`` (``reference_outputs``) and the
    served traffic's entry of the view (``traffic.served_traffic``: ``bins``
    and ``nulls`` per output; None: nothing served), on
    ``serving.metrics.OUTPUT_BINS`` plus a null bin. No reference or no served
    value: PSI ``None`` (``note`` says why)."""
    from feature_platform.serving.metrics import OUTPUT_BIN_LABELS, output_bin_counts

    order = [*OUTPUT_BIN_LABELS, NULL_BIN]
    out: dict[str, FeatureDrift] = {}
    for name in features:
        values = [
            None if v is None or v != v else v
            for v in (reference[name].tolist() if name in reference else [])
        ]
        ref_counts: dict[str, float] = dict(output_bin_counts(values))
        ref_counts[NULL_BIN] = values.count(None)
        cur_counts: dict[str, float] = dict(
            served.get("bins", {}).get(name, {}) if served else {}
        )
        cur_counts[NULL_BIN] = served["nulls"].get(name, 0) if served else 0
        result = psi_bins(ref_counts, cur_counts, order=order)
        current = served["values"].get(name, 0) if served else 0
        out[name] = {
            "kind": "numeric",
            **result,
            "drifted": result["psi"] is not None and result["psi"] > PSI_THRESHOLD,
            "rows": {"reference": len(values), "current": current},
            "reference_stats": _stats(reference, name, "numeric") if values else {},
            # served values are counted per bin, not kept: no mean or quantiles
            "current_stats": {"null_rate": round(cur_counts[NULL_BIN] / current, 6)}
            if current
            else {},
            "current_source": "served traffic (feature server /metrics)",
        }
        if note:
            out[name]["note"] = note
    return out
