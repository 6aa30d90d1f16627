"""Fixtures of the sync worker's tests, on top of the Feast fixtures (tests/conftest.py): the
repository of the test's own, the worker's segments, the worker as a real process, and the
parts an outage test stops: Xiva and the DWH behind proxies and a ``redis-server`` of the test's own
(as the fault tests' fixtures, tests/xiva_source/faults/conftest.py, with the same helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.support.feast import FeastEnv
from tests.support.tcp_proxy import TcpProxy, running_proxy
from tests.support.tiers import service
from tests.support.xiva_source.sync import SyncProcess, write_segments

if TYPE_CHECKING:
    from xiva_source.simulator import XivaSimulator


@pytest.fixture
def sync_env(feast_env: FeastEnv, tmp_path: Path) -> FeastEnv:
    """The deployment's environment in ``xiva`` mode, with the ``recent`` segment."""
    feast_env.monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")
    feast_env.monkeypatch.setenv("SEGMENTS_DIR", str(write_segments(tmp_path / "segments")))
    return feast_env


@pytest.fixture
def project(feast_repo: Path) -> str:
    """The Feast project of ``feast_repo``."""
    return str(yaml.safe_load((feast_repo / "feature_store.yaml").read_text())["project"])


@pytest.fixture
@service("subprocess")
def workers(sync_env: FeastEnv, feast_repo: Path, tmp_path: Path) -> Iterator[list[SyncProcess]]:
    """Start workers with ``workers.append(SyncProcess(...).start())``; killed afterwards."""
    started: list[SyncProcess] = []
    yield started
    for worker in started:
        worker.kill()


@dataclass
class XivaBehindProxy:
    """The simulator reached through a proxy: ``cut()`` makes Xiva unreachable (open connections
    reset, new ones refused: a stopped server), ``restore()`` brings it back; its data (and the
    changes made meanwhile) are kept."""

    sim: XivaSimulator
    proxy: TcpProxy
    base_url: str


@pytest.fixture
def xiva_proxy(sync_env: FeastEnv) -> Iterator[XivaBehindProxy]:
    """``feast_sim`` behind a proxy of the test's own (give ``base_url`` to the worker only)."""
    parts = urlsplit(sync_env.sim.base_url)
    with running_proxy((parts.hostname or "127.0.0.1", parts.port or 80)) as proxy:
        url = urlunsplit((parts.scheme, f"127.0.0.1:{proxy.port}", parts.path, "", ""))
        yield XivaBehindProxy(sync_env.sim, proxy, url)
