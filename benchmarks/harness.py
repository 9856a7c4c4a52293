"""The benchmark harness: environment, sizes, measuring helpers, results.

Isolation: every run starts its own ``redis-server`` on a free loopback port
(nothing on disk) and its own PostgreSQL database for the SQL registry, works in
a temporary copy of ``feature_repo/`` under a fresh Feast project, and removes
all of it afterwards; the shared Redis and databases are never touched.

A benchmark is a module of this package exposing a :class:`Benchmark`: how to
run it, the targets it checks and its section of ``summary.md``. :func:`run`
runs a list of them and writes ``<out>/<name>.json`` per benchmark and
``<out>/summary.md``; :func:`run_child` runs one measured workload in a fresh
process (``python -m benchmarks _child TASK``) for an honest peak RSS.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPO_SRC = ROOT / "feature_repo"
RESULTS = Path(__file__).resolve().parent / "results"
CHURN = "churn_prediction_service"
CHURN_FEATURES = [
    "total_orders",
    "avg_order_amount",
    "lifetime_value",
    "churn_risk_score",
]


@dataclass(frozen=True)
class Sizes:
    """Workload sizes for a mode."""

    requests: int
    customers: int
    days: int
    feast_materialize_rows: tuple[int, ...]
    platform_materialize_rows: tuple[int, ...]  # also Feast API -> PlatformEngine
    gated_materialize_rows: tuple[int, ...]  # Feast API -> engine, gate on
    pit: tuple[tuple[int, int, bool], ...]  # (entity rows, feature rows, run feast)
    http_requests: int
    http_seconds: float
    cold_repeats: int
    load_materialize_rows: int  # serving while materializing: rows written
    load_read_rate: float  # ... batch-1 reads per second
    load_idle_requests: int  # ... reads of the idle baseline
    in_process: bool = False  # quick mode: no child processes (RSS not isolated)


QUICK = Sizes(
    requests=150,
    customers=1_500,
    days=16,
    feast_materialize_rows=(5_000,),
    platform_materialize_rows=(5_000,),
    gated_materialize_rows=(5_000,),
    pit=((5_000, 50_000, True),),
    http_requests=100,
    http_seconds=1.5,
    cold_repeats=1,
    load_materialize_rows=5_000,
    load_read_rate=200.0,
    load_idle_requests=100,
    in_process=True,
)
FULL = Sizes(
    requests=2_000,
    customers=20_000,
    days=20,
    feast_materialize_rows=(100_000, 1_000_000),
    platform_materialize_rows=(100_000, 1_000_000, 10_000_000),
    gated_materialize_rows=(100_000, 1_000_000, 10_000_000),
    pit=((100_000, 1_000_000, True), (1_000_000, 10_000_000, True)),
    http_requests=2_000,
    http_seconds=10.0,
    cold_repeats=5,
    load_materialize_rows=1_000_000,
    load_read_rate=200.0,
    load_idle_requests=2_000,
)


# ------------------------------------------------------------------ utilities


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/max (ms) by the nearest-rank method, plus the count."""
    if not samples_ms:
        return {"n": 0}
    s = sorted(samples_ms)

    def rank(p: float) -> float:
        return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]

    return {
        "n": len(s),
        "p50_ms": round(rank(50), 3),
        "p95_ms": round(rank(95), 3),
        "p99_ms": round(rank(99), 3),
        "max_ms": round(s[-1], 3),
        "over_50ms": sum(1 for v in s if v > 50),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    versions: dict[str, str] = {}
    for mod in ("feast", "redis", "duckdb", "pyarrow", "pandas"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[mod] = version(mod)
    with contextlib.suppress(Exception):
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        versions["redis-server"] = out.split("v=")[1].split()[0]
    return {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


# Paths a results run rewrites itself: changes there do not make the measured
# code differ from its commit.
_OUTPUTS = ("benchmarks/results", "docs", "README.md", "artifacts")


def provenance(command: str) -> dict[str, Any]:
    """The command a results file came from and the commit it measured.

    ``commit_source`` is ``"run"`` (``git rev-parse HEAD`` when the run started);
    ``commit_dirty`` says tracked files outside the results and docs differed from
    that commit. Outside a git checkout ``commit`` is None.
    """

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(ROOT), *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip()

    sha = git("rev-parse", "HEAD")
    changed = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        *(f":(exclude){path}" for path in _OUTPUTS),
    )
    return {
        "command": command,
        "commit": sha,
        "commit_source": "run",
        "commit_dirty": bool(changed),
    }


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_rss_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the RSS the
    parent had when it forked this child, which survives exec on Linux)."""
    import resource

    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- environment


@dataclass
class BenchEnv:
    """Own Redis + own PostgreSQL database + a temp repo copy under a fresh project."""

    workdir: Path
    repo: Path
    redis_port: int
    pg_database: str
    project: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def plain_repo(self) -> Path:
        """The same definitions with Feast's stock DuckDB offline store (baseline)."""
        return self.workdir / "plain_repo"

    def store(self, profile: str = "services"):
        from feature_platform.profiles import get_store

        return get_store(profile, repo=self.repo)

    def plain_store(self, profile: str = "services"):
        """Plain Feast over the same registry, project and Redis keys (no plugins)."""
        from feature_platform.profiles import PLAIN_FEAST, get_store

        return get_store(profile, repo=self.repo, overrides=PLAIN_FEAST)

    def redis(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port)

    def flush_redis(self) -> None:
        """FLUSHDB on this run's private redis-server only."""
        self.redis().flushdb()


def _services_defaults() -> dict[str, str]:
    """profiles/services.env defaults, overridden by the environment (for `feast`)."""
    out: dict[str, str] = {}
    path = REPO_SRC / "profiles" / "services.env"
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = os.environ.get(key.strip(), value.strip())
    return out


def _pg_admin():
    import psycopg

    dsn = (
        f"host={os.environ.get('FP_PG_HOST', '127.0.0.1')} "
        f"port={os.environ.get('FP_PG_PORT', '5432')} "
        f"user={os.environ.get('FP_PG_USER', 'postgres')} "
        f"password={os.environ.get('FP_PG_PASSWORD', '')} dbname=postgres"
    )
    conn = psycopg.connect(dsn, connect_timeout=5)
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def bench_env() -> Iterator[BenchEnv]:
    """Start redis-server, create a database and a repo copy; tear all down after."""
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"fp_bench_{run_id}_"))
    repo = workdir / "repo"
    repo.mkdir()
    for path in REPO_SRC.iterdir():
        if path.name in {"data", "__pycache__"}:
            continue
        if path.is_dir():
            shutil.copytree(path, repo / path.name)
        else:
            shutil.copy2(path, repo / path.name)
    (repo / "data").mkdir()
    # Baseline repo: same registry and project, plain Feast (stock stores, engine).
    plain = workdir / "plain_repo"
    shutil.copytree(repo, plain)
    for yaml in (plain / "feature_store.yaml", *(plain / "profiles").glob("*.yaml")):
        text = yaml.read_text()
        # Plain Feast for `feast serve` too: stock stores and engine.
        for plugin, stock in (
            ("type: feature_platform.pit_store.FastPitOfflineStore", "type: duckdb"),
            (
                "type: feature_platform.online_store.PlatformRedisOnlineStore",
                "type: redis",
            ),
            ("type: feature_platform.engine.PlatformEngine", "type: local"),
        ):
            text = text.replace(plugin, stock)
        # Both servers are measured without auth (the platform's with FP_AUTH=no_auth):
        # the comparison is the read path, not the identity provider.
        text = re.sub(r"(?m)^auth:\n(?:[ #].*\n|\n)*", "auth:\n  type: no_auth\n", text)
        yaml.write_text(text)
    port = free_port()
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise RuntimeError("redis-server is not on PATH; the benchmark starts its own")
    server = subprocess.Popen(
        [
            redis_bin,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    database = f"fp_bench_{run_id}"
    admin = None
    saved = dict(os.environ)
    try:
        import redis

        for _ in range(100):
            try:
                redis.Redis(host="127.0.0.1", port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        admin = _pg_admin()
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        env = _services_defaults()
        env |= {
            "FEATURE_PLATFORM_PROJECT": f"bench_{run_id}",
            "FP_PG_DATABASE": database,
            "FP_REDIS_HOST": "127.0.0.1",
            "FP_REDIS_PORT": str(port),
            "FP_REDIS_DB": "0",
            "FEAST_USAGE": "False",
        }
        os.environ.update(env)
        os.environ.pop("FEATURE_PLATFORM_DATA_DIR", None)
        yield BenchEnv(
            workdir, repo, port, database, env["FEATURE_PLATFORM_PROJECT"], env
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
        if server.poll() is None:
            server.kill()
        if admin is not None:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


def last_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def prepare_sample(env: BenchEnv, sizes: Sizes) -> dict[str, Any]:
    """Sample data, apply, materialize the last ttl window (fast path)."""
    from feature_platform.definitions import apply_definitions
    from feature_platform.materialize import materialize_window
    from feature_platform.sample_data import SampleSpec, write_sample_data

    end = last_hour()
    spec = SampleSpec(customers=sizes.customers, drivers=200, days=sizes.days, end=end)
    write_sample_data(env.repo / "data", spec)
    store = env.store()
    apply_definitions(store)
    materialize_window(store, end - timedelta(days=3), end)
    return {"end": end}


def fill_view_columns(table: Any, view: Any, rng: Any) -> Any:
    """Add any feature column of ``view`` the generator does not know, by dtype."""
    import pyarrow as pa

    n = table.num_rows
    for f in view.features:
        if f.name in table.column_names:
            continue
        kind = f.dtype.to_value_type().name
        if kind == "STRING":
            ids = table.column("customer_id").to_numpy()
            col = pa.array([f"user{i}@example.com" for i in ids.tolist()])
        elif kind in ("INT64", "INT32"):
            col = pa.array(rng.integers(0, 1000, n))
        elif kind in ("DOUBLE", "FLOAT"):
            col = pa.array(rng.random(n))
        elif kind == "BOOL":
            col = pa.array(rng.random(n) < 0.5)
        else:
            raise ValueError(f"cannot synthesize {f.name} of type {kind}")
        table = table.append_column(f.name, col)
    return table


# -------------------------------------------------------------------- results


def target(name: str, measured: str, met: bool) -> dict[str, Any]:
    """One row of a benchmark's ``targets`` (and of the summary's target table)."""
    return {"target": name, "measured": measured, "met": bool(met)}


def fmt_latency(d: dict[str, Any]) -> str:
    return f"{d['p50_ms']} / {d['p99_ms']} / {d['max_ms']}"


Workload = Callable[[Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its runner, its targets and its section of ``summary.md``.

    ``workload`` (store, task) -> measurements is the part a child process runs
    (:func:`run_child`); a task's ``kind`` is the name of its benchmark.
    """

    name: str
    run: Callable[[BenchEnv, Sizes], dict[str, Any]]
    targets: Callable[[dict[str, Any]], list[dict[str, Any]]]
    summary: Callable[[dict[str, Any]], list[str]]
    needs_sample: bool = False
    workload: Workload | None = None


def run_child(
    env: BenchEnv,
    task: dict[str, Any],
    workload: Workload,
    *,
    in_process: bool,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Run one workload in a fresh process (or in this one, in quick mode)."""
    if in_process:
        return {**measure_child(task, workload), "isolated": False}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "_child", json.dumps(task)],
        cwd=ROOT,
        env={**os.environ, **env.env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:] or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_child(task: dict[str, Any], workload: Workload) -> dict[str, Any]:
    """Runs one measured workload in a fresh process (for an honest peak RSS)."""
    from feature_platform.profiles import get_store

    store = get_store("services", repo=task["repo"], overrides=task.get("overrides"))
    base_rss = child_rss_mb()
    return {
        **workload(store, task),
        "rss_after_imports_mb": base_rss,
        "peak_rss_mb": child_rss_mb(),
    }


def markdown(
    all_results: dict[str, dict[str, Any]],
    meta: dict[str, Any],
    benchmarks: Sequence[Benchmark],
) -> str:
    m = meta["machine"]
    runs = meta.get("runs")
    if runs:
        head = [f"Mode **{meta['mode']}**. Runs (start, command, 1-min load):", ""]
        head += [f"- {name}: {text}" for name, text in runs.items()]
        head.append("")
        load = ""
    else:
        head = [
            f"Mode **{meta['mode']}**, {meta['finished']}; command `{meta['command']}`."
        ]
        load = (
            f"load average {m['load_average_1m']} at start / "
            f"{meta.get('load_average_1m_end')} at end (the machine is shared), "
        )
    lines = [
        *head,
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}, {load}"
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        "",
    ]
    if meta["mode"] == "quick":
        lines += [
            "_Quick mode: tiny sizes, workloads run in-process (peak RSS is the "
            "whole process); a smoke test, not a measurement._",
            "",
        ]
    for bench in benchmarks:
        if bench.name in all_results:
            lines += bench.summary(all_results[bench.name])
    targets = [t for res in all_results.values() for t in res.get("targets", [])]
    if targets:
        lines += ["| target | measured | met |", "|---|---|---|"]
        for t in targets:
            lines.append(
                f"| {t['target']} | {t['measured']} "
                f"| {'yes' if t['met'] else '**no**'} |"
            )
        lines.append("")
    return "\n".join(lines)


def run(
    benchmarks: Sequence[Benchmark],
    *,
    quick: bool,
    only: list[str] | None = None,
    out: Path = RESULTS,
    command: str = "",
) -> dict[str, Any]:
    """Run the selected benchmarks; write JSON per benchmark and summary.md."""
    sizes = QUICK if quick else FULL
    selected = [b for b in benchmarks if not only or b.name in only]
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "mode": "quick" if quick else "full",
        **provenance(command or " ".join(["python -m benchmarks", *sys.argv[1:]])),
        "machine": machine(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    all_results: dict[str, dict[str, Any]] = {}
    with bench_env() as env:
        sample_ready = False
        # Sample-data benchmarks first; the synthetic ones overwrite the source.
        for bench in sorted(selected, key=lambda b: not b.needs_sample):
            name = bench.name
            if bench.needs_sample and not sample_ready:
                prepare_sample(env, sizes)
                sample_ready = True
            t0 = time.perf_counter()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            res = bench.run(env, sizes)
            res["targets"] = bench.targets(res)
            res["wall_s"] = round(time.perf_counter() - t0, 1)
            all_results[name] = res
            payload = {"name": name, **meta, "results": res}
            (out / f"{name}.json").write_text(
                json.dumps(payload, indent=2, default=str)
            )
            print(
                f"[bench] {name} done in {res['wall_s']} s", file=sys.stderr, flush=True
            )
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    # The summary covers every benchmark's latest JSON in ``out`` (a partial
    # run with --only keeps the others), each labelled with its own run.
    render(benchmarks, out)
    return {"meta": meta, "results": all_results}


def render(benchmarks: Sequence[Benchmark], out: Path) -> str:
    """Rebuild ``summary.md`` from the JSON results in ``out`` (same run's meta)."""
    all_results: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {}
    for name in (b.name for b in benchmarks):
        path = out / f"{name}.json"
        if path.is_file():
            payload = json.loads(path.read_text())
            all_results[name] = payload["results"]
            meta = meta or {
                k: v for k, v in payload.items() if k not in ("name", "results")
            }
            sha = (payload.get("commit") or "")[:10]
            if not sha:
                commit = "commit not recorded"
            elif payload.get("commit_source") == "run":
                dirty = " + uncommitted changes" if payload.get("commit_dirty") else ""
                commit = f"commit {sha}{dirty}"
            else:
                commit = f"commit unknown (file last changed in {sha})"
            meta.setdefault("runs", {})[name] = (
                f"{payload['started']} `{payload['command']}`, {commit} "
                f"(load average {payload['machine'].get('load_average_1m')})"
            )
    meta.setdefault("finished", meta.get("started"))
    text = markdown(all_results, meta, benchmarks)
    (out / "summary.md").write_text(text)
    return text
