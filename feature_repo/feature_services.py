"""Feature services: the versioned contract a model reads features through."""

from __future__ import annotations

from feast import FeatureService
from features import customer_stats, driver_stats

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
