"""Brute-force reference implementations the platform is tested against.

Deliberately naive (a Python loop per entity row), so they are easy to read and
check by eye; the platform's results must match them cell by cell.
"""

from __future__ import annotations

import pandas as pd


def latest_offline_values(
    source: pd.DataFrame,
    key: str,
    as_of: pd.Timestamp,
    *,
    ttl: pd.Timedelta,
    start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per entity, the newest (event, created) row in [as_of - ttl, as_of]."""
    as_of = pd.Timestamp(as_of)
    lo = as_of - ttl if start is None else max(pd.Timestamp(start), as_of - ttl)
    window = source[
        (source["event_timestamp"] >= lo) & (source["event_timestamp"] <= as_of)
    ]
    order = ["event_timestamp"] + (
        ["created_timestamp"] if "created_timestamp" in source.columns else []
    )
    return (
        window.sort_values(order)
        .groupby(key, as_index=False)
        .tail(1)
        .reset_index(drop=True)
    )


def pit_join(
    entities: pd.DataFrame,
    source: pd.DataFrame,
    key: str,
    features: list[str],
    *,
    ttl: pd.Timedelta,
    as_known_at: bool = True,
) -> pd.DataFrame:
    """For each entity row: the feature row with the newest event time <= ts, within
    ttl (inclusive), and (as known at) created time <= ts; created time breaks ties.
    Entity rows without a match keep nulls. Row order and count are preserved."""
    has_created = "created_timestamp" in source.columns
    by_key = {k: g for k, g in source.groupby(key)}
    out = []
    for _, row in entities.iterrows():
        ts = row["event_timestamp"]
        values = {f: None for f in features}
        group = by_key.get(row[key])
        if group is not None:
            ok = (group["event_timestamp"] <= ts) & (
                group["event_timestamp"] >= ts - ttl
            )
            if as_known_at and has_created:
                ok &= group["created_timestamp"] <= ts
            cand = group[ok]
            if not cand.empty:
                order = ["event_timestamp"] + (
                    ["created_timestamp"] if has_created else []
                )
                best = cand.sort_values(order).iloc[-1]
                values = {f: best[f] for f in features}
        out.append({**row.to_dict(), **values})
    return pd.DataFrame(out)


def checkout_value(
    entities: pd.DataFrame,
    source: pd.DataFrame,
    *,
    ttl: pd.Timedelta,
) -> pd.DataFrame:
    """The ``checkout_value`` on-demand view, brute force: per entity row (with
    ``customer_id``, ``event_timestamp`` and the request's ``cart_value``), the
    customer's stored row by ``pit_join`` (null past ``ttl``), then the three
    outputs by the definitions written out again, one row at a time.
    Returns the entity rows with the stored inputs and the outputs; nulls are
    ``None``."""
    stored = ["avg_order_amount", "lifetime_value", "total_orders"]
    joined = pit_join(entities, source, "customer_id", stored, ttl=ttl)

    def value(x):
        return None if x is None or pd.isna(x) else x

    rows = []
    for _, row in joined.iterrows():
        cart = value(row["cart_value"])
        avg = value(row["avg_order_amount"])
        ltv = value(row["lifetime_value"])
        orders = value(row["total_orders"])
        if cart is not None and avg is not None and avg != 0:
            ratio = cart / avg
        else:
            ratio = None
        if cart is not None and ltv is not None and (ltv + cart) != 0:
            share = cart / (ltv + cart)
        else:
            share = None
        if orders is None:
            first = None
        elif orders == 0:
            first = 1
        else:
            first = 0
        rows.append(
            {
                **row.to_dict(),
                "avg_order_amount": avg,
                "lifetime_value": ltv,
                "total_orders": None if orders is None else int(orders),
                "cart_to_avg_ratio": ratio,
                "cart_share_of_lifetime": share,
                "is_first_order": first,
            }
        )
    return pd.DataFrame(rows)
