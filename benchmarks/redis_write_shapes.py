"""Redis server CPU per row of the write shapes a materialization could send.

``python -m benchmarks.redis_write_shapes [--rows N]`` starts a private
redis-server (no persistence), replays the same rows (a customer_stats-sized
hash: a timestamp and 6 features, key TTL 3 days) as

* ``HSET`` then ``EXPIRE`` (what the writer sends),
* one ``FCALL`` of a Redis function doing both,
* ``MULTI`` / ``HSET`` / ``EXPIRE`` / ``EXEC``,
* ``HSET`` alone (the benchmark's floor) and ``HGET`` of absent keys (the
  dedup read of a first load),

each into an empty database, and writes the server's CPU seconds per million
rows (``INFO cpu``) to ``benchmarks/results/redis_write_shapes.json``. It is
why the writer keeps two plain commands: Redis 7.0 has no single command that
writes a hash and its key TTL (``HSETEX`` is Redis 8).
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from benchmarks.harness import RESULTS, free_port, provenance

FUNCTION = """#!lua name=fp_shapes
redis.register_function{function_name='hset_expire', callback=function(keys, args)
  local ttl = table.remove(args)
  redis.call('HSET', keys[1], unpack(args))
  redis.call('EXPIRE', keys[1], ttl)
  return 1
end}"""


def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "redis_write_shapes.json")
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.execute_command("FUNCTION", "LOAD", "REPLACE", FUNCTION)
        version = client.info("server")["redis_version"]
        prefix = b"\x01\x00\x00\x00\x02\x00\x00\x00\x0b\x00\x00\x00customer_id"
        keys = [
            prefix + b"\x04\x00\x00\x00\x08\x00\x00\x00" + i.to_bytes(8, "little")
            for i in range(args.rows)
        ]
        ts = b"\x08\x80\x80\x80\x80\x06\x10\x80\x80\x80\x80\x03"
        values = [x for j in range(6) for x in (b"f%d" % j, b")" + b"12345678")]
        ttl = b"259200"
        shapes = {
            "HSET + EXPIRE": lambda k: (
                _resp(b"HSET", k, b"_ts", ts, *values) + _resp(b"EXPIRE", k, ttl)
            ),
            "FCALL hset_expire": lambda k: _resp(
                b"FCALL", b"hset_expire", b"1", k, b"_ts", ts, *values, ttl
            ),
            "MULTI HSET EXPIRE EXEC": lambda k: (
                _resp(b"MULTI")
                + _resp(b"HSET", k, b"_ts", ts, *values)
                + _resp(b"EXPIRE", k, ttl)
                + _resp(b"EXEC")
            ),
            "HSET": lambda k: _resp(b"HSET", k, b"_ts", ts, *values),
            "HGET (absent keys)": lambda k: _resp(b"HGET", k, b"_ts"),
        }
        results = {}
        for name, command in shapes.items():
            client.flushdb()
            payload = b"".join(command(k) for k in keys)
            results[name] = _replay(client, port, payload, args.rows)
            results[name]["keys_after"] = client.dbsize()  # every row executed
            print(f"{name}: {results[name]}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    record = {
        **provenance(
            "python -m benchmarks.redis_write_shapes"
            + (f" --rows {args.rows}" if args.rows != 500_000 else "")
        ),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "redis_version": version,
        "machine": platform.platform(),
        "redis_cpu_s_per_million_rows": {
            k: v["redis_cpu_s_per_million_rows"] for k, v in results.items()
        },
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["redis_cpu_s_per_million_rows"], indent=1))
    return 0


def _replay(client: redis.Redis, port: int, payload: bytes, rows: int) -> dict:
    def cpu() -> float:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    sock = socket.create_connection(("127.0.0.1", port))
    received = [0]

    def drain() -> None:
        while chunk := sock.recv(1 << 20):
            received[0] += len(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    cpu0 = cpu()
    t0 = time.perf_counter()
    reader.start()
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)  # Redis answers everything, then closes
    reader.join()
    seconds = time.perf_counter() - t0
    spent = cpu() - cpu0
    sock.close()
    return {
        "seconds": round(seconds, 3),
        "redis_cpu_s": round(spent, 3),
        "redis_cpu_s_per_million_rows": round(spent / rows * 1e6, 3),
        "reply_bytes": received[0],
    }


if __name__ == "__main__":
    sys.exit(main())
