"""The scale profile (Spark offline store + Spark engine + Redis Cluster).

Same answers everywhere: the training sets (point-in-time joins) and the online
values of the local (DuckDB + SQLite), services (DuckDB + Redis) and scale
(Spark + Redis Cluster) profiles over the same parquet files are compared cell
by cell, and against the brute-force reference. Plus where Feast's keys land in
the cluster and what hash tags would do to them.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_platform import feast_compat
from feature_platform.spark_materialize import SPARK_ENGINE_TYPE
from tests.cluster import RedisCluster
from tests.conftest import TEST_END, make_repo
from tests.reference import latest_offline_values, pit_join
from tests.scale.conftest import PROFILES, WINDOW_START, ProfileRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMER_FEATURES = [
    "total_orders",
    "avg_order_amount",
    "lifetime_value",
    "preferred_category",
    "churn_risk_score",
    "email",
]
DRIVER_FEATURES = [
    "avg_rating",
    "total_trips",
    "acceptance_rate",
    "avg_delivery_time_min",
]
VIEWS = {
    # view: (join key, features, ttl)
    "customer_stats": ("customer_id", CUSTOMER_FEATURES, pd.Timedelta(days=3)),
    "driver_stats": ("driver_id", DRIVER_FEATURES, pd.Timedelta(hours=6)),
}


def _source(repo: Path, view: str) -> pd.DataFrame:
    return pd.read_parquet(repo / "data" / f"{view}.parquet")


def _normalized(df: pd.DataFrame) -> pd.DataFrame:
    """One dtype per column kind so stores' dtype choices do not hide or fake
    differences: numbers as float64, missing values as NaN/None, text as object."""
    out = pd.DataFrame(index=range(len(df)))
    for col in df.columns:
        s = df[col].reset_index(drop=True)
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        elif (
            pd.api.types.is_numeric_dtype(s.dtype)
            or s.map(
                lambda v: v is None or isinstance(v, int | float | np.number)
            ).all()
        ):
            out[col] = pd.to_numeric(s, errors="raise").astype("float64")
        else:
            out[col] = s.astype(object).where(s.notna(), None)
    return out


def _assert_same(left: pd.DataFrame, right: pd.DataFrame, what: str) -> None:
    """Cell by cell: same shape, same columns, equal values (NaN == NaN)."""
    assert list(left.columns) == list(right.columns), what
    assert len(left) == len(right), what
    a, b = _normalized(left), _normalized(right)
    for col in a.columns:
        x, y = a[col], b[col]
        equal = (x == y) | (x.isna() & y.isna())
        bad = (~equal).to_numpy().nonzero()[0]
        assert not len(bad), (
            f"{what}: column {col!r} differs in {len(bad)} of {len(a)} rows, "
            f"first at row {bad[0]}: {x.iloc[bad[0]]!r} != {y.iloc[bad[0]]!r}"
        )


# ------------------------------------------------------------------ the profile


def test_scale_profile_resolves_spark_engine_and_redis_cluster(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource,
    )

    from feature_platform.definitions import load_definitions
    from feature_platform.profiles import load_repo_config

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.delenv("FEATURE_PLATFORM_OFFLINE", raising=False)
    cfg = load_repo_config("scale", repo=sample_repo)
    conf = cfg.offline_store.spark_conf
    assert cfg.offline_store.type == "spark"
    assert conf["spark.master"] == "local[2]"  # profiles/scale.env default
    assert conf["spark.sql.session.timeZone"] == "UTC"
    # The platform's engine (lock, gate, intervals, pii) writing from Spark; its
    # session is the offline store's.
    assert cfg.batch_engine.type == SPARK_ENGINE_TYPE
    assert cfg.batch_engine.validate_sources is True
    assert cfg.batch_engine.partitions == 2
    assert cfg.online_store.redis_type == "redis_cluster"
    assert cfg.online_store.connection_string.startswith("127.0.0.1:7000,")
    assert cfg.registry.path.startswith("postgresql+psycopg://")
    # Spark's Python workers run this interpreter (it has feast installed).
    assert os.environ["PYSPARK_PYTHON"] == sys.executable

    # The definitions read the same parquet files, as SparkSource.
    sources = {s.name: s for s in load_definitions(sample_repo).data_sources}
    source = sources["customer_stats_source"]
    assert isinstance(source, SparkSource)
    assert source.path == str(sample_repo / "data" / "customer_stats.parquet")
    assert source.file_format == "parquet"
    assert source.created_timestamp_column == "created_timestamp"


# ------------------------------------------------------- materialization, keys


def test_materialization_writes_the_reference_rows(
    profile_runs: dict[str, ProfileRun], scale_repo: Path
) -> None:
    """Every profile writes one row per entity with a value in the window."""
    for view, (key, _, ttl) in VIEWS.items():
        expected = latest_offline_values(
            _source(scale_repo, view), key, TEST_END, ttl=ttl, start=WINDOW_START
        )
        assert len(expected) > 0
        for name in PROFILES:
            rows = profile_runs[name].materialized["views"][view]["rows"]
            assert rows == len(expected), (name, view)


def _cluster_keys(cluster: RedisCluster) -> dict[int, list[bytes]]:
    """Every key in the cluster, per master port."""
    import redis

    keys: dict[int, list[bytes]] = {}
    for port in cluster.ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        keys[port] = list(client.scan_iter(count=1000))
        client.close()
    return keys


def _hash_tag(key: bytes) -> bytes | None:
    """The part of ``key`` Redis Cluster hashes when it has a ``{tag}``."""
    start = key.find(b"{")
    if start < 0:
        return None
    end = key.find(b"}", start + 1)
    if end < 0 or end == start + 1:
        return None
    return key[start + 1 : end]


def test_feast_keys_spread_over_the_three_masters(
    profile_runs: dict[str, ProfileRun], redis_cluster: RedisCluster
) -> None:
    """One Redis hash per entity key, hashed whole: no hash tag, no hot slot.

    Feast's key is ``serialize_entity_key(v3) + project``; the views of an
    entity are fields of that one hash, so an entity's features always live on
    one master and a read of N entities touches at most 3 nodes.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from redis.crc import key_slot

    store = profile_runs["scale"].store
    rows = profile_runs["scale"].materialized["rows_total"]
    suffix = store.project.encode()
    keys = {
        port: [k for k in ks if k.endswith(suffix)]
        for port, ks in _cluster_keys(redis_cluster).items()
    }
    all_keys = [k for ks in keys.values() for k in ks]
    assert len(all_keys) == rows  # one hash per entity (customers + drivers)

    # Each key sits on the master that owns its CRC16 slot, and no key has an
    # effective hash tag (the whole key is hashed).
    ranges = dict(zip(redis_cluster.ports, redis_cluster.slot_ranges(), strict=True))
    for port, ks in keys.items():
        lo, hi = ranges[port]
        assert all(lo <= key_slot(k) <= hi for k in ks)
    assert [k for k in all_keys if _hash_tag(k) is not None] == []
    shares = {p: len(ks) / rows for p, ks in keys.items()}
    assert all(0.2 < share < 0.47 for share in shares.values()), shares
    # No hot slot either. (CRC16 is linear, so sequential ids fall on fewer
    # slots than keys - 2 to 4 keys a slot here - but spread over all masters.)
    per_slot = Counter(key_slot(k) for k in all_keys)
    assert max(per_slot.values()) <= 8, per_slot.most_common(3)

    # The key is exactly Feast's format (what the feature server reads).
    cid = 1_000_001
    key = (
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=cid)]),
            entity_key_serialization_version=3,
        )
        + store.project.encode()
    )
    assert redis_cluster.client().exists(key) == 1

    # A hash tag would be the hot-key anti-pattern here: Feast appends the
    # project, so a project named "{feature_platform}" would put every entity of
    # the project in ONE slot, i.e. on one master. (Not quite every: Feast's keys
    # are binary, and an int64 id with a 0x7B byte already holds a "{", which
    # then pairs with the project's "}" - tags on binary keys are unreliable too.)
    entity_parts = [k.removesuffix(store.project.encode()) for k in all_keys]
    clean = [e for e in entity_parts if b"{" not in e]
    assert len(clean) > 0.95 * len(entity_parts)
    assert len({key_slot(e + b"{feature_platform}") for e in clean}) == 1


def test_online_values_are_the_same_in_every_profile(
    profile_runs: dict[str, ProfileRun], scale_repo: Path
) -> None:
    """Every entity, every feature (pii masked), local == services == scale."""
    from feature_platform.online import read_online
    from feature_platform.pii import mask_frame as mask_pii_frame

    for view, (key, features, ttl) in VIEWS.items():
        source = _source(scale_repo, view)
        ids = sorted(int(i) for i in source[key].unique())
        refs = [f"{view}:{f}" for f in features]
        frames = {}
        for name in PROFILES:
            got = read_online(
                profile_runs[name].store,
                [{key: i} for i in ids],
                features=refs,
                now=TEST_END,
            )
            frames[name] = pd.DataFrame(got)[[key, *features]]
        _assert_same(frames["local"], frames["services"], f"{view}: local/services")
        _assert_same(frames["local"], frames["scale"], f"{view}: local/scale")

        # ... and equal to the brute-force latest value within ttl at TEST_END.
        latest = latest_offline_values(
            source, key, TEST_END, ttl=ttl, start=WINDOW_START
        )
        expected = pd.DataFrame({key: ids}).merge(
            latest[[key, *features]], on=key, how="left"
        )
        expected = mask_pii_frame(expected, [f for f in features if f == "email"])
        assert frames["scale"][key].notna().sum() == len(ids)
        present = expected[features].notna().any(axis=1).sum()
        assert present == len(latest) > 0
        _assert_same(frames["scale"], expected, f"{view}: scale/reference")


# -------------------------------------------------------------- training sets


def _driver_entity_rows(repo: Path) -> pd.DataFrame:
    """Customer/driver pairs, including rows exactly on the ttl boundaries."""
    rng = np.random.default_rng(11)
    drivers = _source(repo, "driver_stats")
    customers = _source(repo, "customer_stats")
    picked = drivers.sample(60, random_state=3)
    ts = pd.concat(
        [
            picked["event_timestamp"],  # at the event time (inclusive)
            picked["event_timestamp"] + pd.Timedelta(hours=6),  # exactly ttl old
            picked["event_timestamp"] + pd.Timedelta(hours=6, seconds=1),  # too old
            pd.Series(
                TEST_END
                - pd.to_timedelta(rng.integers(0, 20 * 24 * 3600, 120), unit="s")
            ),
        ],
        ignore_index=True,
    )
    n = len(ts)
    return pd.DataFrame(
        {
            "customer_id": rng.choice(customers["customer_id"].unique(), n),
            "driver_id": np.concatenate(
                [np.tile(picked["driver_id"].to_numpy(), 3),
                 rng.choice(drivers["driver_id"].unique(), n - 180)]
            ),
            "event_timestamp": ts.astype("datetime64[us, UTC]"),
        }
    )  # fmt: skip


def _reference_training_set(
    repo: Path, entities: pd.DataFrame, service_features: dict[str, list[str]]
) -> pd.DataFrame:
    out = entities.reset_index(drop=True)
    for view, features in service_features.items():
        key, _, ttl = VIEWS[view]
        joined = pit_join(
            entities[[key, "event_timestamp"]].reset_index(drop=True),
            _source(repo, view),
            key,
            features,
            ttl=ttl,
            as_known_at=True,
        )
        for f in features:
            out[f] = joined[f].to_numpy()
    return out


@pytest.mark.parametrize(
    ("service", "service_features"),
    [
        (
            "churn_prediction_service",
            {
                "customer_stats": [
                    "total_orders",
                    "avg_order_amount",
                    "lifetime_value",
                    "churn_risk_score",
                ]
            },
        ),
        (
            "driver_matching_service",
            {
                "driver_stats": [
                    "avg_rating",
                    "acceptance_rate",
                    "avg_delivery_time_min",
                ],
                "customer_stats": ["preferred_category"],
            },
        ),
    ],
)
def test_training_sets_are_the_same_in_every_profile(
    profile_runs: dict[str, ProfileRun],
    scale_repo: Path,
    service: str,
    service_features: dict[str, list[str]],
) -> None:
    """The PIT join of each profile's offline store, cell by cell, = reference."""
    from feature_platform.training import build_training_set

    if service == "churn_prediction_service":
        entities = pd.read_parquet(scale_repo / "data" / "churn_labels.parquet")
    else:
        entities = _driver_entity_rows(scale_repo)
    sets = {
        name: build_training_set(run.store, entities, feature_service=service)
        for name, run in profile_runs.items()
    }
    columns = list(sets["local"].columns)
    assert len(sets["local"]) == len(entities)
    for name in ("services", "scale"):
        _assert_same(sets["local"], sets[name][columns], f"{service}: local/{name}")

    keys = [VIEWS[v][0] for v in service_features]
    expected = (
        _reference_training_set(scale_repo, entities, service_features)
        .sort_values(["event_timestamp", *sorted(set(keys), key=keys.index)])
        .reset_index(drop=True)
    )
    got = sets["scale"]
    order = ["event_timestamp", *sorted(set(keys), key=keys.index)]
    got = got.sort_values(order, kind="stable").reset_index(drop=True)
    expected = expected.sort_values(order, kind="stable").reset_index(drop=True)
    _assert_same(got[list(expected.columns)], expected, f"{service}: scale/reference")
    # The boundary rows really exercise both sides of the ttl.
    filled = got[next(iter(service_features.values()))[0]].notna()
    assert 0 < filled.sum() < len(got) or service == "churn_prediction_service"


def test_rerunning_a_window_leaves_the_cluster_unchanged(
    profile_runs: dict[str, ProfileRun], redis_cluster: RedisCluster
) -> None:
    """Idempotence on the Spark engine path: same keys, same bytes."""
    from feature_platform.materialize import materialize_window

    def dump() -> dict[bytes, Any]:
        client = redis_cluster.client()
        keys = [k for ks in _cluster_keys(redis_cluster).values() for k in ks]
        return {k: client.hgetall(k) for k in keys}

    before = dump()
    result = materialize_window(
        profile_runs["scale"].store, WINDOW_START, TEST_END, views=["driver_stats"]
    )
    assert (
        result["rows_total"]
        == profile_runs["scale"].materialized["views"]["driver_stats"]["rows"]
    )
    assert dump() == before


def test_feast_materialize_runs_the_platform_engine_on_spark(
    profile_runs: dict[str, ProfileRun],
    scale_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``feast materialize``'s code path (``FeatureStore.materialize``) on the
    scale profile runs the platform's engine on Spark: the same values as the
    platform's own path, and the interval recorded by the engine."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.online import read_online
    from feature_platform.profiles import get_store
    from feature_platform.spark_materialize import PlatformSparkEngine

    platform_store = profile_runs["scale"].store
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", f"{platform_store.project}_feast")
    store = get_store("scale", repo=scale_repo)
    apply_definitions(store)
    assert isinstance(feast_compat.provider(store).batch_engine, PlatformSparkEngine)
    store.materialize(start_date=WINDOW_START, end_date=TEST_END)
    store.refresh_registry()
    for name in VIEWS:
        intervals = store.get_feature_view(name).materialization_intervals
        assert [(a, b) for a, b in intervals] == [(WINDOW_START, TEST_END)], name

    source = _source(scale_repo, "customer_stats")
    ids = sorted(int(i) for i in source["customer_id"].unique())
    refs = [f"customer_stats:{f}" for f in CUSTOMER_FEATURES]
    frames = {
        name: pd.DataFrame(
            read_online(
                s, [{"customer_id": i} for i in ids], features=refs, now=TEST_END
            )
        )
        for name, s in (("feast", store), ("platform", platform_store))
    }
    # Every column, email included (masked by the engine), is the same.
    _assert_same(frames["feast"], frames["platform"], "feast/platform")
    present = frames["platform"]["email"].notna()
    assert present.sum() > 0
    assert not frames["feast"].loc[present, "email"].str.contains("@").any()


def test_feast_materialize_on_scale_is_gated(
    profile_runs: dict[str, ProfileRun],
    tmp_path: Path,
    redis_cluster: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A source breaking its suite stops ``FeatureStore.materialize`` on the
    scale profile before any write, naming the expectation and the column; no
    interval is recorded."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.errors import ValidationFailed
    from feature_platform.profiles import get_store

    repo = make_repo(tmp_path / "repo")
    path = repo / "data" / "driver_stats.parquet"
    frame = pd.read_parquet(path)
    recent = frame["event_timestamp"] >= pd.Timestamp(TEST_END - pd.Timedelta(hours=2))
    frame.loc[recent, "acceptance_rate"] = 7.5  # outside [0, 1]
    frame.to_parquet(path, index=False)
    project = f"{profile_runs['scale'].store.project}_gated"
    monkeypatch.setenv("FEATURE_PLATFORM_PROJECT", project)
    store = get_store("scale", repo=repo)
    apply_definitions(store)
    keys_before = sum(len(k) for k in _cluster_keys(redis_cluster).values())

    with pytest.raises(ValidationFailed) as failed:
        store.materialize(start_date=WINDOW_START, end_date=TEST_END)
    message = str(failed.value)
    assert "expect_column_values_to_be_between" in message
    assert "acceptance_rate" in message and "7.5 at driver_id=" in message
    assert sum(len(k) for k in _cluster_keys(redis_cluster).values()) == keys_before
    store.refresh_registry()
    for name in VIEWS:
        assert store.get_feature_view(name).materialization_intervals == [], name
