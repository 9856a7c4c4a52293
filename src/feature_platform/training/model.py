"""The churn model: fit, score held-out rows, predict. Plain scikit-learn on frames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from feature_platform.errors import BadInput
from feature_platform.training.dataset import DEFAULT_LABEL

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = [
    "ConfusionMatrix",
    "Evaluation",
    "Hyperparameters",
    "RocCurve",
    "evaluate_model",
    "hyperparameters",
    "roc_curve_points",
    "train_model",
]


class Hyperparameters(TypedDict):
    """GradientBoostingClassifier settings recorded with the model."""

    n_estimators: int
    learning_rate: float
    max_depth: int


def hyperparameters(
    *, n_estimators: int = 200, learning_rate: float = 0.1, max_depth: int = 3
) -> Hyperparameters:
    """The model's hyperparameters (the defaults are the production model's)."""
    return {
        "n_estimators": int(n_estimators),
        "learning_rate": float(learning_rate),
        "max_depth": int(max_depth),
    }


class ConfusionMatrix(TypedDict):
    tn: int
    fp: int
    fn: int
    tp: int


class Evaluation(TypedDict):
    """Held-out metrics next to a prior-only baseline."""

    rows: int
    positive_rate: float
    roc_auc: float
    log_loss: float
    baseline_roc_auc: float
    baseline_log_loss: float
    confusion_matrix: ConfusionMatrix


class RocCurve(TypedDict):
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


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
        raise BadInput(f"train_model needs numeric features; got {non_numeric}")
    x, y = _xy(train_df, features, label)
    if len(set(y.tolist())) < 2:
        raise BadInput(f"label {label!r} has a single class in the training split")
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
) -> Evaluation:
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
) -> RocCurve:
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
