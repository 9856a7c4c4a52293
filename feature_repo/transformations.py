"""The transformations of the on-demand feature views, as plain functions.

Each one is the ``udf`` of an on-demand view (``on_demand_features.py``) and
runs unchanged on both paths: Feast calls it on the point-in-time joined
training rows (``get_historical_features``) and on the values an online read
returns (``get_online_features``, ``feast serve``, the platform's server). So
the numbers a model is trained on and the numbers it is served are computed by
the same lines.

Rules for a function here (Feast's ``mode="python"``):

* it takes and returns a dict of equal-length lists (one entry per row);
* it is self-contained: imports inside the body, no module-level helpers, and
  annotations of builtins only. Feast stores its source text in the registry and
  ``feast serve``, the remote client and the UI rebuild it from that text alone
  (``exec`` in a namespace holding only ``pd``/``np``; dill bytes are the
  fallback), without this directory;
* a missing input is ``None`` online and ``None`` or ``NaN`` offline (a
  pandas frame on the way): both mean NULL;
* it never changes meaning once served: ``feature-platform check`` refuses a
  changed body; add a new view version (``..._v2``) instead.

Standard library only; ``feast apply`` imports this file and finds no Feast
object in it.
"""


def checkout_value(inputs: dict[str, list]) -> dict[str, list]:
    """The checkout's cart value against the customer's order history.

    Inputs per row: ``cart_value`` (request time, EUR) and the customer's
    stored ``avg_order_amount``, ``lifetime_value`` and ``total_orders``
    (``customer_stats``; NULL when the customer has no row within the view's
    ttl: unknown, or stale).

    Outputs (NULL handling explicit, never a made-up default):

    * ``cart_to_avg_ratio`` = cart / avg_order_amount. NULL when either is
      NULL or the average is 0 (no past orders to compare with).
    * ``cart_share_of_lifetime`` = cart / (lifetime_value + cart): the share
      of the customer's spend, this order included, that this cart is; 1.0 on
      a first order. NULL when either is NULL or both are 0.
    * ``is_first_order`` = 1 when the customer has 0 past orders, 0 when more;
      NULL when ``total_orders`` is NULL (no fresh stored row: an unknown
      customer is not a known first-timer).

    A negative cart value is refused (``ValueError`` naming the row).
    """

    def missing(value: object) -> bool:
        return value is None or value != value  # None, or NaN from a frame

    carts = inputs["cart_value"]
    avgs = inputs["avg_order_amount"]
    lifetimes = inputs["lifetime_value"]
    orders = inputs["total_orders"]
    ratio: list[float | None] = []
    share: list[float | None] = []
    first: list[int | None] = []
    for row, (cart, avg, ltv, n) in enumerate(
        zip(carts, avgs, lifetimes, orders, strict=True)
    ):
        if missing(cart):
            cart = None
        elif cart < 0:
            raise ValueError(
                f"cart_value must be >= 0 (EUR), got {cart!r} in row {row}"
            )
        avg = None if missing(avg) else float(avg)
        ltv = None if missing(ltv) else float(ltv)
        ratio.append(
            None if cart is None or avg is None or avg == 0 else float(cart) / avg
        )
        total = None if cart is None or ltv is None else ltv + float(cart)
        share.append(None if total is None or total == 0 else float(cart) / total)
        first.append(None if missing(n) else int(int(n) == 0))
    return {
        "cart_to_avg_ratio": ratio,
        "cart_share_of_lifetime": share,
        "is_first_order": first,
    }
