"""The one shared fixture layer.

- ``simulator``: one Xiva simulator per session (a real HTTP server on loopback); the per-test
  ``sim`` fixture hands it out and resets it afterwards, so tests share the server, not its state.
- ``redis_url`` / ``redis_ns``: the real Redis; each test gets its own key namespace, deleted after.
- ``pg_url``: the real PostgreSQL; each test gets its own schema, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from xiva_source.simulator import XivaSimulator

# The Feast layer (simulator for Feast tests, PostgreSQL DWH, applied repository copies).
pytest_plugins = ["tests.feast_fixtures", "tests.redis_cluster", "tests.tls_services"]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_BASE_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")

_PROJECT_ENV_PREFIXES = ("XIVA_", "FEATURE_STORE_", "DWH_", "ONLINE_TTL", "SEGMENTS_DIR")

SIM_USER = "loyalty"
SIM_PASSWORD = "s3cret-Pa55word!"


def _settings_variables() -> set[str]:
    """Every environment variable the settings read (and the one naming the .env file)."""
    from xiva_source.settings import ENV_FILE_VARIABLE, Settings

    files = {f"{name.upper()}_FILE" for name in Settings.file_fields}  # REDIS_URL_FILE, ...
    return {name.upper() for name in Settings.model_fields} | files | {ENV_FILE_VARIABLE}


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's environment or a stray .env file.

    Every variable the settings read is cleared (``SEGMENTS_DIR`` included), the working directory
    is a fresh temporary one, and ``FEATURE_STORE_ENV_FILE=none`` stops the ``.env`` search (a
    test of the search itself deletes it, or passes ``env_file=``).
    """
    from xiva_source.settings import ENV_FILE_VARIABLE

    names = _settings_variables()
    for name in list(os.environ):
        if name.upper() in names or name.startswith(_PROJECT_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_FILE_VARIABLE, "none")
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def simulator() -> Iterator[XivaSimulator]:
    """The session's Xiva simulator (2,000 customers)."""
    from xiva_source.simulator import SimulatorConfig, XivaSimulator

    sim = XivaSimulator(SimulatorConfig(customers=2000, seed=7, users={SIM_USER: SIM_PASSWORD}))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator: XivaSimulator) -> Iterator[XivaSimulator]:
    """The session simulator, reset to its initial state after the test."""
    simulator.reset()
    yield simulator
    simulator.reset()


@pytest.fixture
def xiva_env(sim: XivaSimulator, monkeypatch: pytest.MonkeyPatch) -> XivaSimulator:
    """The environment a deployment would set, pointing at the simulator."""
    monkeypatch.setenv("XIVA_API_BASE_URL", sim.base_url)
    monkeypatch.setenv("XIVA_API_USERNAME", SIM_USER)
    monkeypatch.setenv("XIVA_API_PASSWORD", SIM_PASSWORD)
    return sim


@pytest.fixture
def redis_ns() -> Iterator[str]:
    """A key namespace of this test's own in the real Redis; its keys are deleted afterwards."""
    import redis

    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"*{ns}*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture
def redis_url() -> str:
    """The real Redis URL (combine with ``redis_ns`` for isolation)."""
    return REDIS_URL


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL to the real PostgreSQL, search_path set to a fresh schema of the test's."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_BASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
