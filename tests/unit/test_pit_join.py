"""The fast point-in-time join against the brute-force reference, adversarially."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_platform.pit import pit_join
from tests.reference import pit_join as reference_pit_join

T0 = pd.Timestamp("2026-03-10T12:00:00Z")
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)
FEATURES = ["total_orders", "avg_order_amount", "label"]


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    out = df.reset_index(drop=True).copy()
    for col in ("total_orders", "avg_order_amount"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    out["label"] = out["label"].astype(object).where(out["label"].notna(), None)
    return out


def _check(entities, source, *, ttl, as_known_at=True):
    got = pit_join(
        entities, source, "customer_id", FEATURES, ttl=ttl, as_known_at=as_known_at
    )
    expected = reference_pit_join(
        entities, source, "customer_id", FEATURES, ttl=ttl, as_known_at=as_known_at
    )
    assert len(got) == len(entities)
    assert list(got.columns) == [*entities.columns, *FEATURES]
    pd.testing.assert_frame_equal(_norm(got), _norm(expected), check_dtype=False)
    return got


def _row(cid, event, created, orders, amount=1.0, label="x"):
    return {
        "customer_id": cid,
        "event_timestamp": event,
        "created_timestamp": created,
        "total_orders": orders,
        "avg_order_amount": amount,
        "label": label,
    }


TRAPS = pd.DataFrame(
    [
        _row(1, T0 - 2 * H, T0 - 2 * H, 10),  # tie on event time:
        _row(1, T0 - 2 * H, T0 - 1 * H, 11),  # the later created wins
        _row(2, T0 - 3 * D, T0 - 3 * D, 20),  # exactly at the ttl edge: valid
        _row(2, T0 - 3 * D - pd.Timedelta(seconds=1), T0 - 3 * D, 19),
        _row(3, T0 - 3 * D - H, T0 - 3 * D - H, 30),  # only older than ttl
        _row(4, T0 - 5 * H, T0 - 5 * H, 40),  # a late row must not leak ...
        _row(4, T0 - 1 * H, T0 + 2 * H, 41),  # ... before it arrived
        _row(5, T0, T0, 50),  # event exactly at ts: valid
        _row(5, T0 + H, T0 + H, 51),  # future: never
        _row(6, T0 - 2 * D, T0 - 2 * D, 60, amount=12.0),
        _row(6, T0 - 1 * D, T0 - 1 * D, 61, amount=None, label=None),  # nulls stay
        # 7: a late row with an older event arriving after a newer on-time row.
        _row(7, T0 - 4 * H, T0 - 4 * H, 70),
        _row(7, T0 - 6 * H, T0 - 1 * H, 71),
        # 8: a late row that is the newest event once it has arrived.
        _row(8, T0 - 9 * H, T0 - 9 * H, 80),
        _row(8, T0 - 3 * H, T0 - 2 * H, 81),
        # 9: a late row within ttl by event time, arriving long after.
        _row(9, T0 - 3 * D, T0 - H, 90),
    ]
)
ENTITIES = pd.DataFrame(
    {
        "customer_id": [1, 2, 3, 4, 5, 6, 6, 999, 1, 2, 4, 7, 8, 8, 9, 9],
        "event_timestamp": [T0] * 8
        + [
            T0 - 3 * H,
            T0 + D,
            T0 + 3 * H,
            T0,
            T0 - 2 * H,
            T0 - 150 * pd.Timedelta(minutes=1),
            T0,
            T0 + H,
        ],
        "churned": list(range(16)),
    }
)


def test_traps_match_reference() -> None:
    got = _check(ENTITIES, TRAPS, ttl=3 * D)

    def orders(cid: int, ts: pd.Timestamp):
        hit = got[(got["customer_id"] == cid) & (got["event_timestamp"] == ts)]
        return hit["total_orders"].iloc[0]

    assert orders(1, T0) == 11  # created time breaks the tie
    assert orders(2, T0) == 20  # ttl edge inclusive
    assert pd.isna(orders(3, T0))  # outside ttl
    assert orders(4, T0) == 40  # late row not known yet
    assert orders(4, T0 + 3 * H) == 41  # ... known later
    assert orders(5, T0) == 50  # no future leakage
    assert orders(7, T0) == 70  # newer event beats a late older one
    assert orders(8, T0 - 2 * H) == 81
    assert pd.isna(orders(999, T0))  # unknown entity kept


@pytest.mark.parametrize("as_known_at", [True, False])
def test_traps_without_as_known_at(as_known_at: bool) -> None:
    _check(ENTITIES, TRAPS, ttl=3 * D, as_known_at=as_known_at)


@pytest.mark.parametrize(
    ("seed", "with_created", "as_known_at", "ttl"),
    [
        (1, True, True, 24 * H),
        (2, True, False, 24 * H),
        (3, False, True, 12 * H),
        (4, True, True, 7 * H),
        (5, True, True, None),
        (6, False, False, 1 * H),
    ],
)
def test_random_adversarial_matches_reference(
    seed: int, with_created: bool, as_known_at: bool, ttl
) -> None:
    """Hour-granular times: ties, ttl edges and late rows happen constantly."""
    rng = np.random.default_rng(seed)
    n, keys = 600, 25
    ev = T0 + pd.to_timedelta(rng.integers(-72, 1, n), unit="h")
    lag = rng.choice([0, 0, 0, 1, 3, 10, -2], n)
    source = pd.DataFrame(
        {
            "customer_id": rng.integers(0, keys, n),
            "event_timestamp": ev,
            "created_timestamp": ev + pd.to_timedelta(lag, unit="h"),
            "total_orders": rng.integers(0, 1000, n),
            "avg_order_amount": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "label": rng.choice(["a", "b", None], n),
        }
    )
    order = ["customer_id", "event_timestamp"]
    if with_created:
        order.append("created_timestamp")
    else:
        source = source.drop(columns=["created_timestamp"])
    # A full duplicate of (key, event[, created]) has no defined winner: keep one.
    source = source.drop_duplicates(order).sample(frac=1, random_state=seed)
    m = 400
    entities = pd.DataFrame(
        {
            "customer_id": rng.integers(-2, keys + 2, m),  # some unknown keys
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(-80, 5, m), unit="h"),
            "churned": rng.integers(0, 2, m),
        }
    )
    entities = pd.concat([entities, entities.head(30)], ignore_index=True)  # dupes
    effective_ttl = ttl if ttl is not None else pd.Timedelta(days=10_000)
    got = pit_join(
        entities, source, "customer_id", FEATURES, ttl=ttl, as_known_at=as_known_at
    )
    expected = reference_pit_join(
        entities,
        source,
        "customer_id",
        FEATURES,
        ttl=effective_ttl,
        as_known_at=as_known_at,
    )
    assert len(got) == len(entities)
    pd.testing.assert_frame_equal(_norm(got), _norm(expected), check_dtype=False)
    assert got["total_orders"].notna().sum() > 50  # the case is not vacuous


def test_parquet_path_source(tmp_path: Path) -> None:
    path = tmp_path / "src.parquet"
    TRAPS.to_parquet(path, index=False)
    got = pit_join(ENTITIES, path, "customer_id", FEATURES, ttl=3 * D)
    expected = reference_pit_join(ENTITIES, TRAPS, "customer_id", FEATURES, ttl=3 * D)
    pd.testing.assert_frame_equal(_norm(got), _norm(expected), check_dtype=False)


@pytest.mark.parametrize(
    ("entities", "features", "match"),
    [
        (ENTITIES.drop(columns=["customer_id"]), FEATURES, "customer_id"),
        (ENTITIES, [*FEATURES, "nope"], "nope"),
        (ENTITIES.assign(label=1), FEATURES, "label"),
    ],
)
def test_bad_input_is_a_clear_error(entities, features, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pit_join(entities, TRAPS, "customer_id", features, ttl=3 * D)
