"""The fast read's on-demand outputs (``online_store.on_demand``: the view's
own transformation over the decoded columns, no response proto) against
Feast's own transform over a response proto of the same inputs
(``feast_compat.apply_on_demand_views``: what Feast's online read runs), cell
for cell in every form a caller sees: ``to_dict()``, the feature server's
JSON and the proto."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest

SERVICE = "churn_prediction_service_v2"
NAN = float("nan")


def _context(store: Any, features: Any) -> Any:
    from feature_platform.feast_compat import online_request_context

    return online_request_context(store.registry, store.project, features, False)


def _plan(store: Any, features: Any) -> Any:
    from feature_platform.online_store.reader import ReadPlan, plan_view

    context = _context(store, features)
    views = [plan_view(v, names, full=False) for v, names in context.grouped_refs]
    return ReadPlan(views, store.project, context)


def _reads(plan: Any, stored: dict[str, list[Any]]) -> list[Any]:
    """``ViewRead``s of ``stored`` (by feature name) as the read decodes them
    from the value bytes Feast writes (no stamps, none stale)."""
    from feast.type_map import python_values_to_proto_values

    from feature_platform.online_store.codec import decode_value
    from feature_platform.online_store.reader import ViewRead

    out = []
    for view in plan.views:
        raw_cols = [
            [
                None if v.WhichOneof("val") is None else v.SerializeToString()
                for v in python_values_to_proto_values(stored[f], vtype)
            ]
            for f, vtype in zip(view.features, view.value_types, strict=True)
        ]
        values = [[decode_value(b) for b in col] for col in raw_cols]
        n = len(values[0])
        raw = [[c[i] for c in raw_cols] + [None] for i in range(n)]
        out.append(ViewRead(view, values, raw, [None] * n, [False] * n))
    return out


def _feast(plan: Any, columns: dict[str, list[Any]], reads: list[Any]) -> Any:
    """Feast's response for the same read: the proto of the entity/request
    columns and stored values, then Feast's transform and column drop."""
    from feast.protos.feast.serving.ServingService_pb2 import (
        FieldStatus,
        GetOnlineFeaturesResponse,
    )
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType
    from google.protobuf.timestamp_pb2 import Timestamp

    from feature_platform.feast_compat import apply_on_demand_views

    response = GetOnlineFeaturesResponse(results=[])
    vector = GetOnlineFeaturesResponse.FeatureVector

    def add(name: str, values: list[Any], vtype: Any) -> None:
        response.metadata.feature_names.val.append(name)
        response.results.append(
            vector(
                values=python_values_to_proto_values(values, vtype),
                statuses=[FieldStatus.PRESENT] * len(values),
                event_timestamps=[Timestamp()] * len(values),
            )
        )

    for key, values in columns.items():
        add(key, values, plan.entity_types.get(key, ValueType.UNKNOWN))
    for read in reads:
        for name, col, vtype in zip(
            read.plan.outputs, read.values, read.plan.value_types, strict=True
        ):
            add(name, col, vtype)
    apply_on_demand_views(
        response,
        plan.context,
        keep={k for k in columns if k in plan.known_join_keys},
        full_feature_names=False,
        feature_types=plan.feature_types,
    )
    return response


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def _assert_same_dicts(got: dict[str, list[Any]], want: dict[str, list[Any]]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for i, (g, w) in enumerate(zip(got[name], want[name], strict=True)):
            assert _same(g, w), (name, i, g, w)


def _compare(store: Any, features: Any, rows: dict[str, list[Any]]) -> Any:
    """Both responses for ``rows`` (entity and request columns plus the
    stored values by feature name); asserts they agree in every form and
    returns the fast one's ``to_dict()``."""
    from feast.feature_server_utils import convert_response_to_dict
    from feast.online_response import OnlineResponse

    from feature_platform.online_store.response import PlatformOnlineResponse

    plan = _plan(store, features)
    assert plan.on_demand_plan is not None  # the fast computation, not Feast's
    stored = {k: v for k, v in rows.items() if k not in ("customer_id", "cart_value")}
    columns = plan.entity_columns(
        {k: rows[k] for k in ("customer_id", "cart_value") if k in rows}
    )
    reads = _reads(plan, stored)
    want_proto = _feast(plan, columns, reads)
    want = OnlineResponse(want_proto, feature_types=plan.feature_types)

    fast = PlatformOnlineResponse(plan, columns, reads)
    assert fast._proto is None  # no proto built for the answer
    got = fast.to_dict()
    _assert_same_dicts(got, want.to_dict())
    _assert_same_dicts(
        fast.to_dict(include_event_timestamps=True),
        want.to_dict(include_event_timestamps=True),
    )
    assert json.loads(fast.to_json_bytes()) == convert_response_to_dict(want_proto)
    # And the proto, when a caller asks for it.
    proto_view = PlatformOnlineResponse(plan, columns, reads)
    assert proto_view.proto == want_proto
    return got


CASES = {
    "ordinary": {
        "customer_id": [1, 2, 3],
        "cart_value": [50.0, 12.5, 230.75],
        "total_orders": [6, 20, 1],
        "avg_order_amount": [25.0, 50.0, 80.0],
        "lifetime_value": [150.0, 1000.0, 80.0],
        "churn_risk_score": [0.1, 0.9, 0.5],
    },
    # Unknown or stale customers: the read gives the transformation nulls.
    "stale_or_unknown": {
        "customer_id": [1, 2],
        "cart_value": [40.0, 0.0],
        "total_orders": [None, None],
        "avg_order_amount": [None, None],
        "lifetime_value": [None, None],
        "churn_risk_score": [None, None],
    },
    # A first order: 0 orders, no average, nothing spent; 0/0 is null.
    "first_order": {
        "customer_id": [1, 2],
        "cart_value": [40.0, 0.0],
        "total_orders": [0, 0],
        "avg_order_amount": [None, 0.0],
        "lifetime_value": [0.0, 0.0],
        "churn_risk_score": [0.5, 0.5],
    },
    # Null and NaN carts (Feast's proto makes a NaN request value null).
    "null_carts": {
        "customer_id": [1, 2, 3],
        "cart_value": [None, NAN, 10.0],
        "total_orders": [6, 6, 6],
        "avg_order_amount": [25.0, 25.0, 25.0],
        "lifetime_value": [150.0, 150.0, 150.0],
        "churn_risk_score": [0.1, 0.1, 0.1],
    },
    "all_null_carts": {
        "customer_id": [1, 2],
        "cart_value": [None, None],
        "total_orders": [6, 0],
        "avg_order_amount": [25.0, None],
        "lifetime_value": [150.0, 0.0],
        "churn_risk_score": [0.1, 0.1],
    },
    # Integer carts (JSON numbers without a fraction): Feast types the request
    # column by its first value: INT64, so a later 12.5 is truncated to 12 ...
    "int_carts": {
        "customer_id": [1, 2, 3],
        "cart_value": [100, 0, 12.5],
        "total_orders": [6, 6, 6],
        "avg_order_amount": [25.0, 25.0, 25.0],
        "lifetime_value": [150.0, 150.0, 150.0],
        "churn_risk_score": [0.1, 0.1, 0.1],
    },
    # ... and DOUBLE when a float comes first (the int becomes a float).
    "float_then_int_carts": {
        "customer_id": [1, 2],
        "cart_value": [12.5, 100],
        "total_orders": [6, 6],
        "avg_order_amount": [25.0, 25.0],
        "lifetime_value": [150.0, 150.0],
        "churn_risk_score": [0.1, 0.1],
    },
    # A stored NaN (a double read as NaN) reaches the function as NaN.
    "stored_nan": {
        "customer_id": [1],
        "cart_value": [10.0],
        "total_orders": [3],
        "avg_order_amount": [NAN],
        "lifetime_value": [NAN],
        "churn_risk_score": [NAN],
    },
    # An infinite ratio is served as Feast serves it ("Infinity" in JSON).
    "huge_ratio": {
        "customer_id": [1],
        "cart_value": [1e308],
        "total_orders": [3],
        "avg_order_amount": [1e-308],
        "lifetime_value": [0.0],
        "churn_risk_score": [0.1],
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_outputs_equal_feasts_transform(applied_local_store, case: str) -> None:
    store = applied_local_store
    got = _compare(store, store.get_feature_service(SERVICE), CASES[case])
    assert "cart_value" not in got  # request data is not served
    assert {"cart_to_avg_ratio", "is_first_order"} <= set(got)


def test_numpy_and_bool_request_values_take_feasts_conversion(
    applied_local_store,
) -> None:
    import numpy as np

    store = applied_local_store
    rows = dict(CASES["ordinary"])
    got = _compare(
        store,
        store.get_feature_service(SERVICE),
        {**rows, "cart_value": [np.float64(50.0), np.float64(1.5), np.float64(2.0)]},
    )
    assert got["cart_to_avg_ratio"][0] == 2.0
    _compare(
        store,
        store.get_feature_service(SERVICE),
        {**rows, "cart_value": [True, False, True]},
    )


def test_unrequested_inputs_are_read_but_not_served(applied_local_store) -> None:
    store = applied_local_store
    features = ["customer_stats:churn_risk_score", "checkout_value:is_first_order"]
    rows = CASES["first_order"]
    got = _compare(store, features, rows)
    assert list(got) == ["customer_id", "churn_risk_score", "is_first_order"]
    assert got["is_first_order"] == [1, 1]
    plan = _plan(store, features)
    assert plan.on_demand_plan.hidden == {
        "total_orders",
        "avg_order_amount",
        "lifetime_value",
    }


def test_a_refused_row_fails_as_on_feasts_path(applied_local_store) -> None:
    store = applied_local_store
    rows = {**CASES["ordinary"], "cart_value": [1.0, -5.0, 2.0]}
    with pytest.raises(ValueError, match="row 1") as feast_error:
        plan = _plan(store, store.get_feature_service(SERVICE))
        columns = plan.entity_columns(
            {k: rows[k] for k in ("customer_id", "cart_value")}
        )
        _feast(plan, columns, _reads(plan, rows))
    with pytest.raises(ValueError, match="row 1") as fast_error:
        _compare(store, store.get_feature_service(SERVICE), rows)
    assert str(fast_error.value) == str(feast_error.value)


def test_an_int64_overflow_fails_as_on_feasts_path(applied_local_store) -> None:
    store = applied_local_store
    rows = {**CASES["ordinary"], "cart_value": [2**63, 1, 2]}
    with pytest.raises(ValueError) as feast_error:
        plan = _plan(store, store.get_feature_service(SERVICE))
        columns = plan.entity_columns(
            {k: rows[k] for k in ("customer_id", "cart_value")}
        )
        _feast(plan, columns, _reads(plan, rows))
    with pytest.raises(ValueError) as fast_error:
        _compare(store, store.get_feature_service(SERVICE), rows)
    assert str(fast_error.value) == str(feast_error.value)


@pytest.mark.parametrize(
    ("values", "vtype"),
    [
        ([1.5, None, NAN, math.inf], "DOUBLE"),
        ([1, None, 2**62], "DOUBLE"),
        ([1, None, -(2**63)], "INT64"),
        ([1.9, 2], "INT64"),
        ([1.25, None], "FLOAT"),
        ([0.1], "FLOAT"),
        ([1, 0, None], "BOOL"),
        ([True, None], "BOOL"),
        ([3, None], "INT32"),
        ([3, "x", None], "STRING"),
        ([None, None], "DOUBLE"),
        ([None, 2.5, 1], "UNKNOWN"),
        ([None, 2, 1], "UNKNOWN"),
        (["a", None], "UNKNOWN"),
    ],
)
def test_cast_column_is_feasts_round_trip(values: list[Any], vtype: str) -> None:
    from feast.type_map import (
        feast_value_type_to_python_type,
        python_values_to_proto_values,
    )
    from feast.value_type import ValueType

    from feature_platform.online_store.on_demand import cast_column

    value_type = ValueType[vtype]
    want = [
        feast_value_type_to_python_type(v)
        for v in python_values_to_proto_values(list(values), value_type)
    ]
    got = cast_column(values, value_type)
    assert len(got) == len(want)
    assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)


def test_feasts_transform_stays_for_pandas_mode(applied_local_store) -> None:
    """A pandas-mode view is computed by Feast's transform (its DataFrame round
    trip is the cost there; benchmarks/on_demand.py)."""
    from feature_platform.online_store.on_demand import plan_on_demand

    store = applied_local_store
    context = _context(store, store.get_feature_service(SERVICE))
    assert plan_on_demand(context, [], full_feature_names=False) is not None
    pandas_view = copy.copy(context.on_demand_views[0])
    pandas_view.mode = "pandas"
    twin = context._replace(on_demand_views=[pandas_view])
    assert plan_on_demand(twin, [], full_feature_names=False) is None
    fake = SimpleNamespace(**{**context._asdict(), "on_demand_views": []})
    assert plan_on_demand(fake, [], full_feature_names=False) is not None
