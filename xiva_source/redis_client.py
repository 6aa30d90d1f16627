"""The one way the project builds a Redis client from ``REDIS_URL`` and ``REDIS_TYPE``.

Every Redis user (the online store's job steps, the Xiva client's shared rate and usage counters,
segmentation) gets its client here, so timeouts, URL checking and error wording are the same
everywhere, whatever the deployment's shape:

* ``REDIS_TYPE=redis`` (default): ``redis://[[user]:password@]host[:port][/db]`` (``rediss://``
  for TLS), one server: a ``redis.Redis``.
* ``REDIS_TYPE=redis_cluster``: ``redis://[[user]:password@]h1:p1,h2:p2,h3:p3`` names one or more
  nodes of the cluster (for discovery; the client learns the others): a
  ``redis.cluster.RedisCluster``. Credentials, scheme (TLS) and options of the first node apply to
  all; a cluster has only database 0.
* ``REDIS_TYPE=redis_sentinel``: ``redis://[[user]:password@]s1:p1,s2:p2[/db]`` names the
  sentinels; the client is the ``redis.Redis`` of the primary they elect for
  ``REDIS_SENTINEL_MASTER`` (credentials and database are the primary's, as in Feast).

Same values as Feast's ``redis_type``, so the online store and every other user agree.

TLS: ``rediss://`` in any of the three shapes (the sentinels too). The server's certificate is
always verified, chain and host name, against ``REDIS_TLS_CA_FILE`` (else the system's trust
store); ``REDIS_TLS_CERT_FILE`` / ``REDIS_TLS_KEY_FILE`` add a client certificate (mutual TLS).
Nothing downgrades it: TLS files with a ``redis://`` URL, or ``ssl_cert_reqs=none`` /
``ssl_check_hostname=false`` in the URL, are configuration errors (:class:`RedisTls`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlsplit

from xiva_source.errors import ConfigurationError
from xiva_source.redaction import redact, redact_url
from xiva_source.settings import RedisType, Settings

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from redis.cluster import RedisCluster

RedisClient: TypeAlias = "redis.Redis | RedisCluster"
"""What :func:`connect_redis` returns: a single server's (or sentinel primary's) or a cluster's."""

__all__ = [
    "FAIL_FAST_TIMEOUT",
    "TLS_FIX",
    "RedisClient",
    "RedisNodes",
    "RedisTls",
    "cluster_hint",
    "connect_redis",
    "connect_redis_async",
    "describe_redis_error",
    "is_cluster",
    "parse_redis_nodes",
    "redis_for_settings",
    "tls_hint",
]

FAIL_FAST_TIMEOUT = 2.0
"""Seconds a fail-fast client waits to connect or for a reply (rate limiter, usage counters)."""

_SCHEMES = ("redis", "rediss")
_URL_FIX = (
    "Set REDIS_URL to e.g. redis://:password@127.0.0.1:6379/0 (one server), or "
    "redis://:password@h1:6379,h2:6379,h3:6379 with REDIS_TYPE=redis_cluster or "
    "redis_sentinel (in .env or the environment)."
)

CLUSTER_FIX = (
    "REDIS_URL names a Redis Cluster node: set REDIS_TYPE=redis_cluster (and name one or more "
    "nodes: REDIS_URL=redis://h1:p1,h2:p2,h3:p3). If it is set already, check the cluster's "
    "state (redis-cli cluster info)."
)
"""The fix of an error a plain client gets from a cluster node (``MOVED``, ``CLUSTERDOWN``)."""

NOT_CLUSTER_FIX = (
    "REDIS_URL names a Redis server without cluster mode: set REDIS_TYPE=redis (or point "
    "REDIS_URL at the cluster's nodes)."
)
"""The fix when ``REDIS_TYPE=redis_cluster`` meets a server without cluster mode."""

TLS_FIX = (
    "If this Redis port speaks TLS, REDIS_URL must start with rediss:// (not redis://); set "
    "REDIS_TLS_CA_FILE to the CA that signed the server's certificate."
)
"""The fix when a plain ``redis://`` client meets a TLS port (the server drops it at once)."""

_VERIFY_FIX = (
    "Set REDIS_TLS_CA_FILE to the PEM file of the CA that signed the Redis server's certificate, "
    "and name the server in REDIS_URL by a host name or address its certificate lists "
    "(verification is never turned off)."
)
_CLIENT_CERT_FIX = (
    "The Redis server asks for a client certificate (mutual TLS): set REDIS_TLS_CERT_FILE and "
    "REDIS_TLS_KEY_FILE to a certificate its CA (tls-ca-cert-file) signed and its key."
)
# URL query options that would weaken verification: refused, never silently applied.
_WEAKENING = {"ssl_cert_reqs": ("required",), "ssl_check_hostname": ("true", "1", "yes", "y")}


@dataclass(frozen=True)
class RedisTls:
    """The TLS files of ``rediss://`` connections (``REDIS_TLS_*``); all optional.

    Attributes:
        ca_file: PEM file of the CA(s) that signed the servers' certificates; ``None``: the
            system's trust store.
        cert_file: Client certificate (PEM) for mutual TLS.
        key_file: Its private key (PEM).
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisTls:
        """``REDIS_TLS_CA_FILE``, ``REDIS_TLS_CERT_FILE``, ``REDIS_TLS_KEY_FILE``."""
        return cls(
            settings.redis_tls_ca_file, settings.redis_tls_cert_file, settings.redis_tls_key_file
        )

    @property
    def configured(self) -> bool:
        """Whether any TLS file is set."""
        return any(f is not None for f in (self.ca_file, self.cert_file, self.key_file))

    def options(self, url: str, nodes: RedisNodes) -> dict[str, Any]:
        """redis-py's connection options for ``nodes``: TLS with verification, or none.

        Args:
            url: ``REDIS_URL`` (for the messages; its password is masked).
            nodes: The parsed URL.

        Returns:
            ``{}`` for ``redis://``; for ``rediss://``: ``ssl``, ``ssl_cert_reqs="required"``,
            ``ssl_check_hostname=True`` and the files given.

        Raises:
            ConfigurationError: TLS files with a ``redis://`` URL (plain text would be sent
                where TLS was asked for), a certificate without its key or the reverse, a file
                that does not exist, or URL options that turn verification off.
        """
        for key, allowed in _WEAKENING.items():
            for name, value in parse_qsl(nodes.query):
                if name == key and value.strip().lower() not in allowed:
                    raise ConfigurationError(
                        f"REDIS_URL {redact_url(url)!r} turns TLS verification off "
                        f"({name}={value})",
                        f"Remove {name} from REDIS_URL: the server's certificate is always "
                        "verified. " + _VERIFY_FIX,
                        setting="REDIS_URL",
                    )
        if nodes.scheme != "rediss":
            if self.configured:
                raise ConfigurationError(
                    f"REDIS_TLS_* files are set but REDIS_URL {redact_url(url)!r} is plain "
                    "redis://, which would send everything unencrypted",
                    "Use rediss:// in REDIS_URL (TLS), or unset REDIS_TLS_CA_FILE, "
                    "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE.",
                    setting="REDIS_URL",
                )
            return {}
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = (
                ("REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE")
                if self.key_file is None
                else ("REDIS_TLS_KEY_FILE", "REDIS_TLS_CERT_FILE")
            )
            raise ConfigurationError(
                f"{given} is set but {missing} is not (a client certificate needs its key)",
                f"Set {missing} too, or unset {given}.",
                setting=missing,
            )
        options: dict[str, Any] = {
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
        }
        for setting, key, path in (
            ("REDIS_TLS_CA_FILE", "ssl_ca_certs", self.ca_file),
            ("REDIS_TLS_CERT_FILE", "ssl_certfile", self.cert_file),
            ("REDIS_TLS_KEY_FILE", "ssl_keyfile", self.key_file),
        ):
            if path is None:
                continue
            if not Path(path).expanduser().is_file():
                raise ConfigurationError(
                    f"{setting} names {str(path)!r}, which is not a file",
                    f"Set {setting} to an existing PEM file (readable by this user).",
                    setting=setting,
                )
            options[key] = str(Path(path).expanduser())
        return options


@dataclass(frozen=True)
class RedisNodes:
    """``REDIS_URL`` split into its nodes and the options they share (repr never shows secrets).

    Attributes:
        scheme: ``redis`` or ``rediss`` (TLS).
        nodes: ``(host, port)`` of every node named, in order.
        username: The user of the first node's credentials, if any.
        password: Its password, if any (excluded from the repr).
        db: The database number (0 when not given).
        query: The URL's query options (``?socket_timeout=...``), as redis-py reads them.
        explicit_db: Whether the URL names the database (``/0`` included).
    """

    scheme: str
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    db: int = 0
    query: str = ""
    explicit_db: bool = False

    def __repr__(self) -> str:
        return (
            f"RedisNodes(scheme={self.scheme!r}, nodes={self.nodes!r}, "
            f"username={self.username!r}, password={'***' if self.password else None}, "
            f"db={self.db})"
        )

    def node_url(self, index: int = 0) -> str:
        """A single-node URL of node ``index`` with the shared credentials, database, options."""
        from urllib.parse import quote

        host, port = self.nodes[index]
        auth = ""
        if self.username or self.password:
            user = quote(self.username or "", safe="")
            auth = f"{user}:{quote(self.password, safe='')}@" if self.password else f"{user}@"
        query = f"?{self.query}" if self.query else ""
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{auth}{shown}:{port}/{self.db}{query}"


def parse_redis_nodes(url: str) -> RedisNodes:
    """Split ``redis://[[user]:password@]h1:p1,h2:p2[/db][?options]`` into its nodes.

    Args:
        url: A ``REDIS_URL`` naming one or more nodes (``rediss://`` for TLS).

    Returns:
        The nodes and what they share (the first part's credentials apply to all).

    Raises:
        ConfigurationError: Not a Redis URL, a bad port or database (never shows the password).

    Example:
        >>> parse_redis_nodes("redis://:pw@a:7000,b:7001").nodes
        (('a', 7000), ('b', 7001))
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise _bad_url(url, "it must start with redis:// or rediss://")
    netloc, slash, tail = rest.partition("/")
    path, _, query = tail.partition("?") if slash else ("", "", "")
    if not slash and "?" in netloc:
        netloc, _, query = netloc.partition("?")
    username = password = None
    creds, at, hosts = netloc.rpartition("@")
    if at and "@" not in creds:  # one set of credentials for every node (a password may hold ",")
        user, colon, secret = creds.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon and secret else None
        netloc = hosts
    nodes: list[tuple[str, int]] = []
    for i, part in enumerate(p.strip() for p in netloc.split(",")):
        if not part:
            raise _bad_url(url, "it has an empty node between commas")
        creds, at, hostport = part.rpartition("@")
        if at and i == 0:  # credentials per node: the first node's apply to all
            user, colon, secret = creds.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon and secret else None
        try:
            parsed = urlsplit(f"redis://{hostport}")
            host, port = parsed.hostname, parsed.port or 6379
        except ValueError as e:
            raise _bad_url(url, f"node {i + 1} has a bad port ({e})") from e
        if not host:
            raise _bad_url(url, f"node {i + 1} names no host")
        nodes.append((host, port))
    db, explicit = 0, False
    path = path.strip("/")
    if path:
        if not path.isdigit():
            raise _bad_url(url, f"the database must be a number (got {path!r})")
        db, explicit = int(path), True
    for key, value in parse_qsl(query):
        if key == "db" and value.isdigit():
            db, explicit = int(value), True
    return RedisNodes(scheme.lower(), tuple(nodes), username, password, db, query, explicit)


def _bad_url(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"REDIS_URL {redact_url(url)!r} is not a Redis URL: {why}", _URL_FIX, setting="REDIS_URL"
    )


def connect_redis(
    url: str,
    *,
    redis_type: RedisType | str = RedisType.REDIS,
    sentinel_master: str = "mymaster",
    fail_fast: bool = False,
    tls: RedisTls | None = None,
) -> redis.Redis | RedisCluster:
    """A Redis client for ``url`` deployed as ``redis_type`` (see the module docstring).

    A single server's and a sentinel primary's client connect on their first command; a cluster
    client asks the named nodes for the slot map at once.

    Args:
        url: ``REDIS_URL``: one node, or several separated by commas for a cluster or sentinels.
        redis_type: ``REDIS_TYPE``: ``redis`` | ``redis_cluster`` | ``redis_sentinel``.
        sentinel_master: ``REDIS_SENTINEL_MASTER``: the primary's name at the sentinels.
        fail_fast: Short timeouts and a single attempt, for callers that degrade without Redis
            (a slow or dead Redis must not stall a Xiva call).
        tls: The TLS files for a ``rediss://`` URL (``None``: the system's trust store, no
            client certificate). :func:`redis_for_settings` passes the settings' files.

    Returns:
        A ``redis.Redis`` (single server; the primary with sentinels) or a
        ``redis.cluster.RedisCluster``.

    Raises:
        ConfigurationError: ``url``, ``redis_type`` or the TLS files are not usable (several
            nodes with ``redis``, a database other than 0 on a cluster, a cluster type against a
            server without cluster mode, TLS files with ``redis://``); the message never shows
            the password.
        redis.exceptions.ConnectionError: A cluster's nodes cannot be reached (password masked).

    Example:
        >>> client = connect_redis("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> nodes = "redis://a:7000,b:7001"
        >>> cluster = connect_redis(nodes, redis_type="redis_cluster")  # doctest: +SKIP
    """
    kind, nodes, kwargs = _prepare(url, redis_type, tls)
    if fail_fast:
        kwargs.update(_fail_fast_options())
    if kwargs.get("ssl"):
        kwargs["retry"] = _tls_retry(fail_fast)
    if kind is RedisType.REDIS_CLUSTER:
        return _cluster(url, nodes, kwargs)
    if kind is RedisType.REDIS_SENTINEL:
        from redis.sentinel import Sentinel

        sentinel = Sentinel(list(nodes.nodes), sentinel_kwargs=_sentinel_kwargs(kwargs), **kwargs)
        client: redis.Redis = sentinel.master_for(_master(sentinel_master))
        return client
    import redis as redis_lib

    host, port = nodes.nodes[0]
    return redis_lib.Redis(host=host, port=port, **kwargs)


def connect_redis_async(
    url: str,
    *,
    redis_type: RedisType | str = RedisType.REDIS,
    sentinel_master: str = "mymaster",
    tls: RedisTls | None = None,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """The ``redis.asyncio`` twin of :func:`connect_redis` (Feast's async reads, ``feast serve``).

    Same URL, deployment types, TLS and errors; every client connects on its first command.

    Args:
        url: ``REDIS_URL``.
        redis_type: ``REDIS_TYPE``.
        sentinel_master: ``REDIS_SENTINEL_MASTER``.
        tls: As for :func:`connect_redis`.

    Returns:
        A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``.

    Raises:
        ConfigurationError: As for :func:`connect_redis`.
    """
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode

    kind, nodes, kwargs = _prepare(url, redis_type, tls)
    if kind is RedisType.REDIS_CLUSTER:
        _check_cluster_db(url, nodes)
        kwargs.pop("db", None)
        startup = [ClusterNode(host, port) for host, port in nodes.nodes]
        return aioredis.RedisCluster(startup_nodes=startup, **kwargs)
    if kind is RedisType.REDIS_SENTINEL:
        sentinel = aioredis.Sentinel(
            list(nodes.nodes), sentinel_kwargs=_sentinel_kwargs(kwargs), **kwargs
        )
        client: aioredis.Redis = sentinel.master_for(_master(sentinel_master))
        return client
    host, port = nodes.nodes[0]
    return aioredis.Redis(host=host, port=port, **kwargs)


def redis_for_settings(
    settings: Settings, *, url: str | None = None, fail_fast: bool = False
) -> redis.Redis | RedisCluster:
    """:func:`connect_redis` for ``settings``: ``REDIS_URL`` (or ``url``), ``REDIS_TYPE``,
    ``REDIS_SENTINEL_MASTER`` and the ``REDIS_TLS_*`` files.

    Args:
        settings: The entry point's settings.
        url: A URL to use instead of ``REDIS_URL`` (``xiva-source usage --redis-url``).
        fail_fast: As for :func:`connect_redis`.

    Raises:
        ConfigurationError: No URL at all, or as for :func:`connect_redis`.
    """
    target = url or settings.redis_url
    if not target:
        raise ConfigurationError("no REDIS_URL is configured", _URL_FIX, setting="REDIS_URL")
    return connect_redis(
        target,
        redis_type=settings.redis_type,
        sentinel_master=settings.redis_sentinel_master,
        fail_fast=fail_fast,
        tls=RedisTls.from_settings(settings),
    )


def _prepare(
    url: str, redis_type: RedisType | str, tls: RedisTls | None
) -> tuple[RedisType, RedisNodes, dict[str, Any]]:
    """The deployment type, the nodes and the options every connection shares."""
    kind = _redis_type(redis_type)
    nodes = parse_redis_nodes(url)
    if kind is RedisType.REDIS and len(nodes.nodes) > 1:
        raise ConfigurationError(
            f"REDIS_URL {redact_url(url)!r} names {len(nodes.nodes)} nodes but REDIS_TYPE is "
            "redis (one server)",
            "Set REDIS_TYPE=redis_cluster (the nodes of a cluster) or REDIS_TYPE=redis_sentinel "
            "(the sentinels), or name one server in REDIS_URL.",
            setting="REDIS_TYPE",
        )
    kwargs = _connection_options(url, nodes)
    kwargs.update((tls or RedisTls()).options(url, nodes))
    return kind, nodes, kwargs


def _redis_type(value: RedisType | str) -> RedisType:
    try:
        return RedisType(str(value).strip().lower())
    except ValueError as e:
        raise ConfigurationError(
            f"REDIS_TYPE {value!r} is not a Redis deployment type",
            "Set REDIS_TYPE to redis (one server), redis_cluster or redis_sentinel.",
            setting="REDIS_TYPE",
        ) from e


def _fail_fast_options() -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": FAIL_FAST_TIMEOUT,
        "socket_connect_timeout": FAIL_FAST_TIMEOUT,
        "retry": Retry(NoBackoff(), 1),
    }


def _tls_retry(fail_fast: bool) -> Any:
    """redis-py's retry policy (or the fail-fast one), except that a refused certificate is
    final: retrying cannot make it verify, and the user waits for the fix, not for backoffs."""
    from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
    from redis.retry import Retry

    class _Final(Exception):
        def __init__(self, error: BaseException) -> None:
            super().__init__()
            self.error = error

    class CertificateFinalRetry(Retry):
        def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
            def once() -> Any:
                try:
                    return do()
                except Exception as e:
                    if _certificate_refused(e):
                        raise _Final(e) from e  # not a retried error type: out at once
                    raise

            try:
                return super().call_with_retry(once, fail, *args, **kwargs)
            except _Final as final:
                raise final.error from None

    if fail_fast:
        return CertificateFinalRetry(NoBackoff(), 1)
    return CertificateFinalRetry(ExponentialWithJitterBackoff(base=1, cap=10), 3)


def _certificate_refused(error: BaseException) -> bool:
    hint = tls_hint(error)
    return hint is not None and hint[1] in (_VERIFY_FIX, _CLIENT_CERT_FIX)


def _connection_options(url: str, nodes: RedisNodes) -> dict[str, Any]:
    """What every node's connection shares: credentials, database, the URL's query options."""
    from redis.connection import parse_url

    try:
        parsed: dict[str, Any] = parse_url(nodes.node_url(0))
    except ValueError as e:
        raise ConfigurationError(
            f"REDIS_URL {redact_url(url)!r} is not a Redis URL ({redact(str(e))})",
            _URL_FIX,
            setting="REDIS_URL",
        ) from e
    for key in ("host", "port", "path", "connection_class"):
        parsed.pop(key, None)
    return parsed


def _sentinel_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The sentinels' own connections: no credentials or database (as Feast), the same
    timeouts, and the same TLS (a ``rediss://`` URL names TLS sentinels)."""
    return {k: v for k, v in kwargs.items() if k.startswith(("socket_", "ssl"))}


def _master(name: str) -> str:
    if not name:
        raise ConfigurationError(
            "REDIS_TYPE=redis_sentinel needs the primary's name",
            "Set REDIS_SENTINEL_MASTER (the name the sentinels monitor, e.g. mymaster).",
            setting="REDIS_SENTINEL_MASTER",
        )
    return name


def _check_cluster_db(url: str, nodes: RedisNodes) -> None:
    if nodes.db != 0:
        raise ConfigurationError(
            f"REDIS_URL {redact_url(url)!r} asks for database {nodes.db}, but a Redis Cluster "
            "has only database 0",
            "Remove the /<db> from REDIS_URL (keys of several projects are kept apart by name).",
            setting="REDIS_URL",
        )


def _cluster(url: str, nodes: RedisNodes, kwargs: dict[str, Any]) -> RedisCluster:
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import ConnectionError, RedisClusterException, RedisError

    _check_cluster_db(url, nodes)
    kwargs = {k: v for k, v in kwargs.items() if k != "db"}
    startup = [ClusterNode(host, port) for host, port in nodes.nodes]
    try:
        return RedisCluster(startup_nodes=startup, **kwargs)
    except (RedisClusterException, RedisError) as e:
        text = redact(str(e))
        if "cluster mode is not enabled" in text.lower() or "cluster support disabled" in text:
            raise ConfigurationError(
                f"REDIS_TYPE=redis_cluster, but {redact_url(url)!r} is not a Redis Cluster "
                f"({text})",
                NOT_CLUSTER_FIX,
                setting="REDIS_TYPE",
            ) from e
        raise ConnectionError(f"cannot reach the Redis Cluster at {redact_url(url)}: {text}") from e


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a ``redis.cluster.RedisCluster`` (without importing redis first)."""
    import sys

    cluster = sys.modules.get("redis.cluster")
    return cluster is not None and isinstance(client, cluster.RedisCluster)


def cluster_hint(error: BaseException) -> str | None:
    """The fix for a Redis error caused by the wrong ``REDIS_TYPE``; None for any other error.

    A plain client against a cluster node gets ``MOVED`` / ``ASK`` for keys of other nodes and
    ``CLUSTERDOWN``; a cluster client against a plain server gets "cluster support disabled".

    Args:
        error: Any exception (only redis-py's are recognised; nothing is imported to check).
    """
    import sys

    exc = sys.modules.get("redis.exceptions")
    if exc is None:
        return None
    if isinstance(error, exc.AskError | exc.ClusterDownError):  # MovedError is an AskError
        return CLUSTER_FIX
    text = str(error)
    if isinstance(error, exc.ResponseError) and text.startswith(("MOVED ", "ASK ", "CLUSTERDOWN")):
        return CLUSTER_FIX
    if isinstance(error, exc.RedisError | exc.RedisClusterException) and (
        "cluster support disabled" in text or "Cluster mode is not enabled" in text
    ):
        return NOT_CLUSTER_FIX
    return None


def tls_hint(error: BaseException) -> tuple[str, str] | None:
    """A TLS failure's problem and fix; None for any other error.

    Recognised by text along the exception's causes (redis-py wraps ``ssl`` errors in its
    ``ConnectionError``): a certificate that does not verify (wrong CA, a host name the
    certificate does not list), a server asking for a client certificate, and a plain client
    at a TLS port (the server resets the connection at once).

    Args:
        error: Any exception (nothing is imported to check).

    Returns:
        ``(problem, fix)``, secret-free, or None.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    texts: list[str] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    text = " ".join(texts)
    lowered = text.lower()
    first = redact(texts[0]).strip().splitlines()[0][:300] if texts[0].strip() else ""
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        return (
            f"Redis's TLS certificate was refused (certificate verify failed): {first}",
            _VERIFY_FIX,
        )
    if any(
        marker in lowered
        for marker in ("certificate required", "alert_certificate_required", "eof occurred in")
    ):  # TLS 1.3: a server wanting a client certificate just closes the session (EOF)
        return (f"the Redis server closed the TLS connection: {first}", _CLIENT_CERT_FIX)
    if "wrong version number" in lowered or "record layer failure" in lowered:
        return (
            f"the Redis server does not speak TLS on that port: {first}",
            "Use redis:// for a plain port, or REDIS_URL's TLS port (tls-port) with rediss://.",
        )
    if "connection reset by peer" in lowered or "closed by server" in lowered:
        return (f"the Redis server dropped the connection at once: {first}", TLS_FIX)
    return None


def describe_redis_error(error: BaseException) -> str:
    """``error``'s text with the reply code redis-py strips (``MOVED 6553 host:port``), masked.

    Args:
        error: Any exception.
    """
    import sys

    text = redact(str(error))
    exc = sys.modules.get("redis.exceptions")
    if exc is None:
        return text
    for cls, code in (
        (exc.MovedError, "MOVED"),
        (exc.AskError, "ASK"),
        (exc.ClusterDownError, "CLUSTERDOWN"),
    ):
        if isinstance(error, cls):
            return text if text.startswith(code) else f"{code} {text}"
    return text
