"""
### Churn model training, triggered by materialization

Data-aware schedule: runs whenever `feast_materialization_pipeline` has updated
the online `customer_stats` values (Airflow asset
`feature-platform://online-store/customer_stats`). Builds the point-in-time
training set through `churn_prediction_service` (param `feature_service`:
`churn_prediction_service_v2` adds the on-demand checkout features) from the
labelled entity rows,
trains, evaluates, logs the MLflow run and registers the model version
(`feature_platform.training.run_training`; docs/lineage.md).
The training window ends at the materialized window's end (from the asset
event); run by hand (no asset event), at the oldest watermark of the feature
service's views (`feature_platform.orchestration.training_end`): either way a
model never sees data the online store does not hold yet. `notify_completion`
posts the metrics and the window.

The Kubeflow pipeline (`pipelines/`) is the production training path; this DAG
is the Airflow-only equivalent and shows how to chain on the asset.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, dag, task

from feature_platform.notify import airflow_dag_failure_callback
from feature_platform.orchestration import dag_default_args, online_asset_uri

CUSTOMER_STATS = Asset(
    name="online_customer_stats", uri=online_asset_uri("customer_stats")
)


@dag(
    dag_id="feast_training",
    schedule=[CUSTOMER_STATS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    on_failure_callback=airflow_dag_failure_callback,
    doc_md=__doc__,
    tags=["feast", "training", "ml-platform"],
    default_args=dag_default_args(retries=1),
    # The feature service to train on (a manual run may pick another version,
    # e.g. churn_prediction_service_v2 with its on-demand checkout features:
    # the labels then carry the request column cart_value).
    params={"feature_service": "churn_prediction_service"},
)
def feast_training():
    @task
    def train_churn_model(**context: Any) -> dict[str, Any]:
        import pandas as pd

        from feature_platform.orchestration import (
            fail_fast,
            profile_name,
            training_end,
        )
        from feature_platform.profiles import data_dir, get_store
        from feature_platform.training import DEFAULT_SERVICE, run_training

        service = (context.get("params") or {}).get("feature_service")
        service = service or DEFAULT_SERVICE
        with fail_fast():
            store = get_store(profile_name())
            end = training_end(store, context, feature_service=service)
            labels = pd.read_parquet(data_dir() / "churn_labels.parquet")
        # model: the MLflow registry, named after the service
        summary = run_training(store, labels, end=end, feature_service=service)
        return {**summary, "trigger": "asset" if _triggered(context) else "manual"}

    @task
    def notify_completion(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
        from feature_platform.notify import post_message, summary_message

        title = f"feast_training {context['run_id']} trained the churn model"
        message = {"window": summary["training_window"], "training": summary}
        return post_message(summary_message(title, message))

    notify_completion(train_churn_model())


def _triggered(context: Any) -> bool:
    return any((context.get("triggering_asset_events") or {}).values())


feast_training()
