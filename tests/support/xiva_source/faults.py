"""Helpers of the fault tests (tests/xiva_source/faults/): a private Redis a test may kill and
restart, the job as a real subprocess, the merged truth cached per environment, the DWH behind a
proxy a test cuts; waiting for a run's progress and checking every customer against the truth.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from tests.support.xiva_source.jobs import Truth, all_ids, differences, online, store_of

if TYPE_CHECKING:
    from datetime import datetime

    from tests.support.feast import FeastEnv
    from tests.support.tcp_proxy import TcpProxy
    from xiva_source.simulator import XivaSimulator

VIEWS = ("customer_features", "customer_dwh_features")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A ``redis-server`` of the test's own; :meth:`kill` and :meth:`start` it at will."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (empty: nothing is persisted) and wait until it answers."""
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis.from_url(self.url, socket_timeout=1)
                client.ping()
                client.close()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """``SIGKILL`` the server (every key is lost) and wait for it to be gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@dataclass
class Job:
    """``python -m xiva_source materialize --repo REPO`` as a child process."""

    repo: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xiva_source",
                "materialize",
                "--repo",
                str(self.repo),
                "--no-progress",
                *args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self.process

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the run; its exit status and output (stdout, then stderr)."""
        assert self.process is not None
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"the run did not end within {timeout} s: {out}{err}") from None
        return self.process.returncode, out + err

    def run(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        self.start(*args)
        return self.finish(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


class CachedTruth(Truth):
    """:class:`Truth` whose values are computed once per environment (mode, Xiva, DWH).

    The sources are reset between tests (the simulator) or never changed (the DWH), so one full
    run per environment serves every test of the package that shares it.
    """

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.cache: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}

    def values(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        names = (
            "FEATURE_STORE_DATA_SOURCE",
            "FEATURE_STORE_MERGE_STRATEGY",
            "XIVA_API_BASE_URL",
            "DWH_URL",
        )
        key = (*(os.environ.get(n, "") for n in names), ",".join(ids))
        if key not in self.cache:
            # Another mode's run left rows a full run of this one would not rewrite: start empty.
            client = redis.Redis.from_url(os.environ["REDIS_URL"])
            try:
                stale = list(client.scan_iter(match=f"*{self.project}", count=1000))
                if stale:
                    client.delete(*stale)
            finally:
                client.close()
            self.cache[key] = super().values(ids)
        return self.cache[key]


@dataclass
class DwhProxy:
    """The session DWH behind a :class:`~tests.support.tcp_proxy.TcpProxy`: ``url`` reaches it
    while the proxy is up (the ``dwh_proxy`` fixture)."""

    proxy: TcpProxy
    url: str

    def cut(self) -> None:
        """The DWH is gone: open connections reset, new ones refused."""
        self.proxy.cut()

    def restore(self) -> None:
        """The DWH is back."""
        self.proxy.restore()


def wait_until(what: str, predicate: Callable[[], bool], job: Job, timeout: float = 30) -> None:
    """Poll ``predicate`` until true; fail if the run ended first or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert job.process is not None
        if job.process.poll() is not None:
            _, err = job.process.communicate()
            raise AssertionError(f"the run ended before {what}: {job.process.returncode} {err}")
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def customer_360_calls(sim: XivaSimulator) -> int:
    """Customer reads the simulator answered so far."""
    return int(sum(sim.counters()["by_endpoint"].get("customer_360", {}).values()))


def watermarks(repo: Path) -> dict[str, datetime | None]:
    """Each view's watermark (Feast's most recent materialization end) in the registry."""
    store = store_of(repo)
    return {
        view: store.registry.get_feature_view(
            view, store.project, allow_cache=False
        ).most_recent_end_time
        for view in VIEWS
    }


def assert_every_customer_equals_the_source(
    repo: Path, truth: Truth, env: FeastEnv, sim: XivaSimulator | None = None
) -> None:
    """Every customer of either source is served exactly as a full run with every source up."""
    ids = all_ids(sim or env.sim, env.dwh)
    want = truth.values(ids)
    got: dict[str, dict[str, Any]] = online(repo, ids)
    diffs = differences(got, want)
    assert not diffs, (
        f"{len(diffs)} cells of {len({d[0] for d in diffs})} customers differ "
        f"({sorted({d[1] for d in diffs})}), e.g. {diffs[:5]}"
    )
    assert len(want) == len(ids) and any(
        v is not None for row in want.values() for v in row.values()
    )
