"""The one shared fixture layer (helpers, constants and builders are in ``tests/support/``).

Tiers. A test is ``unit`` when no fixture it uses, directly or through other fixtures, is a
*service fixture*: one decorated with ``@service(kind)`` (``tests/support/tiers.py``) because it
reaches or starts Redis, PostgreSQL, an HTTP server (the simulator, a stub server), Ray, Chromium
or a subprocess. :func:`pytest_collection_modifyitems` applies the marker; nobody writes
``@pytest.mark.unit``. A test that needs a service gets it through a service fixture (a module's
own fixture is decorated too), never from its body alone: while a unit test is set up and runs,
starting a subprocess or a server, connecting to a live service or to PostgreSQL fails it
(``tiers.unit_guard``). ``make test-unit`` (``pytest -m unit``) runs the unit tier with
``TEST_REDIS_URL`` / ``TEST_PG_URL`` pointed at dead ports; ``make test`` runs everything.

Fixtures (every service comes from ``TEST_REDIS_URL`` / ``TEST_PG_URL``, see
``tests/support/services.py``):

- every test: a clean environment (the settings' variables cleared, ``FEATURE_STORE_ENV_FILE=none``,
  a fresh working directory);
- ``simulator``: one Xiva simulator per session (a real HTTP server on loopback); the per-test
  ``sim`` fixture hands it out and resets it afterwards, so tests share the server, not its state;
- ``redis_url`` / ``redis_ns``: the real Redis; each test gets its own key namespace, deleted after;
- ``pg_url``: the real PostgreSQL; each test gets its own schema, dropped after;
- the Feast layer: ``feast_sim`` (400 customers), ``feast_dwh_url`` / ``feast_dwh`` (a PostgreSQL
  DWH filled for it), ``feast_env`` (the deployment's environment: Xiva -> ``feast_sim``,
  ``DWH_URL``, ``REDIS_URL``, no client-side rate limit, short retry budgets),
  ``applied_feast_repo`` (``feature_repo/`` applied once per session, read-only use),
  ``feast_repo`` (a copy applied under a project and snapshot table of the test's own, removed
  after), ``cluster_feast_repo`` (the same on the Redis Cluster);
- ``redis_cluster`` / ``cluster_ns``: a real 3-primary Redis Cluster per session and a key
  namespace on it; ``redis_sentinel``: a password-protected primary and its sentinel;
- security (private servers with certificates made by the session, ``tests/support/tls.py``):
  ``tls_files``, ``redis_tls``, ``redis_mtls`` (mutual TLS), ``redis_tls_cluster``,
  ``redis_tls_sentinel``, ``redis_acl`` (the ACL users of docs/operations.md), ``pg_tls``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.feast import FEAST_SIM_CUSTOMERS, FeastEnv, make_repo
from tests.support.redis_cluster import (
    RedisClusterNodes,
    RedisSentinelNodes,
    start_cluster,
    start_sentinel,
    stop_cluster,
    stop_sentinel,
)
from tests.support.services import (
    PG_BASE_URL,
    PROJECT_ENV_PREFIXES,
    REDIS_URL,
    SIM_PASSWORD,
    SIM_USER,
    settings_variables,
)
from tests.support.tcp_proxy import running_proxy
from tests.support.tiers import service, services_of, unit_guard
from tests.support.tls import (
    AclRedis,
    PostgresTls,
    RedisTlsServer,
    TlsCluster,
    TlsFiles,
    TlsSentinel,
    make_tls_files,
    start_postgres_tls,
    start_redis_acl,
    start_redis_tls,
    start_redis_tls_sentinel,
    stop_postgres_tls,
    stop_process,
    stop_redis_tls_sentinel,
)
from tests.support.xiva_source.faults import DwhProxy, PrivateRedis, free_port

if TYPE_CHECKING:
    from xiva_source.demo.data import DemoDwh
    from xiva_source.simulator import XivaSimulator


# --- the tiers ---------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``unit`` every test that uses no service fixture (the rule at the top)."""
    for item in items:
        kinds = services_of(item)
        if item.get_closest_marker("unit") is not None:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.unit is applied from the fixtures; remove it"
                + (f" (the test uses a service fixture: {sorted(kinds)})" if kinds else "")
            )
        if not kinds:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """A unit test's fixtures start no service (teardown is not guarded: a module's fixtures are
    torn down after whichever test ran last)."""
    if item.get_closest_marker("unit") is None:
        return (yield)
    with unit_guard(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A unit test reaches no service."""
    if item.get_closest_marker("unit") is None:
        return (yield)
    with unit_guard(item.nodeid):
        return (yield)


# --- every test ---------------------------------------------------------------------------------
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

    names = settings_variables()
    for name in list(os.environ):
        if name.upper() in names or name.startswith(PROJECT_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_FILE_VARIABLE, "none")
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


# --- what a test starts itself -----------------------------------------------------------------
@pytest.fixture
@service("subprocess")
def subprocesses() -> None:
    """Declares that the test starts child processes itself (the CLI as ``python -m``, an import
    check in a fresh interpreter, a lock holder): ``@pytest.mark.usefixtures("subprocesses")``."""


@pytest.fixture
@service("http")
def local_servers() -> None:
    """Declares that the test starts servers on loopback itself (a simulator of its own, the
    demo's): ``@pytest.mark.usefixtures("local_servers")``."""


@pytest.fixture(scope="session")
@service("chromium")
def chromium() -> str:
    """The path of Debian's ``chromium`` (headless rendering of the HTML report)."""
    path = shutil.which("chromium")
    assert path, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does it)"
    return path


# --- the simulator ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
@service("http")
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


# --- Redis and PostgreSQL -----------------------------------------------------------------------
@pytest.fixture(scope="session")
@service("redis")
def redis_url() -> str:
    """The real Redis URL (combine with ``redis_ns`` for isolation); a module's or session's
    fixture that writes to Redis requests it too."""
    return REDIS_URL


@pytest.fixture
def redis_ns(redis_url: str) -> Iterator[str]:
    """A key namespace of this test's own in the real Redis; its keys are deleted afterwards."""
    import redis

    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"*{ns}*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture(scope="session")
@service("postgresql")
def pg_base_url() -> str:
    """The real PostgreSQL's URL (a test uses ``pg_url``: a schema of its own)."""
    return PG_BASE_URL


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A SQLAlchemy URL to the real PostgreSQL, search_path set to a fresh schema of the test's."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_base_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pg_base_url}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


# --- the Feast layer ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
@service("http")
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
def feast_dwh_url(pg_base_url: str) -> Iterator[str]:
    """A PostgreSQL schema of the session (search_path), dropped at the end."""
    import sqlalchemy as sa

    from xiva_source.dwh import dispose_engines

    schema = f"feast_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_base_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pg_base_url}?options=-csearch_path%3D{schema}"
    dispose_engines()
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def feast_dwh(feast_dwh_url: str, feast_sim: XivaSimulator) -> DemoDwh:
    """The session DWH, filled for ``feast_sim``'s customers."""
    from xiva_source.demo.data import create_demo_dwh

    return create_demo_dwh(feast_dwh_url, feast_sim, seed=11)


@pytest.fixture
def feast_env(
    feast_sim: XivaSimulator,
    feast_dwh: DemoDwh,
    feast_dwh_url: str,
    redis_url: str,
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
        "REDIS_URL": redis_url,
        "XIVA_REDIS_PREFIX": redis_ns,  # the client's rate and usage keys: the test's own
        "FEATURE_STORE_DATA_SOURCE": "auto",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield FeastEnv(feast_sim, feast_dwh, feast_dwh_url, redis_url, monkeypatch)
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
    client = redis.Redis.from_url(feast_env.redis_url)
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


# --- Redis Cluster and Sentinel -----------------------------------------------------------------
@pytest.fixture(scope="session")
@service("redis")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A real 3-primary Redis Cluster on loopback ports, for the whole session."""
    nodes = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield nodes
    finally:
        stop_cluster(nodes)


@pytest.fixture
def cluster_ns(redis_cluster: RedisClusterNodes) -> Iterator[str]:
    """A key namespace of this test's own on the cluster; its keys are deleted afterwards."""
    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    redis_cluster.delete_matching(f"*{ns}*")


@pytest.fixture(scope="session")
@service("redis")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelNodes]:
    """A primary (password ``SENTINEL_PASSWORD``) and a sentinel, for the whole session."""
    nodes = start_sentinel(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        yield nodes
    finally:
        stop_sentinel(nodes)


# --- TLS and ACL services (security; tests/support/tls.py) -------------------------------------
@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The session's certificates (a CA, server and client certificates, an unrelated CA)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
@service("redis")
def redis_tls(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisTlsServer]:
    """A TLS-only ``redis-server`` (client certificates optional), for the whole session."""
    server = start_redis_tls(
        tls_files, tmp_path_factory.mktemp("redis-tls"), auth_clients="optional"
    )
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
@service("redis")
def redis_mtls(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisTlsServer]:
    """A TLS-only ``redis-server`` that requires a client certificate (mutual TLS)."""
    server = start_redis_tls(tls_files, tmp_path_factory.mktemp("redis-mtls"), auth_clients="yes")
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
@service("redis")
def redis_tls_cluster(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsCluster]:
    """A 3-primary Redis Cluster on TLS only (clients and cluster bus), for the session."""
    nodes = start_cluster(
        tmp_path_factory.mktemp("redis-tls-cluster"),
        tls_args=tls_files.redis_server_args(),
        cli_args=tls_files.redis_cli_args(),
    )
    yield TlsCluster(nodes, tls_files)
    stop_cluster(nodes)


@pytest.fixture(scope="session")
@service("redis")
def redis_tls_sentinel(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsSentinel]:
    """A password-protected TLS-only primary and a TLS-only sentinel, for the session."""
    sentinel = start_redis_tls_sentinel(tls_files, tmp_path_factory.mktemp("redis-tls-sentinel"))
    yield sentinel
    stop_redis_tls_sentinel(sentinel)


@pytest.fixture(scope="session")
@service("redis")
def redis_acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    """A private ``redis-server`` with docs/operations.md's ACL users (default user off)."""
    server = start_redis_acl(tmp_path_factory.mktemp("redis-acl"))
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
@service("postgresql")
def pg_tls(tls_files: TlsFiles) -> Iterator[PostgresTls]:
    """A private TLS-only PostgreSQL (client certificate required), for the whole session."""
    from xiva_source.dwh import dispose_engines

    server = start_postgres_tls(tls_files)
    yield server
    dispose_engines()
    stop_postgres_tls(server)


@pytest.fixture
@service("redis")
def private_redis() -> Iterator[PrivateRedis]:
    """A running ``redis-server`` of the test's own on a free loopback port (no persistence: a
    restart loses every key), killed after the test (the fault and sync tests stop it)."""
    server = PrivateRedis(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
@service("postgresql")
def dwh_proxy(feast_env: FeastEnv) -> Iterator[DwhProxy]:
    """The session DWH behind a TCP proxy of the test's own (give ``url`` to the process under
    test only): ``cut()`` makes it unreachable, ``restore()`` brings it back."""
    from sqlalchemy.engine import make_url

    real = make_url(feast_env.dwh_url)
    with running_proxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        url = real.set(host="127.0.0.1", port=proxy.port)
        yield DwhProxy(proxy, url.render_as_string(hide_password=False))
