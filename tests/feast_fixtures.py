"""Shared Feast fixtures (a pytest plugin: ``pytest_plugins = ["tests.feast_fixtures"]``).

- ``feast_sim``: a small Xiva simulator of the session (400 customers), reset around each test
  that uses ``feast_env``.
- ``feast_dwh_url`` / ``feast_dwh``: a PostgreSQL schema of the session filled by
  ``create_demo_dwh`` for ``feast_sim``'s customers (some DWH-only, some Xiva-only, nulls).
- ``feast_env``: the environment a deployment would set (Xiva -> ``feast_sim``, ``DWH_URL``,
  ``REDIS_URL``), with no client-side rate limit and short retry budgets so failures are fast.
- ``applied_feast_repo``: ``feature_repo/`` copied and applied once per session (read-only use).
- ``feast_repo``: a fresh copy applied under a project (and snapshot table) of the test's own;
  its Redis keys and snapshot table are removed afterwards.
- ``cluster_feast_repo``: the same, with the online store (and the Xiva client's rate and usage
  keys) on the real 3-primary Redis Cluster (``REDIS_TYPE=redis_cluster``, every node in
  ``REDIS_URL``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.conftest import PG_BASE_URL, REDIS_URL, SIM_PASSWORD, SIM_USER

if TYPE_CHECKING:
    from tests.redis_cluster import RedisClusterNodes
    from xiva_source.demo.data import DemoDwh
    from xiva_source.simulator import XivaSimulator

ROOT = Path(__file__).resolve().parents[1]
FEAST_SIM_CUSTOMERS = 400

__all__ = [
    "FeastEnv",
    "applied_feast_repo",
    "cluster_feast_repo",
    "feast_cli",
    "feast_dwh",
    "feast_dwh_url",
    "feast_env",
    "feast_repo",
    "feast_sim",
    "make_repo",
]


def make_repo(target: Path, project: str, *, snapshot_table: str | None = None) -> Path:
    """Copy ``feature_repo/`` to ``target`` with its own project/registry and apply it in-process.

    Args:
        target: Directory to create.
        project: Feast project name (letters, digits, ``_``).
        snapshot_table: Snapshot table of this copy (default: the repository's).

    Returns:
        ``target``.
    """
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    shutil.copytree(
        ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    path = target / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = project
    config["registry"] = str(target / "data" / "registry.db")
    if snapshot_table:
        config["offline_store"]["snapshot_table"] = snapshot_table
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cwd = os.getcwd()
    # Like the feast CLI: the repository's files import each other (from entities import ...).
    sys.path.insert(0, str(target))
    try:
        apply_total(load_repo_config(target, path), target, skip_source_validation=False)
    finally:
        os.chdir(cwd)  # apply_total chdirs into the repository
        sys.path.remove(str(target))
        for module in target.glob("*.py"):
            sys.modules.pop(module.stem, None)
    return target


def feast_cli(repo: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``feast -c REPO ARGS`` in its own process, as a user runs it (the test's environment).

    Args:
        repo: The repository (``feast -c``).
        args: The command and its arguments, e.g. ``"materialize-incremental", "2026-..."``.
        timeout: Seconds before the process is killed.

    Returns:
        The finished process (its return code, stdout and stderr as text).
    """
    feast = Path(sys.executable).parent / "feast"
    return subprocess.run(
        [str(feast), "-c", str(repo), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def feast_sim() -> Iterator[XivaSimulator]:
    """A small Xiva simulator for the Feast tests (400 customers, seed 11)."""
    from xiva_source.simulator import SimulatorConfig, XivaSimulator

    sim = XivaSimulator(
        SimulatorConfig(customers=FEAST_SIM_CUSTOMERS, seed=11, users={SIM_USER: SIM_PASSWORD})
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def feast_dwh_url() -> Iterator[str]:
    """A PostgreSQL schema of the session (search_path), dropped at the end."""
    import sqlalchemy as sa

    from xiva_source.dwh import dispose_engines

    schema = f"feast_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_BASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    dispose_engines()
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def feast_dwh(feast_dwh_url: str, feast_sim: XivaSimulator) -> DemoDwh:
    """The session DWH, filled for ``feast_sim``'s customers."""
    from xiva_source.demo.data import create_demo_dwh

    return create_demo_dwh(feast_dwh_url, feast_sim, seed=11)


@dataclass
class FeastEnv:
    """What ``feast_env`` set up."""

    sim: XivaSimulator
    dwh: DemoDwh
    dwh_url: str
    redis_url: str
    monkeypatch: pytest.MonkeyPatch

    def set_mode(self, mode: str, strategy: str = "xiva_first") -> None:
        """Set ``FEATURE_STORE_DATA_SOURCE`` / ``FEATURE_STORE_MERGE_STRATEGY``."""
        self.monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", mode)
        self.monkeypatch.setenv("FEATURE_STORE_MERGE_STRATEGY", strategy)


@pytest.fixture
def feast_env(
    feast_sim: XivaSimulator,
    feast_dwh: DemoDwh,
    feast_dwh_url: str,
    redis_ns: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FeastEnv]:
    """The deployment environment pointing at ``feast_sim``, the session DWH and Redis."""
    feast_sim.reset()
    env = {
        "XIVA_API_BASE_URL": feast_sim.base_url,
        "XIVA_API_USERNAME": SIM_USER,
        "XIVA_API_PASSWORD": SIM_PASSWORD,
        "XIVA_REQUESTS_PER_SECOND": "0",
        "XIVA_RETRY_BUDGET": "2",
        "XIVA_MAX_RETRY_AFTER": "1",
        "XIVA_TIMEOUT": "5",
        "DWH_URL": feast_dwh_url,
        "REDIS_URL": REDIS_URL,
        "XIVA_REDIS_PREFIX": redis_ns,  # the client's rate and usage keys: the test's own
        "FEATURE_STORE_DATA_SOURCE": "auto",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield FeastEnv(feast_sim, feast_dwh, feast_dwh_url, REDIS_URL, monkeypatch)
    feast_sim.reset()


@pytest.fixture(scope="session")
def applied_feast_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``feature_repo/`` applied once per session under a unique project (do not materialize)."""
    project = f"loyalty_s{uuid.uuid4().hex[:8]}"
    return make_repo(tmp_path_factory.mktemp("feast") / "repo", project)


@pytest.fixture
def feast_repo(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Path]:
    """A repository copy of this test's own: project, registry, snapshot table, Redis keys."""
    import redis
    import sqlalchemy as sa

    from xiva_source.dwh import get_engine

    suffix = uuid.uuid4().hex[:10]
    project = f"loyalty_{suffix}"
    snapshot_table = f"snap_{suffix}"
    yield make_repo(tmp_path / "repo", project, snapshot_table=snapshot_table)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    with get_engine(feast_env.dwh_url).begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{snapshot_table}"'))


@pytest.fixture
def cluster_feast_repo(
    feast_env: FeastEnv,
    redis_cluster: RedisClusterNodes,
    redis_ns: str,
    tmp_path: Path,
) -> Iterator[Path]:
    """``feast_repo`` with the online store on the Redis Cluster (``REDIS_TYPE=redis_cluster``)."""
    import sqlalchemy as sa

    from xiva_source.dwh import get_engine

    feast_env.monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    feast_env.monkeypatch.setenv("REDIS_TYPE", "redis_cluster")
    feast_env.redis_url = redis_cluster.url
    suffix = uuid.uuid4().hex[:10]
    project = f"loyalty_{suffix}"
    snapshot_table = f"snap_{suffix}"
    try:
        yield make_repo(tmp_path / "repo", project, snapshot_table=snapshot_table)
    finally:
        redis_cluster.delete_matching(f"*{project}*")
        redis_cluster.delete_matching(f"*{redis_ns}*")
        with get_engine(feast_env.dwh_url).begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{snapshot_table}"'))
