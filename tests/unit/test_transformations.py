"""The on-demand transformations in feature_repo/transformations.py, as plain
functions, and the on-demand view and service that serve them."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_platform.definitions import load_definitions
from feature_platform.profiles import repo_module

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
OUTPUTS = ("cart_to_avg_ratio", "cart_share_of_lifetime", "is_first_order")
NAN = float("nan")


def checkout_value(rows: list[tuple]) -> list[tuple]:
    """The function over (cart, avg, ltv, orders) rows; output tuples per row."""
    fn = repo_module("transformations", repo=REPO).checkout_value
    cols = list(zip(*rows, strict=True))
    out = fn(
        {
            "cart_value": list(cols[0]),
            "avg_order_amount": list(cols[1]),
            "lifetime_value": list(cols[2]),
            "total_orders": list(cols[3]),
        }
    )
    assert sorted(out) == sorted(OUTPUTS)
    return list(zip(*(out[name] for name in OUTPUTS), strict=True))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # cart, avg, ltv, orders -> ratio, share, first
        ((50.0, 25.0, 150.0, 6), (2.0, 0.25, 0)),
        ((12.5, 50.0, 1000.0, 20), (0.25, 12.5 / 1012.5, 0)),
        # First order: no average yet, nothing spent: ratio unknown, share 1.
        ((40.0, None, 0.0, 0), (None, 1.0, 1)),
        # Unknown or stale customer (no fresh customer_stats row): all null,
        # never "first order".
        ((40.0, None, None, None), (None, None, None)),
        # Offline, a pandas frame on the way gives NaN for null: the same.
        ((40.0, NAN, NAN, NAN), (None, None, None)),
        ((40.0, NAN, 0.0, 0.0), (None, 1.0, 1)),
        # No cart value: the ratios are null, the flag still known.
        ((None, 25.0, 150.0, 6), (None, None, 0)),
        ((NAN, 25.0, 150.0, 6), (None, None, 0)),
        # An empty cart and no spend: 0/0 is null, not a number.
        ((0.0, None, 0.0, 0), (None, None, 1)),
        ((0.0, 25.0, 150.0, 6), (0.0, 0.0, 0)),
        # A zero average (a data error upstream) divides by nothing: null.
        ((10.0, 0.0, 0.0, 3), (None, 1.0, 0)),
        # Integers from the request or the store work as numbers.
        ((30, 15, 30, 2), (2.0, 0.5, 0)),
    ],
)
def test_checkout_value_cases(row, expected) -> None:
    [got] = checkout_value([row])
    assert len(got) == len(expected)
    for value, want in zip(got, expected, strict=True):
        if want is None:
            assert value is None
        else:
            assert value == want
            assert type(value) is type(want)


def test_checkout_value_rows_are_independent() -> None:
    rows = [(50.0, 25.0, 150.0, 6), (40.0, None, None, None), (40.0, None, 0.0, 0)]
    together = checkout_value(rows)
    assert together == [checkout_value([r])[0] for r in rows]


def test_checkout_value_refuses_negative_cart() -> None:
    with pytest.raises(ValueError, match=r"cart_value must be >= 0.*-5\.0.*row 1"):
        checkout_value([(1.0, 2.0, 3.0, 4), (-5.0, 2.0, 3.0, 4)])


def test_checkout_value_empty_batch() -> None:
    fn = repo_module("transformations", repo=REPO).checkout_value
    empty = {k: [] for k in ("cart_value", "avg_order_amount", "lifetime_value")}
    assert fn({**empty, "total_orders": []}) == {name: [] for name in OUTPUTS}


@pytest.fixture(scope="module")
def contents():
    return load_definitions(REPO)


def test_registry_source_rebuilds_the_same_function(contents) -> None:
    """Feast rebuilds the udf from its stored source text (feast serve, the
    remote client, the UI): the text must exec on its own and compute the same."""
    from feast.transformation.udf_rehydrate import rehydrate_udf_from_source

    [view] = [v for v in contents.on_demand_feature_views if v.name == "checkout_value"]
    rebuilt = rehydrate_udf_from_source(
        view.feature_transformation.udf_string, preferred_name="checkout_value"
    )
    assert rebuilt is not None, "udf_string does not exec without the repo"
    inputs = {
        "cart_value": [50.0, 40.0, None],
        "avg_order_amount": [25.0, None, 3.0],
        "lifetime_value": [150.0, 0.0, None],
        "total_orders": [6, 0, None],
    }
    fn = repo_module("transformations", repo=REPO).checkout_value
    assert rebuilt(inputs) == fn(inputs)


def test_checkout_on_demand_view(contents) -> None:
    [view] = [v for v in contents.on_demand_feature_views if v.name == "checkout_value"]
    assert view.mode == "python"
    assert {f.name: str(f.dtype) for f in view.features} == {
        "cart_to_avg_ratio": "Float64",
        "cart_share_of_lifetime": "Float64",
        "is_first_order": "Int64",
    }
    assert {
        name: [f.name for f in src.schema]
        for name, src in view.source_request_sources.items()
    } == {"checkout_request": ["cart_value"]}
    assert {
        p.name: sorted(f.name for f in p.features)
        for p in view.source_feature_view_projections.values()
    } == {"customer_stats": ["avg_order_amount", "lifetime_value", "total_orders"]}
    assert view.owner and view.description and view.tags["team"] == "growth"
    # The importable function is left importable (Feast's decorator would have
    # renamed its module to __main__; the view holds a copy).
    fn = repo_module("transformations", repo=REPO).checkout_value
    assert fn.__module__ != "__main__"
    assert view.feature_transformation.udf.__module__ == "__main__"


def test_service_v2_is_additive(contents) -> None:
    services = {
        s.name: sorted(
            f"{p.name}:{f.name}" for p in s.feature_view_projections for f in p.features
        )
        for s in contents.feature_services
    }
    v1 = services["churn_prediction_service"]
    assert v1 == sorted(
        f"customer_stats:{f}"
        for f in (
            "total_orders",
            "avg_order_amount",
            "lifetime_value",
            "churn_risk_score",
        )
    )
    v2 = services["churn_prediction_service_v2"]
    assert set(v1) < set(v2)
    assert sorted(set(v2) - set(v1)) == sorted(f"checkout_value:{o}" for o in OUTPUTS)
