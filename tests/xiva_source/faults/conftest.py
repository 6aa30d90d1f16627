"""Fixtures of the fault tests: a private Redis a test may kill and restart, the job as a real
subprocess, and the merged truth to compare the online store with after the rerun.

Everything is real: the Feast fixtures' simulator and DWH (tests/feast_fixtures.py), a
``redis-server`` of the test's own on a free loopback port (no persistence: a restart loses every
key, as a crashed Redis without AOF would), and ``python -m xiva_source materialize`` in a child
process that a test kills with ``SIGKILL``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.feast_fixtures import FeastEnv
from tests.xiva_source.faults.tcp_proxy import TcpProxy, running_proxy
from tests.xiva_source.jobs.fallback_helpers import Truth

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


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A running private Redis on a free loopback port, killed after the test."""
    server = PrivateRedis(free_port())
    server.start()
    yield server
    server.kill()


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


@pytest.fixture
def job(feast_repo: Path) -> Iterator[Job]:
    """The materialization job of ``feast_repo`` (environment: ``feast_env``'s, plus ``env``)."""
    j = Job(feast_repo)
    yield j
    j.stop()


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


@pytest.fixture(scope="package")
def _truth_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CachedTruth]:
    t = CachedTruth(tmp_path_factory.mktemp("truth"))
    yield t
    t.cleanup()


@pytest.fixture
def truth(feast_env: FeastEnv, _truth_repo: CachedTruth) -> Truth:
    """The merged truth: a second repository's full run with every source up (see
    :class:`CachedTruth`)."""
    return _truth_repo


@dataclass
class DwhProxy:
    """The session DWH behind a :class:`TcpProxy`: ``url`` reaches it while the proxy is up."""

    proxy: TcpProxy
    url: str

    def cut(self) -> None:
        """The DWH is gone: open connections reset, new ones refused."""
        self.proxy.cut()

    def restore(self) -> None:
        """The DWH is back."""
        self.proxy.restore()


@pytest.fixture
def dwh_proxy(feast_env: FeastEnv) -> Iterator[DwhProxy]:
    """The session DWH through a proxy of the test's own (give ``url`` to the job only)."""
    from sqlalchemy.engine import make_url

    real = make_url(feast_env.dwh_url)
    with running_proxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        url = real.set(host="127.0.0.1", port=proxy.port)
        yield DwhProxy(proxy, url.render_as_string(hide_password=False))
