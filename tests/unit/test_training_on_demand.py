"""The churn model trains on churn_prediction_service_v2 (stored features plus
the on-demand checkout_value, computed from the labels' cart_value), MLflow
records the service and its on-demand features, and a prediction sends the
request-time cart value."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.cli import main

V2 = "churn_prediction_service_v2"
OUTPUTS = ("cart_to_avg_ratio", "cart_share_of_lifetime", "is_first_order")


def _json(text: str) -> dict:
    return json.loads(text[text.index("{") :])


def test_train_on_v2_and_score_with_a_cart_value(
    local_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from feature_platform.lineage import consumers_by_feature, tracking_uri_of
    from feature_platform.materialize import materialize_window
    from feature_platform.profiles import get_store
    from tests.conftest import TEST_END

    monkeypatch.setenv("FEATURE_PLATFORM_REPO", str(local_repo))
    monkeypatch.setenv("FEATURE_PLATFORM_ARTIFACTS", str(tmp_path / "artifacts"))
    labels = pd.read_parquet(local_repo / "data" / "churn_labels.parquet")
    assert labels["cart_value"].notna().all() and (labels["cart_value"] > 0).all()

    # Without the request column the training set is refused, naming it.
    no_cart = tmp_path / "labels_without_cart.parquet"
    labels.drop(columns="cart_value").to_parquet(no_cart)
    assert main(["apply"]) == 0
    capsys.readouterr()
    assert main(["train", "--feature-service", V2, "--labels", str(no_cart)]) == 2
    assert "lack request column(s) ['cart_value']" in capsys.readouterr().err

    assert main(["train", "--feature-service", V2, "--n-estimators", "30"]) == 0
    result = _json(capsys.readouterr().out)
    assert result["feature_service"] == V2
    for name in OUTPUTS:
        assert name in result["features"]
    registered = result["registered"]
    assert registered["model_name"] == V2 and registered["aliases"] == ["champion"]

    # MLflow lineage: the model consumes the on-demand features.
    store = get_store("local", repo=local_repo)
    index = consumers_by_feature(tracking_uri=tracking_uri_of(store=store))
    for name in OUTPUTS:
        assert any(V2 in str(m) for m in index[f"checkout_value:{name}"]), index

    # A scored request: the cart value is request data.
    materialize_window(store, TEST_END - pd.Timedelta(days=3), TEST_END)
    # The DAG's window end for v2 (run by hand): the watermark of the view the
    # on-demand view reads (it has none of its own).
    from feature_platform.orchestration import training_end

    assert training_end(store, {}, feature_service=V2) == TEST_END
    customer = int(labels["customer_id"].iloc[0])
    argv = ["predict", "--model", V2, "--version", str(registered["version"])]
    assert main([*argv, "--customer-id", str(customer), "--cart-value", "80"]) == 0
    [scored] = _json(capsys.readouterr().out)["predictions"]
    assert 0 <= scored["churn_probability"] <= 1
    assert scored["cart_to_avg_ratio"] is None or scored["cart_to_avg_ratio"] > 0
    assert main([*argv, "--customer-id", str(customer), "--cart-value", "1", "2"]) == 2
    assert "one --cart-value per --customer-id (1), got 2" in capsys.readouterr().err
