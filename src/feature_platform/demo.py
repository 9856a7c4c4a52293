"""The end-to-end job on one profile: data -> apply -> materialize -> train -> serve."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

from feature_platform.profiles import data_dir, get_store
from feature_platform.sample_data import (
    SampleDataSummary,
    SampleSpec,
    write_sample_data,
)
from feature_platform.utc import utc_now

__all__ = ["DemoSummary", "ensure_sample_data", "run_demo"]

# Regenerate the sample data when it is this much older than a fresh run would
# be, so the online store is never demonstrated with values past the 6 h ttl.
MAX_DATA_AGE = timedelta(hours=1)


def ensure_sample_data(
    directory: Path,
    spec: SampleSpec | None = None,
    *,
    max_age: timedelta = MAX_DATA_AGE,
) -> SampleDataSummary | None:
    """Generate the sources if missing or stale; return the summary if generated."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    drivers = directory / "driver_stats.parquet"
    if drivers.exists() and (directory / "customer_stats.parquet").exists():
        newest = pc.max(pq.read_table(drivers, columns=["event_timestamp"]).column(0))
        # Drivers are snapshotted every 2 h: fresh data has a row within 2 h + age.
        if utc_now() - newest.as_py() < max_age + timedelta(hours=2):
            return None
    return write_sample_data(directory, spec)


class DemoSummary(TypedDict):
    """What ``make demo`` prints: per step its seconds beside what the step's
    own function returned (free-form: each step's summary type differs)."""

    steps: dict[str, dict[str, Any]]
    seconds_total: float


def _shown(location: Path | str) -> str:
    """A path (or a ``sqlite:///`` URI) relative to the working directory when it
    lies under it, so what the demo prints names no machine's directories."""
    text = str(location)
    scheme = "sqlite:///" if text.startswith("sqlite:////") else ""
    path = Path(text.removeprefix(scheme))
    try:
        return scheme + str(path.relative_to(Path.cwd()))
    except ValueError:
        return text


def _fmt(value: float | None, digits: int) -> str:
    return "null" if value is None else f"{value:.{digits}f}"


CHECKOUT_SERVICE = "churn_prediction_service_v2"
CHECKOUT_CART = 80.0  # EUR: the request-time value of the demo's checkout


def run_demo(
    profile: str | None = None,
    *,
    spec: SampleSpec | None = None,
    say: Callable[[str], None] = print,
) -> DemoSummary:
    """Run the whole job and return its summary (what ``make demo`` prints)."""
    import pandas as pd

    from feature_platform.definitions import apply_definitions
    from feature_platform.lineage import CHAMPION
    from feature_platform.materialize import materialize_incremental, materialize_window
    from feature_platform.training import (
        load_registered_model,
        predict_online,
        run_training,
    )

    t0 = time.monotonic()
    steps: dict[str, dict[str, Any]] = {}

    def step(name: str, started: float, info: Any) -> None:
        seconds = round(time.monotonic() - started, 2)
        steps[name] = {"seconds": seconds, **(info or {})}

    t = time.monotonic()
    directory = data_dir()
    generated = ensure_sample_data(directory, spec)
    say(
        "[1/6] sample data: "
        + (f"generated {generated['rows']}" if generated else "up to date")
        + f" in {_shown(directory)}"
    )
    step("data", t, {"generated": bool(generated), **(generated or {})})

    t = time.monotonic()
    store = get_store(profile)
    applied = apply_definitions(store)
    say(f"[2/6] apply: project {applied.project!r}, {applied.objects['feature_views']}")
    step("apply", t, applied.summary())

    t = time.monotonic()
    now = utc_now().replace(microsecond=0)

    def progress(view: str, done: int, total: int) -> None:
        say(f"      {view}: {done}/{total} rows written")

    if generated and any(v.most_recent_end_time for v in store.list_feature_views()):
        # Fresh data replaced the old files: rebuild the online store from the
        # last ttl window instead of continuing from the old watermark.
        longest = max(v.ttl for v in store.list_feature_views() if v.ttl)
        mat = materialize_window(store, now - longest, now, progress=progress)
    else:
        mat = materialize_incremental(store, now, progress=progress)
    rows = {k: v["rows"] for k, v in mat["views"].items()}
    say(f"[3/6] materialize up to {now.isoformat()}: rows written {rows}")
    step("materialize", t, mat)

    t = time.monotonic()
    labels = pd.read_parquet(directory / "churn_labels.parquet")
    say(f"[4/6] training on {len(labels)} labelled entity rows (PIT join + GBC)...")
    trained = run_training(store, labels)
    m, reg = trained["metrics"], trained["registered"]
    say(
        f"      ROC AUC {m['roc_auc']} (baseline 0.5), log loss {m['log_loss']} "
        f"(baseline {m['baseline_log_loss']}), train/test rows "
        f"{trained['rows']['train']}/{trained['rows']['test']}"
    )
    say(
        f"      MLflow run {reg['run_id'][:8]}: registered {reg['model_name']} "
        f"v{reg['version']}{''.join(' @' + a for a in reg['aliases'])} "
        f"({reg['seconds']} s)"
    )
    step("train", t, trained)

    t = time.monotonic()
    # The prediction path: the registered champion, and its feature service.
    bundle = load_registered_model(reg["model_name"], CHAMPION, store=store)
    service = bundle.metadata["feature_service"]
    customers = sorted(labels["customer_id"].unique().tolist())[:5]
    preds = predict_online(store, bundle, [{"customer_id": int(c)} for c in customers])
    say(f"[5/6] online features via {service} + {reg['model_name']} @{CHAMPION}:")
    for row in preds:
        say(
            f"      customer {row['customer_id']}: orders={row['total_orders']} "
            f"ltv={_fmt(row['lifetime_value'], 2)} "
            f"risk={_fmt(row['churn_risk_score'], 3)} "
            f"-> churn p={row['churn_probability']:.3f}"
        )
    step("online", t, {"predictions": preds})

    t = time.monotonic()
    # At checkout: the model on churn_prediction_service_v2 also reads the
    # on-demand checkout_value features, computed from the request's cart value.
    checkout = run_training(store, labels, feature_service=CHECKOUT_SERVICE)
    creg = checkout["registered"]
    checkout_model = load_registered_model(
        creg["model_name"], str(creg["version"]), store=store
    )
    request = {"customer_id": int(customers[0]), "cart_value": CHECKOUT_CART}
    [scored] = predict_online(store, checkout_model, [request])
    say(
        f"[6/6] at checkout via {CHECKOUT_SERVICE} ({creg['model_name']} "
        f"v{creg['version']}, ROC AUC {checkout['metrics']['roc_auc']}): customer "
        f"{request['customer_id']}, cart {CHECKOUT_CART:.2f} EUR -> "
        f"cart/avg={_fmt(scored['cart_to_avg_ratio'], 2)} "
        f"share={_fmt(scored['cart_share_of_lifetime'], 3)} "
        f"first_order={scored['is_first_order']} "
        f"-> churn p={scored['churn_probability']:.3f}"
    )
    step("checkout", t, {"request": request, "prediction": scored, **checkout})
    summary: DemoSummary = {
        "steps": steps,
        "seconds_total": round(time.monotonic() - t0, 2),
    }
    say(
        f"done in {summary['seconds_total']} s; "
        f"model registry {_shown(reg['tracking_uri'])}"
    )
    return summary
