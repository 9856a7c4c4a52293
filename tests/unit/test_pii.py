"""PII masking: `pii` fields never reach the online store or a training set raw."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from feature_platform.definitions import apply_definitions
from feature_platform.errors import ConfigError
from feature_platform.governance import (
    check_pii_definitions,
    check_pii_exposure,
    definitions_snapshot,
)
from feature_platform.materialize import materialize_window
from feature_platform.pii import (
    DEV_PII_SALT,
    PII_SALT_ENV,
    is_masked,
    mask_array,
    mask_frame,
    mask_value,
    pii_salt,
)
from feature_platform.profiles import get_store
from feature_platform.sample_data import PII_COLUMNS, SampleSpec, generate_customers
from feature_platform.training import build_training_set
from tests.conftest import TEST_END, copy_repo


def test_mask_is_salted_deterministic_and_idempotent(monkeypatch) -> None:
    raw = "ana.smith.1000000@example.com"
    a, b = mask_value(raw, salt="s1"), mask_value(raw, salt="s2")
    assert a != b and a == mask_value(raw, salt="s1")
    assert is_masked(a) and not is_masked(raw)
    assert raw not in a
    assert mask_value(a, salt="s2") == a  # masking twice keeps the first hash
    assert mask_value(None) is None and mask_value(float("nan")) is None

    monkeypatch.delenv(PII_SALT_ENV, raising=False)
    monkeypatch.setenv("FEATURE_PLATFORM_OFFLINE", "file")
    assert pii_salt() == DEV_PII_SALT
    monkeypatch.setenv(PII_SALT_ENV, "from-a-secret")
    assert mask_value(raw) == mask_value(raw, salt="from-a-secret")
    monkeypatch.delenv(PII_SALT_ENV)
    monkeypatch.setenv("FEATURE_PLATFORM_OFFLINE", "bigquery")  # production
    with pytest.raises(ConfigError, match=PII_SALT_ENV):
        pii_salt()


@pytest.mark.parametrize(
    "salt", ["feature-platform-dev-salt", "", "k" * 64, "long-" * 40, "sälz"]
)
def test_masker_equals_hmac_sha256(salt: str) -> None:
    """The hand-written HMAC (precomputed pads) is HMAC-SHA256, for every salt
    length (empty, one block, longer than a block: hashed first), on every path."""
    import hashlib
    import hmac

    import pyarrow as pa

    values = ["ann@example.com", None, "", "ümlaut@x.de", "a" * 500, 7]
    masked_twice = mask_value("already@masked.com", salt=salt)
    values.append(masked_twice)  # stays as is

    def reference(v):
        if v is None:
            return None
        digest = hmac.new(salt.encode(), str(v).encode(), hashlib.sha256)
        return "sha256:" + digest.hexdigest()

    want = [reference(v) for v in values[:-1]] + [masked_twice]
    assert [mask_value(v, salt=salt) for v in values] == want
    arr = pa.array([None if v is None else str(v) for v in values], pa.string())
    assert mask_array(arr, salt=salt).to_pylist() == want
    frame = mask_frame(pd.DataFrame({"email": values, "n": 1}), ["email"], salt=salt)
    assert frame["email"].tolist() == want and frame["n"].tolist() == [1] * 7


def test_definitions_tag_personal_fields() -> None:
    snap = definitions_snapshot(Path(__file__).parents[2] / "feature_repo")
    assert snap["feature_views"]["customer_stats"]["pii"] == ["email"]
    # The ingestion step (sample_data.write_sample_data) masks the same columns.
    assert {
        view: sorted(info["pii"])
        for view, info in snap["feature_views"].items()
        if info["pii"]
    } == {view: sorted(cols) for view, cols in PII_COLUMNS.items()}
    assert check_pii_definitions(snap) == []
    # An untagged personal field, and a pii field that cannot hold a hash.
    snap["feature_views"]["customer_stats"]["features"]["phone_number"] = "String"
    snap["feature_views"]["customer_stats"]["pii"] = ["email", "total_orders"]
    found = {(f.subject, f.severity) for f in check_pii_definitions(snap)}
    assert found == {
        ("customer_stats:phone_number", "error"),
        ("customer_stats:total_orders", "error"),
    }


def _online_values(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        values: list[bytes] = []
        for t in tables:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')]
            if "value" in cols:
                values += [r[0] for r in conn.execute(f'SELECT value FROM "{t}"')]
    return values


def test_sources_are_written_masked(local_repo: Path) -> None:
    """Ingestion masks: the source table never holds a raw address, so even a
    tool that bypasses the platform (plain `feast materialize`) cannot leak one."""
    source = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")
    assert source["email"].notna().all() and source["email"].map(is_masked).all()
    raw, _ = generate_customers(SampleSpec(customers=50, days=20, end=TEST_END))
    assert raw["email"].str.endswith("@example.com").all()  # upstream is raw
    assert set(raw["email"].map(mask_value)) <= set(source["email"])


def _land_raw_emails(repo: Path) -> None:
    """Simulate a source loaded without the ingestion step: raw addresses."""
    path = repo / "data" / "customer_stats.parquet"
    source = pd.read_parquet(path)
    raw = source["customer_id"].map(lambda cid: f"person.{cid}@example.com")
    source.assign(email=raw).to_parquet(path, index=False)


def _write_with_stock_feast(store, name: str, start, end) -> None:
    """The window's latest rows written raw by Feast's own SQLite online store
    (what a Feast install without the platform's plugins would write)."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from feature_platform.feast_compat import arrow_to_proto_rows
    from feature_platform.offline import pull_latest

    view = store.get_feature_view(name)
    table = pull_latest(store, view, start, end).to_arrow()
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    rows = arrow_to_proto_rows(table, view, join_keys)
    SqliteOnlineStore().online_write_batch(store.config, view, rows, None)


def test_raw_email_never_reaches_online_store_and_check_catches_bypass(
    local_store, local_repo: Path
) -> None:
    _land_raw_emails(local_repo)
    raw = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")["email"]
    assert raw.str.contains("@example.com").all()  # this source holds raw PII

    start, end = TEST_END - timedelta(days=3), TEST_END
    written = materialize_window(local_store, start, end)
    assert written["views"]["customer_stats"]["rows"] > 100
    db = Path(local_store.config.online_store.path)
    values = _online_values(db)
    assert values and not any(b"@example.com" in v for v in values)
    assert db.read_bytes().find(b"@example.com") == -1

    source = pd.read_parquet(local_repo / "data" / "customer_stats.parquet")
    recent = source[source["event_timestamp"] >= start].iloc[0]
    cid, email = int(recent["customer_id"]), recent["email"]
    got = local_store.get_online_features(
        features=["customer_stats:email"], entity_rows=[{"customer_id": cid}]
    ).to_dict()["email"][0]
    assert got == mask_value(email)

    findings = check_pii_exposure(local_store, now=end)
    assert [f.severity for f in findings] == ["info"]

    # `feast materialize` carries the platform's masking too (its batch engine)...
    local_store.materialize(start, end, feature_views=["customer_stats"])
    assert [f.severity for f in check_pii_exposure(local_store, now=end)] == ["info"]
    assert db.read_bytes().find(b"@example.com") == -1
    # ...so only a writer outside the platform can land raw values (Feast's stock
    # online store over the same database): the check catches it.
    _write_with_stock_feast(local_store, "customer_stats", start, end)
    assert db.read_bytes().find(b"@example.com") != -1
    findings = check_pii_exposure(local_store, now=end)
    assert [(f.subject, f.severity) for f in findings] == [
        ("customer_stats:email", "error")
    ]
    assert "served unmasked" in findings[0].message
    assert "@example" not in findings[0].message  # the report itself leaks nothing


def test_training_set_masks_pii_features(tmp_path: Path, sample_repo: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    (repo / "data").mkdir()
    for src in (sample_repo / "data").glob("*.parquet"):  # sources only, no state
        shutil.copy2(src, repo / "data" / src.name)
    _land_raw_emails(repo)  # the training path masks even an unmasked source
    with (repo / "feature_services.py").open("a") as fh:
        fh.write(
            "\n\ncontact_service = FeatureService(\n"
            '    name="contact_service",\n'
            '    features=[customer_stats[["total_orders", "email"]]],\n'
            '    tags={"team": "growth"},\n'
            ")\n"
        )
    store = get_store("local", repo=repo)
    apply_definitions(store)
    labels = pd.read_parquet(sample_repo / "data" / "churn_labels.parquet").head(300)
    df = build_training_set(store, labels, feature_service="contact_service")
    emails = df["email"].dropna()
    assert len(emails) > 100
    assert emails.map(is_masked).all()
    flat = df.astype(str).to_numpy().ravel()
    assert not any("@example.com" in v for v in flat)


@pytest.mark.parametrize(
    "salt", ["feature-platform-dev-salt", "", "k" * 64, "long-" * 40, "sälz"]
)
def test_mask_array_equals_hmac(salt: str) -> None:
    import hashlib
    import hmac

    from feature_platform.pii import mask_array, mask_value

    values = ["ann@example.com", None, "", "ümlaut@x.de", "a" * 500]
    values.append(mask_value("already@masked.com", salt=salt))  # stays as is
    arr = pa.array(values, pa.string())
    got = mask_array(arr, salt).to_pylist()
    expected = [
        None
        if v is None
        else v
        if v.startswith("sha256:")
        else "sha256:" + hmac.new(salt.encode(), v.encode(), hashlib.sha256).hexdigest()
        for v in values
    ]
    assert got == expected
    assert got[1] is None and got[-1] == values[-1]
    assert all(v is None or v.startswith("sha256:") for v in got)


@pytest.mark.parametrize(
    "salt", ["feature-platform-dev-salt", "", "k" * 64, "long-" * 40, "sälz'"]
)
def test_sql_mask_equals_mask_values(salt: str) -> None:
    """DuckDB's masking of string pii columns (the streaming writer's) is
    ``mask_values``."""
    import duckdb

    from feature_platform.pii import mask_sql, mask_value, mask_values

    values = ["ann@example.com", None, "", "ümlaut@x.de", "a" * 500, "it's"]
    values += [mask_value("already@masked.com", salt=salt), "sha256:not-a-digest"]
    con = duckdb.connect()
    try:
        con.register("t", pa.table({"v": pa.array(values, pa.string())}))
        rows = con.execute(f"SELECT {mask_sql('v', salt)} FROM t").fetchall()
        got = [r[0] for r in rows]
    finally:
        con.close()
    assert got == mask_values(values, salt)
    assert got[1] is None and got[6] == values[6] and got[7] != values[7]
