"""Settings wherever Feast runs, and registries written by the previous release (real services).

- ``cd <project>/feature_repo && feast apply && feast materialize-incremental <now>`` with only a
  ``.env`` at the project root materializes into the Redis that ``.env`` names, and a process in
  another directory opening the repository by path reads the same values (issue 7).
- A registry and ``feature_store.yaml`` written by release 0.1 (class paths
  ``xiva_source.sources.*``, ``xiva_source.offline_store...``, ``xiva_source.online_store...``)
  still materializes and serves through the compatibility shims, without ``feast apply``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
import yaml
from feast import FeatureStore

from tests.support.feast import FeastEnv
from tests.support.services import REDIS_URL, SIM_PASSWORD, SIM_USER, settings_variables
from xiva_source.dwh import get_engine
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.redis_scan import scan_entity_keys

ROOT = Path(__file__).resolve().parents[3]
V0_1 = ROOT / "tests" / "data" / "registry_v0_1"
REFS = ["customer_features:city", "customer_dwh_features:churn_score"]

# Redis databases of these tests: the point is that the data lands where the settings say, not
# in the default db 0 (other tests use db 0).
DOTENV_DB = 14
V0_1_DB = 15


def _redis_db(db: int) -> str:
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    return f"{base}/{db}"


def _delete_project_keys(url: str, project: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _drop_table(dwh_url: str, table: str) -> None:
    with get_engine(dwh_url).begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))


def _clean_env() -> dict[str, str]:
    """The process environment without any project setting (nor the .env switch)."""
    names = settings_variables()
    return {k: v for k, v in os.environ.items() if k.upper() not in names}


def _online(store: FeatureStore, ids: list[str]) -> dict[str, list[Any]]:
    return store.get_online_features(
        features=REFS, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()


def _dwh_churn(dwh_url: str) -> dict[str, float | None]:
    with get_engine(dwh_url).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT CAST(customer_id AS TEXT), churn_score FROM customer_features_view")
        ).all()
    return {c: None if v is None else float(v) for c, v in rows}


@pytest.fixture
def dotenv_project(feast_env: FeastEnv, tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """``<tmp>/project`` with a ``.env`` at its root and ``feature_repo/`` of its own project."""
    suffix = uuid.uuid4().hex[:10]
    project, snapshot_table = f"dotenv_{suffix}", f"snap_{suffix}"
    root = tmp_path / "project"
    repo = root / "feature_repo"
    shutil.copytree(
        ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    (root / "pyproject.toml").write_text("[project]\nname = 'copy'\n")
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["project"] = project
    config["offline_store"]["snapshot_table"] = snapshot_table
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    redis_url = _redis_db(DOTENV_DB)
    (root / ".env").write_text(
        f"REDIS_URL={redis_url}\n"
        f"DWH_URL={feast_env.dwh_url}\n"
        f"XIVA_API_BASE_URL={feast_env.sim.base_url}\n"
        f"XIVA_API_USERNAME={SIM_USER}\n"
        f"XIVA_API_PASSWORD={SIM_PASSWORD}\n"
        "XIVA_RETRY_BUDGET=2\n"
        "XIVA_REQUESTS_PER_SECOND=0\n"  # unlimited, as feast_env: 400 customers, not 40 s
    )
    yield repo, project, redis_url
    _delete_project_keys(redis_url, project)
    _delete_project_keys(REDIS_URL, project)
    _drop_table(feast_env.dwh_url, snapshot_table)


def test_feast_cli_in_the_repository_uses_the_project_root_env_file(
    feast_env: FeastEnv, dotenv_project: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, project, redis_url = dotenv_project
    env = _clean_env()  # the settings come from the .env file alone
    feast = str(Path(sys.executable).parent / "feast")

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )

    applied = run(feast, "apply", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    materialized = run(feast, "materialize-incremental", now, cwd=repo)
    assert materialized.returncode == 0, materialized.stderr

    # The values are in the Redis the .env names, not in the default one.
    layout = RedisLayout(project, ("customer_id",))
    client = redis.Redis.from_url(redis_url)
    ids = sorted(layout.entity_id(k) or "" for k in scan_entity_keys(client, layout))
    client.close()
    assert len(ids) >= 300
    default = redis.Redis.from_url(REDIS_URL)
    assert next(scan_entity_keys(default, layout), None) is None
    default.close()

    # A process elsewhere opening the repository by path reads the same values.
    elsewhere = tmp_path / "notebooks"
    elsewhere.mkdir()
    sample = ids[:: max(1, len(ids) // 8)][:8]
    script = (
        "import json, sys\n"
        "from feast import FeatureStore\n"
        "store = FeatureStore(repo_path=sys.argv[1])\n"
        "rows = [{'customer_id': c} for c in json.loads(sys.argv[3])]\n"
        "print(json.dumps(store.get_online_features(features=json.loads(sys.argv[2]),\n"
        "    entity_rows=rows).to_dict()))\n"
    )
    read = run(
        sys.executable, "-c", script, str(repo), json.dumps(REFS), json.dumps(sample), cwd=elsewhere
    )
    assert read.returncode == 0, read.stderr
    served = json.loads(read.stdout.strip().splitlines()[-1])
    assert served["customer_id"] == sample
    assert any(v is not None for v in served["city"])
    churn = _dwh_churn(feast_env.dwh_url)
    for cid, value in zip(sample, served["churn_score"], strict=True):
        want = churn.get(cid)
        assert value == (pytest.approx(want) if want is not None else None)


@pytest.fixture
def v0_1_repo(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Path]:
    """The release-0.1 registry and yaml in a repository copy; its Redis db held by a lock."""
    repo = tmp_path / "v0_1"
    repo.mkdir()
    shutil.copy(V0_1 / "registry.db", repo / "registry.db")
    snapshot_table = f"snap_v01_{uuid.uuid4().hex[:10]}"
    config = yaml.safe_load((V0_1 / "feature_store.yaml").read_text())
    config["registry"] = str(repo / "registry.db")  # the copy: materialization writes to it
    config["offline_store"]["snapshot_table"] = snapshot_table
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    redis_url = _redis_db(V0_1_DB)
    feast_env.monkeypatch.setenv("REDIS_URL", redis_url)
    # The old registry's project is "loyalty": a db of its own, one test run at a time.
    lock = redis.Redis.from_url(REDIS_URL).lock("tests:registry_v0_1", timeout=600)
    assert lock.acquire(blocking_timeout=600)
    try:
        _delete_project_keys(redis_url, config["project"])
        yield repo
    finally:
        _delete_project_keys(redis_url, config["project"])
        _drop_table(feast_env.dwh_url, snapshot_table)
        lock.release()


def test_a_registry_of_release_0_1_materializes_and_serves(
    feast_env: FeastEnv, v0_1_repo: Path
) -> None:
    from xiva_source.feast_plugin.offline_store import LoyaltyOfflineStoreConfig
    from xiva_source.feast_plugin.online_store import LoyaltyRedisOnlineStoreConfig
    from xiva_source.feast_plugin.sources import CustomerSource, DwhSource

    raw = yaml.safe_load((v0_1_repo / "feature_store.yaml").read_text())
    assert raw["offline_store"]["type"] == "xiva_source.offline_store.LoyaltyOfflineStore"
    assert raw["online_store"]["type"] == "xiva_source.online_store.LoyaltyRedisOnlineStore"

    store = FeatureStore(repo_path=str(v0_1_repo))
    assert isinstance(store.config.offline_store, LoyaltyOfflineStoreConfig)
    assert isinstance(store.config.online_store, LoyaltyRedisOnlineStoreConfig)
    source = store.get_data_source("customer_source")
    assert isinstance(source, CustomerSource)
    assert store.get_data_source("customer_source").to_proto().data_source_class_type == (
        "xiva_source.feast_plugin.sources.CustomerSource"
    )
    assert isinstance(store.get_data_source("dwh_customer_features"), DwhSource)

    store.materialize_incremental(end_date=datetime.now(UTC))
    assert store.get_feature_view("customer_features").most_recent_end_time is not None

    ids = feast_env.dwh.shared_ids[:6]
    served = _online(FeatureStore(repo_path=str(v0_1_repo)), ids)
    assert any(v is not None for v in served["city"])
    churn = _dwh_churn(feast_env.dwh_url)
    for cid, value in zip(ids, served["churn_score"], strict=True):
        want = churn[cid]
        assert value == (pytest.approx(want) if want is not None else None)
    # Served from the Redis the settings name (the online store config bound to them).
    layout = RedisLayout.of(store.config, ["customer_id"])
    client = redis.Redis.from_url(_redis_db(V0_1_DB))
    assert client.exists(layout.key(ids[0]))
    client.close()
