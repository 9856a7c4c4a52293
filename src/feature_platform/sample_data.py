"""Deterministic, realistic source data with a learnable churn label.

The generator simulates each customer's daily order process (a base order rate
with a personal trend: some customers are fading away), snapshots it once a day
into ``customer_stats`` and labels churn at entity timestamps that are strictly
later than the state the label depends on. Drivers are snapshotted every two
hours. Real-world mess is included on purpose:

* nulls: ``avg_order_amount`` before a first order, a few missing categories,
  risk scores and ratings;
* late rows: ~3 % of customer rows arrive 6-48 h after their event time
  (``created_timestamp``) and rows that would arrive after ``end`` are absent;
* restatements: ~1 % of customer rows are re-sent with the same event time, a
  later ``created_timestamp`` and corrected values (``created_timestamp`` breaks
  the tie in point-in-time joins);
* skipped snapshots, so some entity rows fall outside the 3-day ttl.

Generation is vectorized with numpy and done in blocks of customers, so memory
stays bounded and a million rows take a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from feature_platform.errors import BadInput
from feature_platform.utc import ensure_utc, utc_now

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CATEGORIES",
    "MIN_DAYS",
    "PII_COLUMNS",
    "SampleDataSummary",
    "SampleSpec",
    "generate_customers",
    "generate_drivers",
    "write_sample_data",
]

# Source columns holding personal data (the fields tagged `pii` in feature_repo/).
PII_COLUMNS: dict[str, tuple[str, ...]] = {"customer_stats": ("email",)}
CATEGORIES = ["grocery", "electronics", "fashion", "home", "beauty", "sports"]
_FIRST = ["ana", "ben", "chloe", "dev", "eli", "fatima", "gus", "hana", "ivan", "jo"]
_LAST = ["smith", "garcia", "kim", "muller", "rossi", "nowak", "silva", "khan"]
DRIVER_SLOT_HOURS = 2
_BLOCK = 20_000  # customers per generation block
# Labels depend on the previous full day's state, so two days is the minimum;
# labels start after a 14-day warm-up when the history is long enough.
MIN_DAYS = 2
_LABEL_WARMUP_DAYS = 14


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. ``end`` is the newest possible timestamp (default: now)."""

    customers: int = 10_000
    drivers: int = 1_000
    days: int = 90
    seed: int = 42
    end: datetime | None = None
    labels_per_customer: int = 2

    def __post_init__(self) -> None:
        for name, minimum in (
            ("customers", 1),
            ("drivers", 1),
            ("days", MIN_DAYS),
            ("seed", 0),
            ("labels_per_customer", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < minimum:
                raise BadInput(f"{name} must be an integer >= {minimum}, got {value!r}")

    def resolved_end(self) -> datetime:
        end = ensure_utc(self.end, "end") if self.end else utc_now()
        return end.replace(minute=0, second=0, microsecond=0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def _ts(end: datetime, offsets_s: np.ndarray) -> pd.Series:
    """UTC timestamps (µs) at ``end - offsets_s`` seconds."""
    import numpy as np
    import pandas as pd

    end_us = np.int64(int(end.timestamp()) * 1_000_000)
    values = end_us - (offsets_s * 1_000_000).astype("int64")
    return pd.Series(pd.to_datetime(values, unit="us", utc=True))


def _emails(ids: np.ndarray) -> np.ndarray:
    """A deterministic, unique e-mail address per customer id (no rng draws)."""
    import numpy as np

    return np.array(
        [
            f"{_FIRST[i % len(_FIRST)]}.{_LAST[i // len(_FIRST) % len(_LAST)]}.{i}"
            "@example.com"
            for i in ids.tolist()
        ],
        dtype=object,
    )


def _customer_block(
    spec: SampleSpec, end: datetime, first_id: int, n: int, block: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([spec.seed, 1, block])
    days = spec.days
    ids = np.arange(first_id, first_id + n, dtype=np.int64)

    # Latent behaviour: order rate, trend (30 % are fading), basket size.
    rate = rng.lognormal(math.log(0.25), 0.6, n)
    fading = rng.random(n) < 0.3
    trend = np.where(fading, rng.uniform(-0.06, -0.01, n), rng.uniform(-0.005, 0.01, n))
    basket = rng.lognormal(math.log(40.0), 0.4, n)
    k = np.arange(days)
    daily_rate = rate[:, None] * np.exp(trend[:, None] * k[None, :])
    orders = rng.poisson(daily_rate)
    prior_orders = rng.poisson(rate * 60)
    total = prior_orders[:, None] + np.cumsum(orders, axis=1)
    spend = orders * basket[:, None] * rng.lognormal(0, 0.2, (n, days))
    ltv = prior_orders[:, None] * basket[:, None] + np.cumsum(spend, axis=1)
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(orders, axis=1)], axis=1)
    recent14 = csum[:, 1:] - csum[:, np.maximum(k + 1 - 14, 0)]
    risk_logit = 1.4 - 1.3 * np.log1p(recent14) - 30.0 * trend[:, None]
    observed_risk = _sigmoid(risk_logit + rng.normal(0, 0.6, (n, days)))

    prefs = rng.integers(0, len(CATEGORIES), n)
    switch = rng.random((n, days)) < 0.01
    category_idx = (prefs[:, None] + np.cumsum(switch, axis=1)) % len(CATEGORIES)

    # Daily snapshot at a random hour; ~25 % of days have no snapshot.
    present = rng.random((n, days)) < 0.75
    ci, di = np.nonzero(present)
    day_offset_s = (days - di) * 86_400 - rng.uniform(0, 23 * 3600, ci.size)
    delay_s = rng.exponential(1800, ci.size)
    late = rng.random(ci.size) < 0.03
    delay_s = np.where(late, rng.uniform(6 * 3600, 48 * 3600, ci.size), delay_s)
    keep = delay_s <= day_offset_s  # rows that have not arrived by `end` are absent
    ci, di, day_offset_s, delay_s = (
        ci[keep],
        di[keep],
        day_offset_s[keep],
        delay_s[keep],
    )

    tot = total[ci, di]
    amount = np.where(tot > 0, ltv[ci, di] / np.maximum(tot, 1), np.nan)
    risk = observed_risk[ci, di].astype(np.float32)
    risk[rng.random(ci.size) < 0.01] = np.nan
    cats = np.array(CATEGORIES, dtype=object)[category_idx[ci, di]]
    cats[rng.random(ci.size) < 0.03] = None
    frame = pd.DataFrame(
        {
            "customer_id": ids[ci],
            "event_timestamp": _ts(end, day_offset_s),
            "created_timestamp": _ts(end, day_offset_s - delay_s),
            "total_orders": tot.astype(np.int64),
            "avg_order_amount": np.round(amount, 2),
            "lifetime_value": np.round(ltv[ci, di], 2),
            "preferred_category": cats,
            "churn_risk_score": risk,
            # Personal data (tagged `pii` in the definitions): raw here, as in
            # the upstream warehouse; the platform masks it before any store.
            "email": _emails(ids)[ci],
        }
    )
    # Restatements: same event time, later created_timestamp, corrected values.
    restated = frame.sample(frac=0.01, random_state=int(rng.integers(1 << 31)))
    restated = restated.assign(
        created_timestamp=restated["created_timestamp"] + pd.Timedelta(hours=2),
        lifetime_value=(restated["lifetime_value"] * 1.01).round(2),
    )
    restated = restated[restated["created_timestamp"] <= pd.Timestamp(end)]
    frame = pd.concat([frame, restated], ignore_index=True)

    # Labels: churn observed at entity time t, driven by the latent state of the
    # last full day before t (strictly earlier than t).
    m = spec.labels_per_customer
    li = np.repeat(np.arange(n), m)
    # Day index whose start <= t: after the warm-up, or the second half of a
    # history too short for it; never day 0 (its state would precede the data).
    first_label_day = (
        _LABEL_WARMUP_DAYS if days > _LABEL_WARMUP_DAYS else max(1, days // 2)
    )
    label_day = rng.integers(first_label_day, days, li.size)
    t_offset_s = (days - label_day) * 86_400 - rng.uniform(0, 86_400, li.size)
    state_day = label_day - 1
    p = _sigmoid(2.2 * risk_logit[li, state_day] - 1.0)
    churned = (rng.random(li.size) < p).astype(np.int64)
    # The cart at the labelled checkout (request data of churn service v2): the
    # customer's basket size with per-order noise. Its own random stream, so
    # the columns above are what they were before it existed.
    carts = np.random.default_rng([spec.seed, 3, block])
    cart_value = np.round(basket[li] * carts.lognormal(0, 0.5, li.size), 2)
    labels = pd.DataFrame(
        {
            "customer_id": ids[li],
            "event_timestamp": _ts(end, t_offset_s),
            "churned": churned,
            "cart_value": cart_value,
        }
    )
    return frame, labels


def generate_customers(spec: SampleSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``customer_stats`` source rows and labelled entity rows (``churned``)."""
    import pandas as pd

    end = spec.resolved_end()
    stats, labels = [], []
    for block, first in enumerate(range(0, spec.customers, _BLOCK)):
        n = min(_BLOCK, spec.customers - first)
        s, lab = _customer_block(spec, end, 1_000_000 + first, n, block)
        stats.append(s)
        labels.append(lab)
    stats_df = pd.concat(stats, ignore_index=True)
    labels_df = pd.concat(labels, ignore_index=True)
    stats_df = stats_df.sort_values(["event_timestamp", "customer_id"], kind="stable")
    labels_df = labels_df.sort_values(["event_timestamp", "customer_id"], kind="stable")
    return stats_df.reset_index(drop=True), labels_df.reset_index(drop=True)


def generate_drivers(spec: SampleSpec) -> pd.DataFrame:
    """``driver_stats`` source rows: one snapshot per driver every two hours."""
    import numpy as np
    import pandas as pd

    end = spec.resolved_end()
    rng = np.random.default_rng([spec.seed, 2])
    n = spec.drivers
    slots = spec.days * 24 // DRIVER_SLOT_HOURS
    ids = np.arange(5_000, 5_000 + n, dtype=np.int64)
    rating0 = np.clip(rng.normal(4.5, 0.3, n), 1, 5)
    rating = np.clip(
        rating0[:, None] + np.cumsum(rng.normal(0, 0.01, (n, slots)), axis=1), 1, 5
    )
    trips = rng.poisson(200, n)[:, None] + np.cumsum(rng.poisson(1.2, (n, slots)), 1)
    accept = np.clip(rng.beta(8, 2, n)[:, None] + rng.normal(0, 0.03, (n, slots)), 0, 1)
    delivery = np.clip(
        rng.normal(28, 6, n)[:, None] + rng.normal(0, 2, (n, slots)), 5, None
    )
    present = rng.random((n, slots)) < 0.9
    di, si = np.nonzero(present)
    offset_s = (slots - si) * DRIVER_SLOT_HOURS * 3600 - rng.uniform(
        0, DRIVER_SLOT_HOURS * 3600 - 60, di.size
    )
    avg_rating = np.round(rating[di, si], 3)
    avg_rating[rng.random(di.size) < 0.01] = np.nan
    delivery_min = delivery[di, si].astype(np.float32)
    delivery_min[rng.random(di.size) < 0.005] = np.nan
    frame = pd.DataFrame(
        {
            "driver_id": ids[di],
            "event_timestamp": _ts(end, offset_s),
            "avg_rating": avg_rating,
            "total_trips": trips[di, si].astype(np.int64),
            "acceptance_rate": np.round(accept[di, si], 4),
            "avg_delivery_time_min": delivery_min,
        }
    )
    return frame.sort_values(
        ["event_timestamp", "driver_id"], kind="stable"
    ).reset_index(drop=True)


class SampleDataSummary(TypedDict):
    """What ``write_sample_data`` wrote."""

    spec: dict[str, Any]  # the SampleSpec's fields (JSON-able)
    rows: dict[str, int]  # per source table
    churn_rate: float
    window: dict[str, str]  # start, end (ISO-8601 UTC)


def write_sample_data(
    data_dir: Path | str, spec: SampleSpec | None = None
) -> SampleDataSummary:
    """Generate all sources into ``data_dir`` as parquet; return a small summary.

    The generators play the upstream system (raw personal data); writing the
    source tables is the ingestion step, and it masks the ``pii`` columns
    (:data:`PII_COLUMNS`, kept equal to the definitions' ``pii`` tags by a test),
    so no store, offline or online, ever holds a raw address, whichever tool
    materializes it (plain ``feast materialize`` included).
    """
    from feature_platform.pii import mask_frame as mask_pii_frame

    spec = spec or SampleSpec()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    customers, labels = generate_customers(spec)
    customers = mask_pii_frame(customers, PII_COLUMNS["customer_stats"])
    drivers = generate_drivers(spec)
    files = {
        "customer_stats": (customers, data_dir / "customer_stats.parquet"),
        "driver_stats": (drivers, data_dir / "driver_stats.parquet"),
        "churn_labels": (labels, data_dir / "churn_labels.parquet"),
    }
    for frame, path in files.values():
        tmp = path.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False, coerce_timestamps="us")
        tmp.replace(path)  # atomic: readers never see a half-written file
    end = spec.resolved_end()
    return {
        "spec": {**asdict(spec), "end": end.isoformat()},
        "rows": {name: len(frame) for name, (frame, _) in files.items()},
        "churn_rate": round(float(labels["churned"].mean()), 4),
        "window": {
            "start": (end - timedelta(days=spec.days)).isoformat(),
            "end": end.isoformat(),
        },
    }
