"""Private TLS and ACL services for the security tests (helpers; the fixtures are in
tests/conftest.py).

Nothing here touches the machine's shared Redis or PostgreSQL: every server is a process of the
session's own on a free loopback port, with certificates the session makes (``trustme``).

- ``tls_files``: a CA, a server certificate for ``localhost`` / ``127.0.0.1``, a client
  certificate (common name :data:`PG_TLS_USER`, the PostgreSQL user it authenticates) and a
  second, unrelated CA (the wrong-CA tests), as PEM files.
- ``redis_tls``: a single ``redis-server`` listening on TLS only; client certificates optional.
- ``redis_mtls``: the same, client certificates required (mutual TLS).
- ``redis_tls_cluster``: a 3-primary Redis Cluster on TLS only (clients and the cluster bus),
  started by ``tests.redis_cluster.start_cluster``.
- ``redis_tls_sentinel``: a TLS-only primary (password :data:`SENTINEL_PASSWORD`) and a TLS-only
  sentinel watching it over TLS.
- ``redis_acl``: a plain ``redis-server`` whose users are the ``ACL SETUSER`` lines of
  docs/operations.md ("Security"), read from the page (so the page is what is tested), the
  default user disabled.
- ``pg_tls``: a PostgreSQL cluster of its own (``initdb`` as the ``postgres`` user in a temporary
  directory), ``ssl = on``, TLS only, client certificates required (``clientcert=verify-full``).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_cluster import (
    SENTINEL_MASTER,
    SENTINEL_PASSWORD,
    RedisClusterNodes,
    _free_port_pair,
    _wait_ping,
)

__all__ = [
    "ACL_PASSWORDS",
    "PG_TLS_USER",
    "AclRedis",
    "PostgresTls",
    "RedisTlsServer",
    "TlsCluster",
    "TlsFiles",
    "TlsSentinel",
    "acl_command",
    "acl_lines",
    "start_redis_acl",
    "start_redis_tls",
    "start_redis_tls_sentinel",
    "stop_process",
    "stop_redis_tls_sentinel",
]

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_TLS_USER = "loyalty"
"""The PostgreSQL user of ``pg_tls`` (and the client certificate's common name)."""
ACL_PROJECT = "loyalty"
"""The Feast project the ACL lines of docs/operations.md name (``~*loyalty``)."""
ACL_PASSWORDS = {
    "loyalty-job": "job-Pa55-4c1",
    "loyalty-serving": "serving-Pa55-4c1",
    "loyalty-segmentation": "segmentation-Pa55-4c1",
    "loyalty-admin": "admin-Pa55-4c1",
}
"""The passwords the ``redis_acl`` server gives the users of the ACL lines."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files made for the session (``trustme``)."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """An unrelated CA: a client trusting only it must refuse the servers."""

    def redis_server_args(self, *, auth_clients: str = "optional") -> list[str]:
        """``redis-server`` options for TLS with these files."""
        return [
            "--tls-cert-file", str(self.server_cert),
            "--tls-key-file", str(self.server_key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", auth_clients,
            "--tls-replication", "yes",
        ]  # fmt: skip

    def redis_cli_args(self) -> list[str]:
        """``redis-cli`` options to reach a TLS server (with the client certificate)."""
        return [
            "--tls",
            "--cacert", str(self.ca),
            "--cert", str(self.client_cert),
            "--key", str(self.client_key),
        ]  # fmt: skip


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, its server and client certificates, and an unrelated CA, written to ``directory``."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert(f"{PG_TLS_USER}@example.invalid", common_name=PG_TLS_USER)
    files = TlsFiles(
        directory,
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    other.cert_pem.write_to_path(str(files.other_ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    for key in (files.server_key, files.client_key):
        key.chmod(0o600)  # libpq refuses a key others can read
    return files


@dataclass
class RedisTlsServer:
    """A ``redis-server`` on TLS only."""

    port: int
    files: TlsFiles
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``rediss://localhost:<port>/0``."""
        return f"rediss://localhost:{self.port}/0"

    @property
    def plain_url(self) -> str:
        """``redis://localhost:<port>/0``: the wrong scheme for this port."""
        return f"redis://localhost:{self.port}/0"

    def admin(self):  # type: ignore[no-untyped-def]
        """A verified TLS client with the client certificate (the test's own; close it)."""
        import redis

        return redis.Redis.from_url(
            self.url,
            ssl_ca_certs=str(self.files.ca),
            ssl_certfile=str(self.files.client_cert),
            ssl_keyfile=str(self.files.client_key),
        )

    def delete_matching(self, pattern: str) -> None:
        """Delete the keys matching ``pattern``."""
        client = self.admin()
        try:
            with client.pipeline(transaction=False) as pipe:
                for key in client.scan_iter(match=pattern, count=1000):
                    pipe.delete(key)  # one by one: a cluster node refuses a cross-slot DEL
                pipe.execute()
        finally:
            client.close()


def _spawn_redis(workdir: Path, *listen: str) -> subprocess.Popen[bytes]:
    """A ``redis-server`` on loopback, no persistence, listening as ``listen`` says."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            "redis-server", *listen,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _start_redis_tls(files: TlsFiles, workdir: Path, *, auth_clients: str) -> RedisTlsServer:
    port = _free_port_pair()
    server = RedisTlsServer(port, files)
    server.process = _spawn_redis(
        workdir,
        "--port", "0",
        "--tls-port", str(port),
        *files.redis_server_args(auth_clients=auth_clients),
    )  # fmt: skip
    _wait_ping(port, cli_args=files.redis_cli_args())
    return server


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.kill()
        process.wait(timeout=10)


@dataclass
class TlsCluster:
    """The TLS cluster: its nodes and its ``rediss://`` URL."""

    nodes: RedisClusterNodes
    files: TlsFiles

    @property
    def url(self) -> str:
        """``rediss://localhost:P1,localhost:P2,localhost:P3``."""
        return "rediss://" + ",".join(f"localhost:{p}" for p in self.nodes.ports)

    def delete_matching(self, pattern: str) -> None:
        """Delete the keys matching ``pattern`` on every primary."""
        for port in self.nodes.ports:
            server = RedisTlsServer(port, self.files)
            server.delete_matching(pattern)


@dataclass
class TlsSentinel:
    """A TLS-only primary and the TLS-only sentinel watching it."""

    primary: RedisTlsServer
    sentinel_port: int
    process: subprocess.Popen[bytes] | None = None
    master: str = SENTINEL_MASTER

    @property
    def files(self) -> TlsFiles:
        return self.primary.files

    @property
    def url(self) -> str:
        """``rediss://:<password>@localhost:<sentinel port>``: the sentinel, the primary's
        password."""
        return f"rediss://:{SENTINEL_PASSWORD}@localhost:{self.sentinel_port}"


# --- Redis ACL users ---------------------------------------------------------------------------


def acl_lines(doc: Path = OPERATIONS_DOC) -> list[str]:
    """The ``ACL SETUSER`` lines of docs/operations.md's "Security" section, in order."""
    text = doc.read_text(encoding="utf-8")
    block = re.search(r"<!-- acl-begin -->\s*```[a-z]*\n(.*?)```\s*<!-- acl-end -->", text, re.S)
    if block is None:
        raise AssertionError("docs/operations.md has no <!-- acl-begin --> ... block")
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


@dataclass
class AclRedis:
    """A plain ``redis-server`` whose users are those of docs/operations.md."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)

    def url(self, user: str, db: int = 0) -> str:
        """``redis://<user>:<password>@127.0.0.1:<port>/<db>``."""
        return f"redis://{user}:{ACL_PASSWORDS[user]}@127.0.0.1:{self.port}/{db}"

    def admin(self):  # type: ignore[no-untyped-def]
        """A client of the administrator user (the test's own; close it)."""
        import redis

        return redis.Redis.from_url(self.url("loyalty-admin"))

    def denied(self) -> list[str]:
        """The ACL log's denied commands since the last :meth:`reset_log` (``user: command``)."""
        client = self.admin()
        try:
            return [
                f"{_text(e['username'])}: {_text(e['object'])} ({_text(e['reason'])})"
                for e in client.acl_log()
            ]
        finally:
            client.close()

    def reset_log(self) -> None:
        client = self.admin()
        try:
            client.acl_log_reset()
        finally:
            client.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def acl_command(line: str) -> list[str]:
    """One documented line with its password placeholder filled, as redis-cli arguments."""
    words = line.split()
    user = words[2] if len(words) > 2 else ""
    return [
        f">{ACL_PASSWORDS[user]}" if w.startswith(">") and user in ACL_PASSWORDS else w
        for w in words
    ]


# --- PostgreSQL with TLS -----------------------------------------------------------------------


@dataclass
class PostgresTls:
    """A private PostgreSQL cluster: TLS only, client certificates required."""

    port: int
    files: TlsFiles
    datadir: Path
    database: str = "dwh"

    def url(
        self,
        *,
        ca: Path | None = None,
        sslmode: str = "verify-full",
        client_cert: bool = True,
        host: str = "localhost",
    ) -> str:
        """A ``DWH_URL`` (SQLAlchemy, psycopg) with the libpq TLS options in its query."""
        query = [f"sslmode={sslmode}", f"sslrootcert={ca or self.files.ca}"]
        if client_cert:
            query += [f"sslcert={self.files.client_cert}", f"sslkey={self.files.client_key}"]
        return f"postgresql+psycopg://{PG_TLS_USER}@{host}:{self.port}/{self.database}?" + "&".join(
            query
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=False
    )


def start_postgres_tls(files: TlsFiles) -> PostgresTls:
    """``initdb`` + ``pg_ctl start`` a TLS-only cluster owned by ``postgres`` in a temp dir.

    ``initdb`` refuses to run as root, so the cluster is made and run as the ``postgres`` user
    (``runuser``), in a directory it owns; the server's key is copied there with mode 0600.
    """
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        raise RuntimeError("PostgreSQL 15 server binaries and runuser are needed")
    base = Path(tempfile.mkdtemp(prefix="pg-tls-"))
    base.chmod(0o755)
    datadir = base / "data"
    shutil.chown(base, "postgres", "postgres")
    done = _as_postgres(
        str(PG_BIN / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
    )
    if done.returncode:
        raise RuntimeError(f"initdb failed: {done.stderr}")
    for source, name in ((files.server_cert, "server.crt"), (files.server_key, "server.key")):
        target = datadir / name
        shutil.copy(source, target)
        shutil.chown(target, "postgres", "postgres")
        target.chmod(0o600)
    shutil.copy(files.ca, datadir / "root.crt")
    shutil.chown(datadir / "root.crt", "postgres", "postgres")
    port = _free_port()
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{base}'\n"
            "ssl = on\n"
            "ssl_cert_file = 'server.crt'\n"
            "ssl_key_file = 'server.key'\n"
            "ssl_ca_file = 'root.crt'\n"
            "fsync = off\n"
        )
    (datadir / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 trust clientcert=verify-full\n"
        "hostnossl all all 0.0.0.0/0 reject\n"
    )
    done = _as_postgres(
        str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-l", str(base / "log"), "-w", "start"
    )
    if done.returncode:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {done.stderr} {log}")
    server = PostgresTls(port, files, datadir)
    for sql in (
        f"CREATE ROLE {PG_TLS_USER} LOGIN",
        f"CREATE DATABASE {server.database} OWNER {PG_TLS_USER}",
    ):
        done = _as_postgres(
            str(PG_BIN / "psql"), "-h", str(base), "-p", str(port), "-U", "postgres",
            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"{sql} failed: {done.stderr}")
    return server


def stop_postgres_tls(server: PostgresTls) -> None:
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(server.datadir), "-m", "immediate", "stop")
    shutil.rmtree(server.datadir.parent, ignore_errors=True)


def start_redis_tls(files: TlsFiles, workdir: Path, *, auth_clients: str) -> RedisTlsServer:
    """A TLS-only ``redis-server`` (``auth_clients``: ``optional`` or ``yes``: mutual TLS)."""
    return _start_redis_tls(files, workdir, auth_clients=auth_clients)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Kill a server this module started and reap it."""
    _stop(process)


def start_redis_tls_sentinel(files: TlsFiles, workdir: Path) -> TlsSentinel:
    """A password-protected TLS-only primary and a TLS-only sentinel (quorum 1) watching it."""
    port = _free_port_pair()
    primary = RedisTlsServer(port, files)
    primary.process = _spawn_redis(
        workdir / "primary",
        "--port", "0",
        "--tls-port", str(port),
        "--requirepass", SENTINEL_PASSWORD,
        *files.redis_server_args(),
    )  # fmt: skip
    sentinel = TlsSentinel(primary, _free_port_pair())
    conf = workdir / "sentinel.conf"  # the sentinel rewrites its config file: a writable one
    tls = files.redis_server_args()
    conf.write_text(
        f"port 0\ntls-port {sentinel.sentinel_port}\nbind 127.0.0.1\ndir {workdir}\n"
        + "".join(f"{tls[i].lstrip('-')} {tls[i + 1]}\n" for i in range(0, len(tls), 2))
        + f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {port} 1\n"
        f"sentinel auth-pass {SENTINEL_MASTER} {SENTINEL_PASSWORD}\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 5000\n"
    )
    sentinel.process = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ping(sentinel.sentinel_port, cli_args=files.redis_cli_args())
    except BaseException:
        stop_redis_tls_sentinel(sentinel)
        raise
    return sentinel


def stop_redis_tls_sentinel(sentinel: TlsSentinel) -> None:
    """Stop the sentinel and its primary."""
    _stop(sentinel.process)
    _stop(sentinel.primary.process)


def start_redis_acl(workdir: Path) -> AclRedis:
    """A private ``redis-server`` set up with docs/operations.md's ACL lines (default user off)."""
    port = _free_port_pair()
    server = AclRedis(port, lines=acl_lines())
    server.process = _spawn_redis(workdir, "--port", str(port))
    try:
        _wait_ping(port)
        admin: list[str] = []
        for line in server.lines:  # as written; the default user goes last (it runs them)
            args = acl_command(line)
            auth = ["--user", "loyalty-admin", "--pass", ACL_PASSWORDS["loyalty-admin"]]
            done = subprocess.run(
                ["redis-cli", "-p", str(port), "--no-auth-warning", *admin, *args],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.stdout.strip() != "OK":
                raise RuntimeError(f"{line!r} failed: {done.stdout} {done.stderr}")
            if len(args) > 2 and args[2] == "loyalty-admin":
                admin = auth
    except BaseException:
        _stop(server.process)
        raise
    return server
