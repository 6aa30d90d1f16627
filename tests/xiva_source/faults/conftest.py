"""Fixtures of the fault tests: a private Redis a test may kill and restart, the job as a real
subprocess, and the merged truth to compare the online store with after the rerun.

Everything is real: the Feast fixtures' simulator and DWH (tests/conftest.py), a ``redis-server``
of the test's own on a free loopback port (no persistence: a restart loses every key, as a crashed
Redis without AOF would), ``python -m xiva_source materialize`` in a child process that a test
kills with ``SIGKILL``, and the session DWH behind a TCP proxy a test cuts and restores (the
classes: tests/support/xiva_source/faults.py, tests/support/tcp_proxy.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv
from tests.support.tiers import service
from tests.support.xiva_source.faults import CachedTruth, Job
from tests.support.xiva_source.jobs import Truth


@pytest.fixture
@service("subprocess")
def job(feast_repo: Path) -> Iterator[Job]:
    """The materialization job of ``feast_repo`` (environment: ``feast_env``'s, plus ``env``)."""
    j = Job(feast_repo)
    yield j
    j.stop()


@pytest.fixture(scope="package")
@service("redis")
def _truth_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CachedTruth]:
    t = CachedTruth(tmp_path_factory.mktemp("truth"))
    yield t
    t.cleanup()


@pytest.fixture
def truth(feast_env: FeastEnv, _truth_repo: CachedTruth) -> Truth:
    """The merged truth: a second repository's full run with every source up (see
    :class:`CachedTruth`)."""
    return _truth_repo
