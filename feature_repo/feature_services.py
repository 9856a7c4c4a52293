"""Feature services: the versioned contract a model reads features through."""

from __future__ import annotations

from feast import FeatureService
from features import customer_stats, driver_stats
from on_demand_features import checkout_value_features

churn_prediction_service = FeatureService(
    name="churn_prediction_service",
    features=[
        customer_stats[
            ["total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score"]
        ],
    ],
    description="Features of the churn model (GradientBoostingClassifier).",
    owner="growth@example.com",
    tags={"team": "growth", "model": "churn"},
)

driver_matching_service = FeatureService(
    name="driver_matching_service",
    features=[
        driver_stats[["avg_rating", "acceptance_rate", "avg_delivery_time_min"]],
        customer_stats[["preferred_category"]],
    ],
    description="Features of the driver-to-order matching model.",
    owner="logistics@example.com",
    tags={"team": "logistics", "model": "matching"},
)

# Version 2 of the churn contract: version 1's features plus the checkout's
# on-demand features (cart_value at request time against the stored history).
# Additive: churn_prediction_service and the model trained on it keep their
# meaning; a model trained on v2 sends cart_value with each request.
churn_prediction_service_v2 = FeatureService(
    name="churn_prediction_service_v2",
    features=[
        customer_stats[
            ["total_orders", "avg_order_amount", "lifetime_value", "churn_risk_score"]
        ],
        checkout_value_features[
            ["cart_to_avg_ratio", "cart_share_of_lifetime", "is_first_order"]
        ],
    ],
    description="Features of the churn model at checkout: v1 plus the cart value "
    "against the customer's history (request data: cart_value).",
    owner="growth@example.com",
    tags={"team": "growth", "model": "churn", "version": "v2"},
)
