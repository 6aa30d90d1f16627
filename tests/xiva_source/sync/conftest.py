"""Fixtures of the sync worker's tests, on top of the Feast fixtures (tests/conftest.py): the
repository of the test's own, the worker's segments, the worker as a real process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.feast import FeastEnv
from tests.support.tiers import service
from tests.support.xiva_source.sync import SyncProcess, write_segments


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
