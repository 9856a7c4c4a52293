"""A throwaway Redis Cluster for tests: 3 masters, loopback, nothing persisted.

Started from the installed ``redis-server`` binary on free loopback ports (each
node's client port and cluster-bus port are picked by binding port 0), slots
split evenly with ``CLUSTER ADDSLOTSRANGE``, joined with ``CLUSTER MEET``.
No RDB/AOF; the ``nodes.conf`` Redis insists on for cluster mode lives in a
temporary directory that is removed on teardown, with the processes.

``python -m tests.cluster [--port 7000]`` runs one in the foreground on ports
7000-7002 (bus ports 17000-17002), the defaults of ``profiles/scale.env``,
until Ctrl-C: the scale profile on one machine.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RedisCluster", "free_port"]

SLOTS = 16384


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisCluster:
    """``with RedisCluster() as c: c.nodes_string`` -> ``127.0.0.1:p1,...``."""

    masters: int = 3
    first_port: int | None = None  # None: free ports; else first_port + i
    binary: str = "redis-server"
    start_timeout_s: float = 20.0
    ports: list[int] = field(default_factory=list)
    bus_ports: list[int] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _dir: Path | None = None

    @property
    def nodes_string(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def slot_ranges(self) -> list[tuple[int, int]]:
        """Slot range [lo, hi] owned by master i (even split, as redis-cli does)."""
        step = SLOTS / self.masters
        bounds = [round(step * i) for i in range(self.masters + 1)]
        return [(bounds[i], bounds[i + 1] - 1) for i in range(self.masters)]

    def start(self) -> RedisCluster:
        import redis

        path = shutil.which(self.binary)
        if path is None:
            raise RuntimeError(f"{self.binary} is not installed (needed for the test)")
        self._dir = Path(tempfile.mkdtemp(prefix="fp-redis-cluster-"))
        try:
            for i in range(self.masters):
                if self.first_port is None:
                    port, bus = free_port(), free_port()
                else:
                    port = self.first_port + i
                    bus = port + 10000
                self.ports.append(port)
                self.bus_ports.append(bus)
                cmd = [
                    path,
                    "--port", str(port),
                    "--cluster-port", str(bus),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(self._dir / f"nodes-{i}.conf"),
                    "--cluster-node-timeout", "5000",
                    "--dir", str(self._dir),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--loglevel", "warning",
                ]  # fmt: skip
                self._procs.append(
                    subprocess.Popen(
                        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                    )
                )
            clients = [self._wait_ping(redis, p) for p in self.ports]
            for client, (lo, hi) in zip(clients, self.slot_ranges(), strict=True):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            for port, bus in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
            self._wait_ok(clients)
            for client in clients:
                client.close()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ping(self, redis, port: int):  # noqa: ANN001 - the redis module
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        while True:
            proc = self._procs[self.ports.index(port)]
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"redis-server on port {port} exited: {err}")
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _wait_ok(self, clients) -> None:  # noqa: ANN001
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
            text = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
            if all(
                "cluster_state:ok" in t and f"cluster_known_nodes:{self.masters}" in t
                for t in text
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster did not converge: {text}")
            time.sleep(0.1)

    def client(self):
        """A ``redis.cluster.RedisCluster`` client on this cluster."""
        from redis.cluster import ClusterNode
        from redis.cluster import RedisCluster as Client

        return Client(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.ports],
            socket_timeout=5,
        )

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()
        self._procs.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run a local 3-master Redis Cluster")
    parser.add_argument("--port", type=int, default=7000, help="first client port")
    parser.add_argument("--masters", type=int, default=3)
    args = parser.parse_args(argv)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Stop cleanly on Ctrl-C or `kill <pid>`, also when started in the background.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with RedisCluster(masters=args.masters, first_port=args.port) as cluster:
        print(f"FP_REDIS_CLUSTER_NODES={cluster.nodes_string}", flush=True)
        try:
            while all(p.poll() is None for p in cluster._procs):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
