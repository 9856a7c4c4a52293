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
