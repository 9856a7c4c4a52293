"""Point-in-time training set -> train -> evaluate -> model artifact + metrics.

Leakage rules enforced here:

* features are read only through a feature service (the model's contract);
* the join is *as known at* the entity timestamp: a feature row counts only if
  its event time and its created (arrival) time are both <= the entity
  timestamp (``filter_by_created_timestamp=True``), so late-arriving rows cannot
  leak into training;
* entity rows outside the training window are dropped before the join;
* the evaluation split is strictly later in time than the training split.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.config import ensure_utc, ensure_utc_column, utc_now

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from sklearn.pipeline import Pipeline

__all__ = [
    "ENTITY_TS",
    "GateError",
    "ModelBundle",
    "build_training_set",
    "evaluate_model",
    "feature_service_features",
    "load_model",
    "predict_online",
    "publish_model",
    "roc_curve_points",
    "save_model",
    "time_split",
    "train_model",
]

log = logging.getLogger(__name__)
ENTITY_TS = "event_timestamp"
DEFAULT_SERVICE = "churn_prediction_service"
DEFAULT_LABEL = "churned"


def feature_service_features(store: FeatureStore, service: str) -> list[str]:
    """The feature names a feature service serves, in the service's order."""
    fs = store.get_feature_service(service)
    return [f.name for proj in fs.feature_view_projections for f in proj.features]


def _entity_keys(store: FeatureStore, service: str) -> list[str]:
    fs = store.get_feature_service(service)
    keys: list[str] = []
    for proj in fs.feature_view_projections:
        view = store.get_feature_view(proj.name)
        for col in view.entity_columns:
            if col.name not in keys:
                keys.append(col.name)
    return keys


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
    feature value was valid at that time.
    """
    entity_df = ensure_utc_column(entity_df, ENTITY_TS)
    keys = _entity_keys(store, feature_service)
    missing = [k for k in keys if k not in entity_df.columns]
    if missing:
        raise ValueError(
            f"entity rows lack key column(s) {missing} needed by {feature_service!r}"
        )
    mask = entity_df[ENTITY_TS].notna()
    if start is not None:
        mask &= entity_df[ENTITY_TS] >= ensure_utc(start, "start")
    if end is not None:
        mask &= entity_df[ENTITY_TS] < ensure_utc(end, "end")
    rows = entity_df.loc[mask].reset_index(drop=True)
    if rows.empty:
        raise ValueError("no entity rows inside the training window")
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
    from feature_platform.governance import mask_pii_frame, pii_fields

    fs = store.get_feature_service(service)
    columns = [f for proj in fs.feature_view_projections for f in pii_fields(proj)]
    return mask_pii_frame(df, columns)


def time_split(
    df: pd.DataFrame, *, test_fraction: float = 0.25
) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Split by time: every test row is strictly later than every train row."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    ts = df[ENTITY_TS]
    cutoff = ts.sort_values().iloc[int(len(ts) * (1 - test_fraction))]
    train, test = df[ts < cutoff], df[ts >= cutoff]
    if train.empty or test.empty:
        raise ValueError("time split left an empty side; need more distinct timestamps")
    return (
        train.reset_index(drop=True),
        test.reset_index(drop=True),
        cutoff.to_pydatetime(),
    )


def _xy(df: pd.DataFrame, features: list[str], label: str) -> tuple[Any, Any]:
    import numpy as np

    x = df[features].astype("float64").to_numpy()
    y = df[label].astype(np.int64).to_numpy()
    return x, y


def train_model(
    train_df: pd.DataFrame,
    features: list[str],
    *,
    label: str = DEFAULT_LABEL,
    n_estimators: int = 200,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    random_state: int = 0,
) -> Pipeline:
    """GradientBoostingClassifier behind a median imputer (features can be null)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    non_numeric = [
        f
        for f in features
        if train_df[f].dtype == object or str(train_df[f].dtype) == "string"
    ]
    if non_numeric:
        raise ValueError(f"train_model needs numeric features; got {non_numeric}")
    x, y = _xy(train_df, features, label)
    if len(set(y.tolist())) < 2:
        raise ValueError(f"label {label!r} has a single class in the training split")
    model = Pipeline(
        [
            (
                "impute",
                SimpleImputer(
                    strategy="median", add_indicator=True, keep_empty_features=True
                ),
            ),
            (
                "gbc",
                GradientBoostingClassifier(
                    n_estimators=n_estimators,
                    learning_rate=learning_rate,
                    max_depth=max_depth,
                    random_state=random_state,
                ),
            ),
        ]
    )
    model.fit(x, y)
    return model


def evaluate_model(
    model: Pipeline,
    test_df: pd.DataFrame,
    features: list[str],
    *,
    label: str = DEFAULT_LABEL,
) -> dict[str, Any]:
    """ROC AUC and log loss on held-out rows, next to a prior-only baseline."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

    x, y = _xy(test_df, features, label)
    proba = model.predict_proba(x)[:, 1]
    prior = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    tn, fp, fn, tp = confusion_matrix(
        y, (proba >= 0.5).astype(int), labels=[0, 1]
    ).ravel()
    return {
        "rows": int(len(y)),
        "positive_rate": round(float(y.mean()), 4),
        "roc_auc": round(float(roc_auc_score(y, proba)), 4),
        "log_loss": round(float(log_loss(y, proba, labels=[0, 1])), 4),
        "baseline_roc_auc": 0.5,
        "baseline_log_loss": round(
            float(log_loss(y, np.full(len(y), prior), labels=[0, 1])), 4
        ),
        "confusion_matrix": {
            "tn": int(tn),
            "fp": int(fp),
            "fn": int(fn),
            "tp": int(tp),
        },
    }


def roc_curve_points(
    model: Pipeline,
    test_df: pd.DataFrame,
    features: list[str],
    *,
    label: str = DEFAULT_LABEL,
    max_points: int = 50,
) -> dict[str, list[float]]:
    """ROC curve on held-out rows, thinned to at most ``max_points`` points.

    Thresholds are clipped to [0, 1] (sklearn starts at +inf, which JSON and
    KFP's ClassificationMetrics cannot hold).
    """
    import numpy as np
    from sklearn.metrics import roc_curve

    x, y = _xy(test_df, features, label)
    fpr, tpr, thresholds = roc_curve(y, model.predict_proba(x)[:, 1])
    n = min(max_points, len(fpr))
    keep = np.unique(np.linspace(0, len(fpr) - 1, n).astype(int))
    return {
        "fpr": [round(float(v), 4) for v in fpr[keep]],
        "tpr": [round(float(v), 4) for v in tpr[keep]],
        "thresholds": [round(float(v), 4) for v in np.clip(thresholds[keep], 0.0, 1.0)],
    }


@dataclass
class ModelBundle:
    model: Pipeline
    metadata: dict[str, Any] = field(default_factory=dict)


def save_model(bundle: ModelBundle, directory: Path | str) -> Path:
    """Write ``model.joblib`` + ``metadata.json`` into ``directory``."""
    import joblib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle.model, directory / "model.joblib")
    (directory / "metadata.json").write_text(
        json.dumps(bundle.metadata, indent=2, default=str)
    )
    return directory


def load_model(directory: Path | str) -> ModelBundle:
    import joblib

    directory = Path(directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    return ModelBundle(model=joblib.load(directory / "model.joblib"), metadata=metadata)


def model_metadata(
    store: FeatureStore,
    *,
    feature_service: str,
    features: list[str],
    label: str,
    window: dict[str, str],
    cutoff: datetime,
    hyperparameters: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    registry = store.config.registry
    return {
        "feature_service": feature_service,
        "features": features,
        "label": label,
        "training_window": window,
        "test_split_starts_at": cutoff.isoformat(),
        "project": store.project,
        "registry": _redact(getattr(registry, "path", "")),
        "hyperparameters": hyperparameters,
        "metrics": metrics,
        "created_at": utc_now().isoformat(),
    }


def _redact(url: str) -> str:
    """Drop credentials from a database URL before it is written anywhere."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL (file registry): keep as is
        return url


class GateError(ValueError):
    """A model below the quality gate was about to be published."""


def publish_model(
    source: Path | str,
    destination: Path | str,
    *,
    roc_auc: float,
    threshold: float,
) -> dict[str, Any]:
    """Copy a saved model to ``destination`` marked as published, if it passes the gate.

    The gate (``roc_auc >= threshold``) is checked here as well as by the
    pipeline's condition, so a runner that ignored the condition still cannot
    publish a weak model. Returns the published metadata.
    """
    if not roc_auc >= threshold:  # also rejects NaN
        raise GateError(f"ROC AUC {roc_auc} is below the gate threshold {threshold}")
    bundle = load_model(source)
    bundle.metadata.update(
        published=True,
        published_at=utc_now().isoformat(),
        gate={"metric": "roc_auc", "value": roc_auc, "threshold": threshold},
    )
    save_model(bundle, destination)
    return bundle.metadata


def predict_online(
    store: FeatureStore, bundle: ModelBundle, entity_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Fetch online features through the model's feature service and score them."""
    import pandas as pd

    service = bundle.metadata["feature_service"]
    features = bundle.metadata["features"]
    online = store.get_online_features(
        features=store.get_feature_service(service), entity_rows=entity_rows
    ).to_df()
    x = online[features].astype("float64").to_numpy()
    proba = bundle.model.predict_proba(x)[:, 1]
    out = online.assign(churn_probability=proba.round(4))
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in out.to_dict(orient="records")
    ]


def run_training(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    *,
    model_dir: Path | str,
    feature_service: str = DEFAULT_SERVICE,
    label: str = DEFAULT_LABEL,
    start: datetime | None = None,
    end: datetime | None = None,
    test_fraction: float = 0.25,
    n_estimators: int = 200,
    learning_rate: float = 0.1,
    max_depth: int = 3,
) -> dict[str, Any]:
    """The whole training job; returns a JSON-able summary and writes the model."""
    if label not in entity_df.columns:
        raise ValueError(f"entity rows have no label column {label!r}")
    features = feature_service_features(store, feature_service)
    data = build_training_set(
        store, entity_df, feature_service=feature_service, start=start, end=end
    )
    train, test, cutoff = time_split(data, test_fraction=test_fraction)
    model = train_model(
        train,
        features,
        label=label,
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        max_depth=max_depth,
    )
    hyper = {
        "n_estimators": n_estimators,
        "learning_rate": learning_rate,
        "max_depth": max_depth,
    }
    metrics = evaluate_model(model, test, features, label=label)
    window = {
        "start": (start or data[ENTITY_TS].min()).isoformat(),
        "end": (end or data[ENTITY_TS].max()).isoformat(),
    }
    metadata = model_metadata(
        store,
        feature_service=feature_service,
        features=features,
        label=label,
        window=window,
        cutoff=cutoff,
        hyperparameters=hyper,
        metrics=metrics,
    )
    save_model(ModelBundle(model, metadata), model_dir)
    null_rate = float(data[features].isna().any(axis=1).mean())
    return {
        "model_dir": str(model_dir),
        "feature_service": feature_service,
        "features": features,
        "rows": {"total": len(data), "train": len(train), "test": len(test)},
        "rows_with_null_features": round(null_rate, 4),
        "training_window": window,
        "test_split_starts_at": cutoff.isoformat(),
        "metrics": metrics,
    }
