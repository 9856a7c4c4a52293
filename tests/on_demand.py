"""Offline/online equality of the ``checkout_value`` on-demand view, shared by
the local-profile test (tests/unit) and the services-profile test (real
PostgreSQL + Redis, tests/integration).

One moment ``T`` (the sample data's end). A training set built with
``get_historical_features`` (the request's ``cart_value`` as an entity-frame
column, every row at ``T``) and online reads of the same rows with freshness
judged at ``T`` must agree cell for cell with each other and with the
brute-force reference (``tests.reference.checkout_value``), NULLs included.
Besides the sample customers the source gets customers made for the edges:

* a first order (0 orders, no average yet, nothing spent);
* a row exactly ``ttl`` old at ``T`` (still fresh: every path's bound is
  inclusive) and one a second older (stale: NULL inputs on both paths);
* a row materialized online but long past its ttl at ``T`` (withheld at read,
  so the transformation sees NULL, as the point-in-time join gives offline);
* a customer the store has never seen.

Request values cycle through NULL, an empty cart and ordinary carts; some
customers appear twice with different carts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tests import reference

SERVICE = "churn_prediction_service_v2"
TTL = pd.Timedelta(days=3)
FIRST_ORDER, AT_EDGE, PAST_EDGE, STALE, UNKNOWN = (
    9_000_001,
    9_000_002,
    9_000_003,
    9_000_004,
    9_999_999,
)
CARTS = (None, 0.0, 12.5, 49.99, 230.75, 80.0)
STORED = ("total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score")
OUTPUTS = ("cart_to_avg_ratio", "cart_share_of_lifetime", "is_first_order")


def add_edge_customers(repo: Path, end: datetime) -> pd.DataFrame:
    """Append the edge customers' rows to the repo's customer_stats source;
    returns the whole source as written."""
    path = repo / "data" / "customer_stats.parquet"
    source = pd.read_parquet(path)
    t = pd.Timestamp(end)

    def row(cid: int, event: pd.Timestamp, orders: int, avg: float | None, ltv: float):
        return {
            "customer_id": cid,
            "event_timestamp": event,
            "created_timestamp": event,
            "total_orders": orders,
            "avg_order_amount": avg,
            "lifetime_value": ltv,
            "preferred_category": "books",
            "churn_risk_score": 0.5,
            "email": f"edge{cid}@example.com",
        }

    extra = pd.DataFrame(
        [
            row(FIRST_ORDER, t - pd.Timedelta(hours=2), 0, None, 0.0),
            row(AT_EDGE, t - TTL, 4, 30.0, 120.0),
            row(PAST_EDGE, t - TTL - pd.Timedelta(seconds=1), 5, 20.0, 100.0),
            row(STALE, t - TTL - pd.Timedelta(hours=5), 9, 10.0, 90.0),
        ]
    ).astype(source.dtypes.to_dict())
    out = pd.concat([source, extra], ignore_index=True)
    out.to_parquet(path, index=False)
    return out


def entity_frame(source: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """Every customer of the source plus an unknown one, all at ``end``, with
    cart values cycling through ``CARTS``; the first 20 customers again with
    another cart, and each edge customer with every cart of ``CARTS``."""
    ids = sorted(int(i) for i in source["customer_id"].unique()) + [UNKNOWN]
    ids += ids[:20]
    carts = [CARTS[i % len(CARTS)] for i in range(len(ids))]
    for cid in (FIRST_ORDER, AT_EDGE, PAST_EDGE, STALE, UNKNOWN):
        ids += [cid] * len(CARTS)
        carts += list(CARTS)
    return pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="int64"),
            "event_timestamp": pd.Timestamp(end),
            "cart_value": pd.Series(carts, dtype="float64"),
        }
    )


def _cell(value: Any) -> Any:
    """One cell as a plain Python value; NULL (None, NaN, pd.NA) is None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    return value


def _same(a: Any, b: Any, column: str) -> bool:
    a, b = _cell(a), _cell(b)
    if a is None or b is None:
        return a is None and b is None
    if column in ("total_orders", "is_first_order"):
        return float(a).is_integer() and int(a) == int(b)
    if column == "churn_risk_score":  # Float32: compare as float32
        import numpy as np

        return bool(np.float32(a) == np.float32(b))
    return float(a) == float(b)  # exactly: the same function on the same inputs


@dataclass
class Equality:
    rows: int
    cells: int
    null_cells: int
    first_order_rows: int
    stale_rows: int  # rows whose customer has stored rows, none within ttl
    mismatches: list[str]
    online: dict[str, list[Any]]  # the online answer, for per-case checks
    carts: list[Any]  # the request's cart_value per row
    http_cells: int = 0  # cells compared over HTTP too


def compare(
    offline: pd.DataFrame, online: dict[str, list[Any]], expected: pd.DataFrame
) -> Equality:
    """Cell-for-cell comparison of the three, in entity-frame row order."""
    columns = [*STORED, *OUTPUTS]
    mismatches = []
    cells = nulls = 0
    for col in columns:
        want = expected[col].tolist()
        off = offline[col].tolist()
        on = online[col]
        assert len(want) == len(off) == len(on), col
        for i, (w, f, n) in enumerate(zip(want, off, on, strict=True)):
            cells += 1
            nulls += _cell(w) is None
            if not (_same(w, f, col) and _same(w, n, col)):
                mismatches.append(
                    f"row {i} customer {expected['customer_id'][i]} {col}: "
                    f"reference {w!r} offline {f!r} online {n!r}"
                )
    return Equality(
        rows=len(expected),
        cells=cells,
        null_cells=nulls,
        first_order_rows=int((expected["is_first_order"] == 1).sum()),
        stale_rows=0,
        mismatches=mismatches,
        online=online,
        carts=[_cell(c) for c in expected["cart_value"]],
    )


def _http_read(store, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The same read through the platform's HTTP server (Feast's JSON)."""
    from fastapi.testclient import TestClient

    from feature_platform.server import build_app

    body = {
        "feature_service": SERVICE,
        "entities": {k: [r[k] for r in rows] for k in ("customer_id", "cart_value")},
    }
    with TestClient(build_app(store, max_entity_rows=len(rows))) as client:
        reply = client.post("/get-online-features", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    names = data["metadata"]["feature_names"]
    return {n: r["values"] for n, r in zip(names, data["results"], strict=True)}


def run(store, repo: Path, end: datetime, *, http: bool = False) -> Equality:
    """Materialize, build the training set, read online at ``end`` (Feast's
    sync and async reads, and with ``http`` the platform's HTTP server),
    compare each with the training set and the reference."""
    import asyncio

    from feature_platform.feast_compat import provider
    from feature_platform.freshness import as_of
    from feature_platform.materialize import materialize_window

    source = pd.read_parquet(repo / "data" / "customer_stats.parquet")
    materialize_window(store, end - timedelta(days=4), end, views=["customer_stats"])
    entities = entity_frame(source, end)
    service = store.get_feature_service(SERVICE)

    training = store.get_historical_features(
        entity_df=entities.assign(row_id=range(len(entities))), features=service
    ).to_df()
    training = training.sort_values("row_id").reset_index(drop=True)
    assert training["customer_id"].tolist() == entities["customer_id"].tolist()

    rows = [
        {"customer_id": int(c), "cart_value": _cell(v)}
        for c, v in zip(entities["customer_id"], entities["cart_value"], strict=True)
    ]
    with as_of(end):
        online = store.get_online_features(features=service, entity_rows=rows).to_dict()
        answers = {}
        # Feast's async read, where the store has one (Redis; over HTTP,
        # Feast's endpoint uses it, and the async Redis client is bound to the
        # first event loop that uses it: one or the other).
        if not http and provider(store).async_supported.online.read:
            answers["async"] = asyncio.run(
                store.get_online_features_async(features=service, entity_rows=rows)
            ).to_dict()
    assert online["customer_id"] == entities["customer_id"].tolist()

    expected = reference.checkout_value(entities, source, ttl=TTL)
    # churn_risk_score is served beside the outputs: the reference joins it too.
    risk = reference.pit_join(
        entities, source, "customer_id", ["churn_risk_score"], ttl=TTL
    )
    expected["churn_risk_score"] = risk["churn_risk_score"]
    result = compare(training, online, expected)
    for path, answer in answers.items():
        other = compare(training, answer, expected)
        result.mismatches += [f"{path}: {m}" for m in other.mismatches]
    if http:
        # The server refuses a request value that is null (a 422 naming it),
        # so over HTTP: the rows with a cart value.
        keep = [i for i, r in enumerate(rows) if r["cart_value"] is not None]
        with as_of(end):
            answer = _http_read(store, [rows[i] for i in keep])
        sub = compare(
            training.iloc[keep].reset_index(drop=True),
            answer,
            expected.iloc[keep].reset_index(drop=True),
        )
        result.mismatches += [f"http: {m}" for m in sub.mismatches]
        result.http_cells = sub.cells
    has_row = set(source["customer_id"])
    fresh = {
        int(c)
        for c, t in zip(source["customer_id"], source["event_timestamp"], strict=True)
        if pd.Timestamp(end) - TTL <= t <= pd.Timestamp(end)
    }
    result.stale_rows = sum(
        1 for c in entities["customer_id"] if c in has_row and c not in fresh
    )
    return result


def edge_rows(result: Equality) -> dict[int, list[dict[str, Any]]]:
    """The online answer's rows of the edge customers (with the request's
    ``cart_value``), by customer id."""
    online = result.online
    out: dict[int, list[dict[str, Any]]] = {}
    for i, cid in enumerate(online["customer_id"]):
        if cid in (FIRST_ORDER, AT_EDGE, PAST_EDGE, STALE, UNKNOWN):
            row = {k: v[i] for k, v in online.items()}
            out.setdefault(cid, []).append({**row, "cart_value": result.carts[i]})
    return out


def check_edge_rows(result: Equality) -> None:
    """What the edge customers get (the same online as offline: compared above)."""
    rows = edge_rows(result)
    for row in rows[FIRST_ORDER]:
        assert row["is_first_order"] == 1 and row["cart_to_avg_ratio"] is None
        # the cart is all of the spend; an empty cart (0 / 0) or none: NULL
        share = 1.0 if row["cart_value"] else None
        assert row["cart_share_of_lifetime"] == share
    for row in rows[AT_EDGE]:  # exactly ttl old: still fresh
        assert row["total_orders"] == 4 and row["is_first_order"] == 0
        if row["cart_value"] is not None:
            assert row["cart_to_avg_ratio"] == row["cart_value"] / 30.0
    for cid in (PAST_EDGE, STALE, UNKNOWN):
        for row in rows[cid]:  # past ttl or never seen: NULL inputs and outputs
            assert row["total_orders"] is None, cid
            assert [row[o] for o in OUTPUTS] == [None, None, None], cid
