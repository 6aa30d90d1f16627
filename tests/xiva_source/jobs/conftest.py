"""Fixtures of the operations tests (materialization job, live refresh), on top of the Feast
fixtures (tests/conftest.py, tests/support/feast.py): a repository copy applied under a project
of the test's own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

if TYPE_CHECKING:
    from tests.support.feast import FeastEnv
    from xiva_source.simulator import XivaSimulator


@pytest.fixture
def ops_env(feast_env: FeastEnv) -> XivaSimulator:
    """The deployment's environment; online values expire after 1000 s without a run."""
    feast_env.monkeypatch.setenv("ONLINE_TTL_SECONDS", "1000")
    return feast_env.sim


@pytest.fixture
def repo(ops_env: XivaSimulator, feast_repo: Path) -> Path:
    """An applied copy of ``feature_repo`` under the test's own project."""
    return feast_repo


@pytest.fixture
def project(repo: Path) -> str:
    """The Feast project name of ``repo``."""
    return str(yaml.safe_load((repo / "feature_store.yaml").read_text())["project"])
