"""On-demand feature views: features computed at read time from request data
and stored features, by a plain function in ``transformations.py``.

The same function runs when a training set is built
(``get_historical_features``, with the request columns in the entity frame)
and on every online read, so training and serving get the same numbers.
``mode="python"``: per request it is a loop over a few lists, where
``mode="pandas"`` builds and tears down DataFrames (measured in
``benchmarks/on_demand.py``, results in ``benchmarks/results/``).
Operating metadata is Feast's own: owner, description, tags.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

from feast import Field, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Float64, Int64
from features import customer_stats
from transformations import checkout_value


def _by_value(fn: Any) -> Any:
    """A copy of ``fn`` that dill pickles by value, as Feast's
    ``@on_demand_feature_view`` decorator does to the function itself
    (``__module__ = "__main__"``): ``feast serve``, the remote client and the UI
    load it from the registry without importing this directory. A copy, so the
    importable function (what the unit tests call) stays as it is."""
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__doc__ = fn.__doc__
    copy.__qualname__ = fn.__qualname__
    copy.__module__ = "__main__"
    return copy


# Values the caller sends with each checkout request (and the training set's
# entity frame carries as columns).
checkout_request = RequestSource(
    name="checkout_request",
    schema=[
        Field(
            name="cart_value",
            dtype=Float64,
            description="Value of the cart at checkout, EUR (>= 0)",
            tags={"unit": "EUR"},
        ),
    ],
    description="The checkout being scored: values known only at request time.",
    owner="growth@example.com",
    tags={"team": "growth"},
)

checkout_value_features = OnDemandFeatureView(
    name="checkout_value",
    sources=[
        checkout_request,
        customer_stats[["avg_order_amount", "lifetime_value", "total_orders"]],
    ],
    # Output fields without description or tags: Feast 0.67's apply infers the
    # outputs by calling the udf and requires each declared Field to *equal* an
    # inferred one (name, dtype, description and tags), so a description makes
    # apply fail (SpecifiedFeaturesNotPresentError; feast#3617, closed as
    # wontfix). The outputs are described
    # in the view's description and the function's docstring.
    schema=[
        Field(name="cart_to_avg_ratio", dtype=Float64),
        Field(name="cart_share_of_lifetime", dtype=Float64),
        Field(name="is_first_order", dtype=Int64),
    ],
    udf=_by_value(checkout_value),
    udf_string=inspect.getsource(checkout_value),
    mode="python",
    description="The checkout's cart value (request data) against the customer's "
    "order history (customer_stats), computed at request time. "
    "cart_to_avg_ratio: cart / avg_order_amount (null without a past order). "
    "cart_share_of_lifetime: cart / (lifetime_value + cart), 1.0 on a first order. "
    "is_first_order: 1 with no past order, 0 otherwise. All null when the "
    "customer has no customer_stats row within its ttl (unknown or stale).",
    owner="growth@example.com",
    tags={"team": "growth", "version": "v1", "transformation": "checkout_value"},
)
