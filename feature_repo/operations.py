"""Operating metadata of the feature views: how often each one is materialized,
what its source rows must satisfy before they are written online, and when the
monitor alerts on it (``MONITORING``, read by ``feature_platform.monitoring``).

It lives next to the definitions (not in the platform package) so that a team
changing a view changes its cadence and its expectations in the same review.
Pure data, standard library only: the Airflow DAG files read the schedules at
parse time (through ``feature_platform.schedules``), the validation gate reads
the rules (``feature_platform.validation``), ``feast apply`` ignores this file
(it defines no Feast object). The pii columns are tags on the fields
(``features.py``).

Cadence rule (the product spec): a view's ttl is at least 3x its materialization
interval. ``driver_stats`` has a 6-hour ttl, so the spec's 4-hourly schedule
would break it (3 x 4 h = 12 h > 6 h); it is refreshed every 2 hours instead
(its source lands every 2 hours anyway). ``customer_stats`` (3-day ttl) runs
every 4 hours as specified.
"""

from __future__ import annotations

from datetime import timedelta

# name -> cron, interval, the views it materializes (one Airflow DAG each)
SCHEDULES = {
    "every_4_hours": {
        "cron": "0 */4 * * *",
        "interval": timedelta(hours=4),
        "feature_views": ("customer_stats",),
    },
    "every_2_hours": {
        "cron": "0 */2 * * *",
        "interval": timedelta(hours=2),
        "feature_views": ("driver_stats",),
    },
}

# view -> rules beyond its schema: value ranges (lo, hi; None = open), null-rate
# ceilings per feature (default 5 %), and how old the newest source row may be.
VALIDATION = {
    "customer_stats": {
        "ranges": {
            "total_orders": (0, None),
            "avg_order_amount": (0, None),
            "lifetime_value": (0, None),
            "churn_risk_score": (0, 1),
        },
        # avg_order_amount is null before a first order; categories and risk
        # scores are occasionally missing upstream.
        "max_null_rate": {
            "total_orders": 0.0,
            "avg_order_amount": 0.10,
            "lifetime_value": 0.0,
            "preferred_category": 0.10,
            "churn_risk_score": 0.05,
        },
        # Daily snapshots: the newest row may be a day old (plus landing delay).
        "max_staleness": timedelta(hours=26),
    },
    "driver_stats": {
        "ranges": {
            "avg_rating": (1, 5),
            "total_trips": (0, None),
            "acceptance_rate": (0, 1),
            "avg_delivery_time_min": (0, None),
        },
        "max_null_rate": {
            "avg_rating": 0.05,
            "total_trips": 0.0,
            "acceptance_rate": 0.0,
            "avg_delivery_time_min": 0.05,
        },
        # Snapshotted every two hours.
        "max_staleness": timedelta(hours=4),
    },
}

# Monitoring (`feature-platform monitor`, the `feast_monitoring` DAG): its cadence
# and the alert thresholds of each online view.
#
# Cadence: hourly, at half past. The fastest view is refreshed every 2 hours, so
# an hourly check sees a missed run within an hour of it being due (a 2-hourly
# check could take up to 2 h more); at :30 it runs between materialization ticks
# (:00), not against a half-written window. A run reads two windows of source
# rows for drift (bounded by MAX_ROWS_PER_WINDOW) and one /metrics scrape: well
# under the hour.
#
# Thresholds (an alert when crossed):
# * max_age: now - the view's last materialized end. One materialization
#   interval plus 30 minutes for the run itself (a window takes minutes): at
#   the monitor's :30 tick a run that missed its tick, failed, or is still not
#   done alerts; a normal run never does.
# * max_null_rate: share of served values that were null, per feature ("*" for
#   the others). Above the source ceilings in VALIDATION: callers also ask for
#   entities the store does not hold (a served null, not a data error).
# * max_psi: PSI of the latest day against the reference window, per feature
#   ("*" for the others); None reports it without alerting. total_orders and
#   total_trips are cumulative counters: they grow every day, so the latest day
#   always sits above the reference deciles (expected drift of the value, not a
#   broken source).
# * latency_ms: server-wide p99 of POST /get-online-features from the feature
#   server's own metrics (real traffic only: probe reads from the monitor's
#   machine do not measure what callers see).
# * min_reads: fewer served reads than this in a run are reported, not alerted
#   on (a handful of reads makes a percentile or a rate noise).
MONITORING = {
    "cron": "30 * * * *",
    "interval": timedelta(hours=1),
    "latency_ms": {"p99": 50.0},
    "min_reads": 20,
    "views": {
        "customer_stats": {
            "max_age": timedelta(hours=4, minutes=30),
            "max_null_rate": {
                "*": 0.05,
                "avg_order_amount": 0.15,
                "preferred_category": 0.15,
                "churn_risk_score": 0.10,
            },
            "max_psi": {"*": 0.2, "total_orders": None},
        },
        "driver_stats": {
            "max_age": timedelta(hours=2, minutes=30),
            "max_null_rate": {
                "*": 0.05,
                "avg_rating": 0.10,
                "avg_delivery_time_min": 0.10,
            },
            "max_psi": {"*": 0.2, "total_trips": None},
        },
        # On-demand: no stored window; drift of the served outputs against the
        # outputs of the same transformation over the labelled checkouts
        # (customer_id, event_timestamp, cart_value) of the reference window.
        "checkout_value": {
            "max_psi": {"*": 0.2},
            "reference_requests": "churn_labels.parquet",
        },
    },
}
