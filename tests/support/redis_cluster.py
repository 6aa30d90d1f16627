"""A real 3-primary Redis Cluster and a Sentinel on loopback (the fixtures ``redis_cluster``,
``cluster_ns`` and ``redis_sentinel`` of tests/conftest.py start them once per session;
``bench/segmentation.py --cluster`` too).

- :func:`start_cluster` / :func:`stop_cluster`: the cluster (``.url`` names its three nodes, as
  ``REDIS_URL`` does with ``REDIS_TYPE=redis_cluster``);
- :func:`start_sentinel` / :func:`stop_sentinel`: a password-protected primary watched by one
  ``redis-server --sentinel`` (``.url`` names the sentinel, as ``REDIS_URL`` does with
  ``REDIS_TYPE=redis_sentinel``).

Started with ``redis-server --cluster-enabled yes`` on free loopback ports and joined with
``redis-cli --cluster create``: the same binaries CI has, nothing to start by hand.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SENTINEL_MASTER",
    "SENTINEL_PASSWORD",
    "RedisClusterNodes",
    "RedisSentinelNodes",
    "start_cluster",
    "start_sentinel",
    "stop_cluster",
    "stop_sentinel",
]

PRIMARIES = 3
SENTINEL_MASTER = "xiva-primary"
"""The primary's name at the sentinel (``REDIS_SENTINEL_MASTER``)."""
SENTINEL_PASSWORD = "sentinel-Pa55"
"""The primary's password (the sentinel itself has none, as in Feast's sentinel mode)."""


@dataclass
class RedisClusterNodes:
    """A running cluster: its node ports, its ``REDIS_URL`` and how to stop one node."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`` (every node, for discovery)."""
        return "redis://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def client(self):  # type: ignore[no-untyped-def]
        """A ``redis.cluster.RedisCluster`` client (the test's own; close it)."""
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.ports])

    def delete_matching(self, pattern: str) -> None:
        """Delete the keys matching ``pattern`` on every primary."""
        import redis

        for port in self.ports:
            r = redis.Redis(host="127.0.0.1", port=port)
            try:
                for key in list(r.scan_iter(match=pattern, count=1000)):
                    r.delete(key)
            finally:
                r.close()


def _free_port_pair() -> int:
    """A port P with P and P + 10000 (the cluster bus) both free on loopback."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _wait_ping(port: int, timeout: float = 10.0, cli_args: Sequence[str] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", *cli_args, "-p", str(port), "ping"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


def _wait_ping_auth(port: int, password: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "--no-auth-warning", "-a", password, "ping"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


def _wait_cluster_ok(ports: list[int], timeout: float = 30.0, cli_args: Sequence[str] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [
            subprocess.run(
                ["redis-cli", *cli_args, "-p", str(p), "cluster", "info"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for p in ports
        ]
        if all("cluster_state:ok" in s for s in states):
            return
        time.sleep(0.1)
    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")


def start_cluster(
    workdir: Path, *, tls_args: Sequence[str] = (), cli_args: Sequence[str] = ()
) -> RedisClusterNodes:
    """Start :data:`PRIMARIES` cluster-enabled ``redis-server`` processes and join them.

    Args:
        workdir: Where the nodes keep their files.
        tls_args: ``--tls-cert-file ...`` options: the nodes then listen on TLS only (clients
            and the cluster bus, ``tests.support.tls``).
        cli_args: ``redis-cli`` options to reach them (``--tls --cacert ...``).
    """
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are needed (Debian package redis-server)")
    nodes = RedisClusterNodes(ports=[])
    for _ in range(PRIMARIES):
        port = _free_port_pair()
        d = workdir / str(port)
        d.mkdir(parents=True)
        listen = (
            ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes", *tls_args]
            if tls_args
            else ["--port", str(port)]
        )
        proc = subprocess.Popen(
            [
                "redis-server",
                *listen,
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(d / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(d),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        nodes.ports.append(port)
        nodes.processes.append(proc)
    for port in nodes.ports:
        _wait_ping(port, cli_args=cli_args)
    subprocess.run(
        ["redis-cli", *cli_args, "--cluster", "create"]
        + [f"127.0.0.1:{p}" for p in nodes.ports]
        + ["--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        capture_output=True,
    )
    _wait_cluster_ok(nodes.ports, cli_args=cli_args)
    return nodes


def stop_cluster(nodes: RedisClusterNodes) -> None:
    """Kill every node of the cluster."""
    for proc in nodes.processes:
        proc.kill()
    for proc in nodes.processes:
        proc.wait(timeout=10)


@dataclass
class RedisSentinelNodes:
    """A primary and the sentinel watching it."""

    primary_port: int
    sentinel_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    master: str = SENTINEL_MASTER
    password: str = SENTINEL_PASSWORD

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<sentinel port>``: the sentinel; the primary's
        password."""
        return f"redis://:{self.password}@127.0.0.1:{self.sentinel_port}"


def start_sentinel(workdir: Path) -> RedisSentinelNodes:
    """Start a password-protected primary and one sentinel monitoring it (quorum 1)."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is needed (Debian package redis-server)")
    primary, sentinel = _free_port_pair(), _free_port_pair()
    nodes = RedisSentinelNodes(primary, sentinel)
    pdir = workdir / "primary"
    pdir.mkdir(parents=True)
    nodes.processes.append(
        subprocess.Popen(
            [
                "redis-server",
                "--port", str(primary),
                "--bind", "127.0.0.1",
                "--requirepass", SENTINEL_PASSWORD,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(pdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )  # fmt: skip
    conf = workdir / "sentinel.conf"  # the sentinel rewrites its config file: a writable one
    conf.write_text(
        f"port {sentinel}\n"
        "bind 127.0.0.1\n"
        f"dir {workdir}\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 1\n"
        f"sentinel auth-pass {SENTINEL_MASTER} {SENTINEL_PASSWORD}\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 5000\n"
    )
    nodes.processes.append(
        subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    _wait_ping(sentinel)
    _wait_ping_auth(primary, SENTINEL_PASSWORD)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", "-p", str(sentinel), "sentinel", "get-master-addr-by-name",
             SENTINEL_MASTER],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if str(primary) in out.stdout:
            return nodes
        time.sleep(0.05)
    raise RuntimeError("the sentinel did not report its primary")


def stop_sentinel(nodes: RedisSentinelNodes) -> None:
    """Kill the primary and the sentinel."""
    for proc in nodes.processes:
        proc.kill()
    for proc in nodes.processes:
        proc.wait(timeout=10)
