"""``online``: SDK read latency, batch 1 and 100, interleaved request by request.

``get_online_features(...).to_dict()`` on a plain-Feast store (stock
RedisOnlineStore, ``feast_sdk_plain``) and on the profile's store (through the
``PlatformRedisOnlineStore`` plugin, ``feast_sdk_plugin``), ``online.read_online``
(the platform's public function), ``FastOnlineReader`` (the lean path) and the
floor, a redis-py pipeline of HMGETs of the same pre-serialized keys.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import (
    CHURN,
    CHURN_FEATURES,
    BenchEnv,
    Benchmark,
    Sizes,
    fmt_latency,
    percentiles,
    target,
)


def bench_online(env: BenchEnv, sizes: Sizes) -> dict[str, Any]:
    import pandas as pd

    from feature_platform.feast_compat import feature_field
    from feature_platform.online import read_online
    from feature_platform.online_store.codec import redis_entity_key
    from feature_platform.online_store.reader import FastOnlineReader

    store = env.store()  # the profile: PlatformRedisOnlineStore plugin
    plain = env.plain_store()  # stock RedisOnlineStore, same keys
    service = store.get_feature_service(CHURN)
    plain_service = plain.get_feature_service(CHURN)
    customers = pd.read_parquet(env.repo / "data" / "customer_stats.parquet")
    ids = [int(c) for c in customers["customer_id"].unique()]
    reader = FastOnlineReader(store, feature_service=CHURN)
    client = env.redis()
    fields = [feature_field("customer_stats", f) for f in CHURN_FEATURES]
    fields.append(b"_ts:customer_stats")
    project = store.project

    def floor_call(rows: list[dict[str, Any]], keys: list[bytes]) -> Any:
        with client.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.hmget(k, fields)
            return pipe.execute()

    approaches: dict[str, Callable[[list[dict[str, Any]], list[bytes]], Any]] = {
        "feast_sdk_plain": lambda rows, _k: plain.get_online_features(
            features=plain_service, entity_rows=rows
        ).to_dict(),
        "feast_sdk_plugin": lambda rows, _k: store.get_online_features(
            features=service, entity_rows=rows
        ).to_dict(),
        "platform_read_online": lambda rows, _k: read_online(
            store, rows, feature_service=CHURN
        ),
        "platform_fast_reader": lambda rows, _k: reader.read(rows),
        "floor_redis_py_hmget": floor_call,
    }
    rng = random.Random(7)
    results: dict[str, Any] = {}
    for batch in (1, 100):
        samples: dict[str, list[float]] = {name: [] for name in approaches}
        names = list(approaches)
        for i in range(sizes.requests + 20):  # 20 warm-up rounds
            chosen = rng.sample(ids, batch)
            rows = [{"customer_id": c} for c in chosen]
            keys = [redis_entity_key("customer_id", c, 4, project) for c in chosen]
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                t0 = time.perf_counter_ns()
                approaches[name](rows, keys)
                elapsed = (time.perf_counter_ns() - t0) / 1e6
                if i >= 20:
                    samples[name].append(elapsed)
        results[f"batch_{batch}"] = {n: percentiles(v) for n, v in samples.items()}
    # Sanity: the fast path returns what Feast returns (ttl off; Feast ignores it).
    rows = [{"customer_id": c} for c in ids[:50]]
    raw = FastOnlineReader(store, feature_service=CHURN, enforce_ttl=False).read(rows)
    feast_dict = plain.get_online_features(
        features=plain_service, entity_rows=rows
    ).to_dict()
    same = all(raw[c] == feast_dict[c] for c in feast_dict)
    # The plugin enforces ttl at read; the sample's values are all fresh.
    plugin = store.get_online_features(features=service, entity_rows=rows).to_dict()
    plugin_same = all(plugin[c] == feast_dict[c] for c in feast_dict)
    return {
        "latency": results,
        "fast_equals_feast_on_50_rows": same,
        "plugin_equals_feast_on_50_rows": plugin_same,
    }


def online_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for batch, ratio, cap in (("batch_1", 2.0, None), ("batch_100", 1.5, 5.0)):
        lat = res["latency"][batch]
        fast, floor = lat["platform_fast_reader"], lat["floor_redis_py_hmget"]
        got = fast["p99_ms"] / floor["p99_ms"]
        ok = got <= ratio and (cap is None or fast["p99_ms"] <= cap)
        text = f"p99 {fast['p99_ms']} ms = {got:.2f}x floor {floor['p99_ms']} ms"
        want = f"p99 <= {ratio}x floor" + (f" and <= {cap} ms" if cap else "")
        out.append(target(f"online SDK {batch} ({want})", text, ok))
    for batch in ("batch_1", "batch_100"):
        lat = res["latency"][batch]
        sdk, floor = lat["feast_sdk_plugin"], lat["floor_redis_py_hmget"]
        got = sdk["p99_ms"] / floor["p99_ms"]
        plain = lat["feast_sdk_plain"]["p99_ms"]
        out.append(
            target(
                f"Feast SDK through plugin {batch} (p99 <= 2x floor)",
                f"p99 {sdk['p99_ms']} ms = {got:.2f}x floor {floor['p99_ms']} ms "
                f"(plain Feast {plain} ms = {plain / floor['p99_ms']:.2f}x)",
                got <= 2.0,
            )
        )
    worst = max(
        res["latency"][b]["platform_fast_reader"]["max_ms"]
        for b in ("batch_1", "batch_100")
    )
    over = sum(
        res["latency"][b]["platform_fast_reader"]["over_50ms"]
        for b in ("batch_1", "batch_100")
    )
    out.append(
        target(
            "online SDK: no request over 50 ms",
            f"max {worst} ms, {over} over",
            over == 0,
        )
    )
    return out


def online_summary(res: dict[str, Any]) -> list[str]:
    lines = [
        "SDK online read, churn service (4 features), ms p50 / p99 / max:",
        "",
        "| approach | batch 1 | batch 100 |",
        "|---|---|---|",
    ]
    lat = res["latency"]
    for name in lat["batch_1"]:
        lines.append(
            f"| {name} | {fmt_latency(lat['batch_1'][name])} "
            f"| {fmt_latency(lat['batch_100'][name])} |"
        )
    lines.append("")
    return lines


BENCHMARK = Benchmark(
    "online", bench_online, online_targets, online_summary, needs_sample=True
)
