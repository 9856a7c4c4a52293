"""Data quality, monitoring and governance on the services profile
(PostgreSQL SQL registry + Redis online store)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.audit import list_audit
from feature_platform.errors import ValidationFailed
from feature_platform.governance import run_check
from feature_platform.materialize import materialize_window
from feature_platform.monitoring import Window, run_monitor, write_report
from feature_platform.pii import is_masked
from feature_platform.skew import check_online_skew
from feature_platform.validation import validate_sources
from tests.conftest import TEST_END

pytestmark = pytest.mark.integration


def _redis_values(project: str) -> list[bytes]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    values: list[bytes] = []
    for key in client.scan_iter(match=f"*{project}", count=1000):
        values += list(client.hgetall(key).values())
    return values


def test_validate_materialize_skew_monitor_audit(
    services_store, local_repo: Path, tmp_path: Path, pg_database: str
) -> None:
    store = services_store
    assert store.config.registry.path.startswith("postgresql+psycopg://")
    start, end = TEST_END - timedelta(days=3), TEST_END - timedelta(hours=3)

    # 1. Validation passes on the generated sources, then materialize.
    summary = validate_sources(store, start=start, end=end, now=TEST_END)
    assert summary["success"], summary["failures"]
    written = materialize_window(store, start, end)
    assert written["views"]["customer_stats"]["rows"] > 100

    # 2. PII: no raw e-mail anywhere in this project's Redis hashes.
    values = _redis_values(store.project)
    assert len(values) > 100
    assert not any(b"@example.com" in v for v in values)

    # 3. Skew: online equals offline latest-within-ttl (pii compared masked).
    skew = check_online_skew(store, end=end, start=start, sample_size=50)
    for view, report in skew["views"].items():
        assert report["mismatches"] == 0, (view, report)

    # 4. Governance on the live registry + data: nothing breaks, pii is masked.
    check = run_check(local_repo, store=store, data=True)
    assert check.ok, [f.message for f in check.errors]
    assert f"registry project {store.project}" in check.compared
    pii = [f for f in check.findings if f.rule == "pii"]
    assert [f.subject for f in pii] == ["customer_stats:email"]

    # 5. Monitoring: shifted latest day is flagged, driver_stats is stale.
    path = local_repo / "data" / "customer_stats.parquet"
    df = pd.read_parquet(path)
    current = Window(TEST_END - timedelta(days=1), TEST_END)
    latest = df["event_timestamp"] >= current.start
    df.loc[latest, "lifetime_value"] = df.loc[latest, "lifetime_value"] * 2.5
    df.to_parquet(path, index=False)
    report = run_monitor(
        store,
        now=TEST_END,
        reference=Window(TEST_END - timedelta(days=15), current.start),
        current=current,
        sample=100,
        latency_reads=50,
    )
    assert report["drift"]["customer_stats"]["lifetime_value"]["drifted"]
    assert not report["drift"]["customer_stats"]["churn_risk_score"]["drifted"]
    assert report["freshness"]["driver_stats"]["stale"]
    assert not report["freshness"]["customer_stats"]["stale"]
    online = report["online"]["customer_stats"]
    assert online["entities_sampled"] == 100
    assert online["null_rate"]["total_orders"] < 0.1
    assert report["latency_ms"]["reads"] == 100
    assert report["latency_ms"]["p99"] >= report["latency_ms"]["p50"] > 0
    got = store.get_online_features(
        features=["customer_stats:email"],
        entity_rows=[{"customer_id": int(c)} for c in df["customer_id"].unique()[:20]],
    ).to_dict()["email"]
    assert all(is_masked(v) for v in got)
    paths = write_report(report, tmp_path)
    assert Path(paths["html"]).read_text().count("data:image/png;base64,") >= 11

    # 6. Audit: the fixture's apply is recorded in the PostgreSQL registry DB.
    import psycopg

    rows = list_audit(store)
    assert rows and rows[0]["project"] == store.project
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database) as c:
        with c.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM feature_platform_audit_log WHERE project = %s",
                (store.project,),
            )
            assert cur.fetchone()[0] == len(rows)


def test_bad_source_fails_validation_and_writes_nothing(
    services_store, local_repo: Path
) -> None:
    """An out-of-range value in the window: validation fails naming the column."""
    store = services_store
    path = local_repo / "data" / "customer_stats.parquet"
    df = pd.read_parquet(path)
    recent = df.index[df["event_timestamp"] >= TEST_END - timedelta(hours=12)][:5]
    df.loc[recent, "churn_risk_score"] = 3.0  # must be in [0, 1]
    df.to_parquet(path, index=False)
    with pytest.raises(ValidationFailed, match="churn_risk_score") as info:
        validate_sources(
            store,
            start=TEST_END - timedelta(days=1),
            end=TEST_END,
            now=TEST_END,
            views=["customer_stats"],
        )
    failures = info.value.summary["failures"]
    assert {f["source"] for f in failures} == {"customer_stats"}
    # The monitor sees the same rows: the current window's max is out of range.
    report = run_monitor(
        store,
        now=TEST_END,
        reference=Window(TEST_END - timedelta(days=10), TEST_END - timedelta(days=1)),
        current=Window(TEST_END - timedelta(days=1), TEST_END),
        views=["customer_stats"],
        sample=20,
        latency_reads=5,
    )
    risk = report["drift"]["customer_stats"]["churn_risk_score"]
    assert risk["current_stats"]["max_val"] == pytest.approx(3.0)
    assert risk["reference_stats"]["max_val"] <= 1.0
