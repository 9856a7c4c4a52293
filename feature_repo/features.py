"""Feature views. Never change an existing feature's meaning: add a new one.

TTLs must stay >= 3x the view's materialization interval (see
``feature_platform.schedules``: customer_stats every 4 hours, driver_stats every
2 hours because its 6-hour ttl would break the rule at 4 hours).
"""

from __future__ import annotations

from datetime import timedelta

from data_sources import customer_stats_source, driver_stats_push_source
from entities import customer, driver
from feast import FeatureView, Field
from feast.types import Float32, Float64, Int64, String

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    ttl=timedelta(days=3),
    schema=[
        Field(
            name="total_orders",
            dtype=Int64,
            description="Orders placed to date",
            tags={"unit": "orders"},
        ),
        Field(
            name="avg_order_amount",
            dtype=Float64,
            description="Mean order value to date, EUR; null before the first order",
            tags={"unit": "EUR"},
        ),
        Field(
            name="lifetime_value",
            dtype=Float64,
            description="Total spend to date, EUR",
            tags={"unit": "EUR"},
        ),
        Field(
            name="preferred_category",
            dtype=String,
            description="Most ordered product category",
            tags={"kind": "categorical"},
        ),
        Field(
            name="churn_risk_score",
            dtype=Float32,
            description="Heuristic risk score in [0, 1] from the CRM",
            tags={"unit": "score", "origin": "crm"},
        ),
        # Personal data: tagged `pii`, so the platform serves only a salted
        # hash of it (feature_platform.governance.mask_pii_table), never the
        # raw address; `feature-platform check` fails if it is exposed raw.
        Field(
            name="email",
            dtype=String,
            description="Customer e-mail, served as a salted SHA-256 (pii)",
            tags={"pii": "email"},
        ),
    ],
    online=True,
    source=customer_stats_source,
    description="Customer order behaviour, snapshotted daily.",
    owner="growth@example.com",
    tags={"team": "growth", "version": "v2"},
)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(hours=6),
    schema=[
        Field(
            name="avg_rating",
            dtype=Float64,
            description="Mean rating, 1-5",
            tags={"unit": "stars"},
        ),
        Field(
            name="total_trips",
            dtype=Int64,
            description="Trips completed to date",
            tags={"unit": "trips"},
        ),
        Field(
            name="acceptance_rate",
            dtype=Float64,
            description="Share of offered trips accepted, 0-1",
            tags={"unit": "ratio"},
        ),
        Field(
            name="avg_delivery_time_min",
            dtype=Float32,
            description="Mean delivery time, minutes",
            tags={"unit": "minutes"},
        ),
    ],
    online=True,
    # The push source wraps the batch source: materialization and PIT joins use
    # view.batch_source (the parquet/BigQuery table), /push writes online.
    source=driver_stats_push_source,
    description="Driver performance, refreshed every two hours.",
    owner="logistics@example.com",
    tags={"team": "logistics", "version": "v1"},
)
