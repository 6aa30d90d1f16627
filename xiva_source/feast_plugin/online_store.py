"""``LoyaltyRedisOnlineStore``: Feast's Redis online store, configured from the project's settings.

One ``feature_store.yaml`` serves every environment: the connection comes from ``REDIS_URL``
(``redis://[[user]:password@]host:port/db``, ``rediss://`` for TLS; default
``redis://127.0.0.1:6379``; several nodes ``redis://h1:p1,h2:p2`` for a cluster or the sentinels),
the deployment from ``REDIS_TYPE`` (``redis`` | ``redis_cluster`` | ``redis_sentinel``, Feast's
``redis_type``) and ``REDIS_SENTINEL_MASTER``, and the entity expiry from ``ONLINE_TTL_SECONDS``
(default 86400), unless the yaml sets ``connection_string`` / ``redis_type`` / ``sentinel_master``
/ ``key_ttl_seconds`` itself. Everything else is Feast's Redis store unchanged (layout, reads,
writes, its cluster and sentinel clients).

``feature_store.yaml``::

    online_store:
      type: xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore

When the settings are read: Feast validates the config before it knows the repository's path, so
the config cannot read them then (it would find the ``.env`` of the working directory, not the
repository's). Instead, every store method Feast calls with the ``RepoConfig`` first binds the
config (:func:`bind_online_config`): the settings are loaded once with
``load_settings(repo_path=config.repo_path)`` and ``connection_string`` / ``key_ttl_seconds`` are
filled in before Feast builds its client. Code reading the config directly binds it first.

TLS: with a ``rediss://`` URL the bound connection string carries ``ssl=true`` and the
``REDIS_TLS_*`` files (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, verification
required), so even Feast's own client builder verifies the server; the store's clients
(:meth:`LoyaltyRedisOnlineStore._get_client`, its async twin, :func:`online_redis_client`) are
built by :mod:`xiva_source.redis_client` from the bound URL and files (TLS sentinels included).

The connection string holds the password: it is excluded from the config's ``repr`` and never
logged.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from pydantic import Field, PrivateAttr, StrictStr

from xiva_source.errors import ConfigurationError
from xiva_source.feast_plugin.on_demand import OnlineRead, precomputed
from xiva_source.feast_plugin.repo_settings import repo_settings
from xiva_source.redis_client import (
    RedisTls,
    connect_redis,
    connect_redis_async,
    parse_redis_nodes,
)
from xiva_source.settings import DEFAULT_REDIS_URL, Settings

if TYPE_CHECKING:
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.repo_config import RepoConfig

    from xiva_source.redis_client import RedisClient

__all__ = [
    "LoyaltyRedisOnlineStore",
    "LoyaltyRedisOnlineStoreConfig",
    "bind_online_config",
    "online_redis_client",
    "redis_url_to_feast",
]


def redis_url_to_feast(url: str, redis_type: str = "redis", tls: RedisTls | None = None) -> str:
    """Translate a ``redis://`` URL into Feast's ``host:port,db=N,password=...`` form.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...`` (TLS); several
            nodes (``redis://:pw@h1:p1,h2:p2``) for a cluster or the sentinels, the first
            node's credentials applying to all.
        redis_type: ``REDIS_TYPE``: ``redis_cluster`` leaves the database out (a cluster has
            only database 0, and Feast's cluster client refuses ``db``).
        tls: The ``REDIS_TLS_*`` files; with ``rediss://`` they become ``ssl_ca_certs``,
            ``ssl_certfile``, ``ssl_keyfile`` (redis-py's names, which Feast passes through).

    Returns:
        The Feast connection string (every node first, then the parameters).

    Raises:
        ValueError: Not a redis URL, or a password/user/path containing ``,`` (which Feast's
            format cannot carry). The message never includes the password.
        ConfigurationError: A node, the database or the TLS files are not usable (TLS files
            with ``redis://`` included).

    Example:
        >>> redis_url_to_feast("redis://:pw@cache:6380/2")
        'cache:6380,db=2,password=pw'
        >>> redis_url_to_feast("redis://:pw@a:7000,b:7001", "redis_cluster")
        'a:7000,b:7001,password=pw'
    """
    scheme = urlsplit(url.split(",", 1)[0]).scheme if "://" in url else ""
    if scheme not in ("redis", "rediss"):
        raise ValueError(
            f"REDIS_URL must start with redis:// or rediss:// (got scheme {scheme!r}); "
            "e.g. redis://:password@host:6379/0"
        )
    parts = parse_redis_nodes(url)
    items = [f"{host}:{port}" for host, port in parts.nodes]
    if parts.explicit_db and str(redis_type) != "redis_cluster":
        items.append(f"db={parts.db}")
    if parts.username:
        items.append(f"username={_safe(parts.username, 'user name')}")
    if parts.password:
        items.append(f"password={_safe(parts.password, 'password')}")
    for key, value in (tls or RedisTls()).options(url, parts).items():
        if key == "ssl":
            items.append("ssl=true")
        elif key == "ssl_check_hostname":
            items.append("ssl_check_hostname=true")
        else:
            items.append(f"{key}={_safe(str(value), key)}")
    return ",".join(items)


def _safe(value: str, what: str) -> str:
    if "," in value:
        raise ValueError(
            f"the Redis {what} in REDIS_URL contains ',', which Feast's connection string "
            "cannot carry; change it or set connection_string in feature_store.yaml"
        )
    return value


def _feast_to_url(connection_string: str) -> str | None:
    """The ``redis://`` URL of a single-node Feast connection string; None if it cannot say it.

    Only ``host:port`` with ``db``, ``username``, ``password``, ``ssl`` (and verification left
    strict) translate; other parameters (timeouts, TLS files, several nodes) are left to Feast's
    own client builder.
    """
    nodes, params = RedisOnlineStore._parse_connection_string(connection_string)
    # Strict verification is what connect_redis always does: those two say nothing more.
    strict = {"ssl_cert_reqs": "required", "ssl_check_hostname": "true"}
    for key, value in strict.items():
        if key in params and str(params.pop(key)).lower() != value:
            return None
    if len(nodes) != 1 or not set(params) <= {"db", "username", "password", "ssl"}:
        return None
    host, port = nodes[0].get("host") or "127.0.0.1", nodes[0].get("port") or 6379
    scheme = "rediss" if str(params.get("ssl", "")).lower() == "true" else "redis"
    auth = ""
    if "password" in params or "username" in params:
        user = quote(str(params.get("username", "")), safe="")
        secret = quote(str(params["password"]), safe="") if "password" in params else ""
        auth = f"{user}:{secret}@" if secret else f"{user}@"
    return f"{scheme}://{auth}{host}:{port}/{int(params.get('db', 0))}"


_StoreType = Literal[
    "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore",
    # feature_store.yaml files written before the re-layout (compatibility shim)
    "xiva_source.online_store.LoyaltyRedisOnlineStore",
]
_STORE_TYPE: _StoreType = "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"


class LoyaltyRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis store config; ``REDIS_URL`` / ``REDIS_TYPE`` / ``REDIS_SENTINEL_MASTER`` /
    ``ONLINE_TTL_SECONDS`` fill what it leaves out.

    ``connection_string`` is ``None`` until the config is bound to the repository's settings
    (:func:`bind_online_config`), so an unbound config can never silently reach a default Redis.
    """

    type: _StoreType = _STORE_TYPE  # type: ignore[assignment]
    """Online store type selector."""
    connection_string: StrictStr | None = Field(default=None, repr=False)  # type: ignore[assignment]
    """Feast's ``host:port,db=N,password=...``; from REDIS_URL unless set in the yaml."""

    _explicit: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _bound_url: str | None = PrivateAttr(default=None)
    _bound_tls: RedisTls = PrivateAttr(default_factory=RedisTls)
    _bound: bool = PrivateAttr(default=False)

    def model_post_init(self, context: Any, /) -> None:
        """Remember which of the settings-backed fields the yaml set itself."""
        super().model_post_init(context)
        self._explicit = frozenset(
            self.model_fields_set
            & {"connection_string", "key_ttl_seconds", "redis_type", "sentinel_master"}
        )

    @property
    def bound(self) -> bool:
        """True once the repository's settings were applied (:func:`bind_online_config`)."""
        return self._bound

    def bind(self, settings: Settings) -> None:
        """Fill ``connection_string`` / ``redis_type`` / ``sentinel_master`` /
        ``key_ttl_seconds`` from ``settings`` (once; what the yaml sets stays).

        Raises:
            ConfigurationError: ``REDIS_URL`` is not a usable Redis URL.
        """
        if self._bound:
            return
        if "redis_type" not in self._explicit:
            self.redis_type = RedisType(settings.redis_type.value)
        if "sentinel_master" not in self._explicit:
            self.sentinel_master = settings.redis_sentinel_master
        if "connection_string" not in self._explicit:
            url = settings.redis_url or DEFAULT_REDIS_URL
            tls = RedisTls.from_settings(settings)
            try:
                self.connection_string = redis_url_to_feast(url, self.redis_type.value, tls)
            except ValueError as e:
                raise ConfigurationError(
                    str(e),
                    "Set REDIS_URL to e.g. redis://:password@host:6379/0 (in .env or the "
                    "environment), or connection_string under online_store in feature_store.yaml.",
                    setting="REDIS_URL",
                ) from e
            self._bound_url = url
            self._bound_tls = tls
        if "key_ttl_seconds" not in self._explicit:
            self.key_ttl_seconds = settings.online_ttl_seconds or None
        self._bound = True

    def redis_url(self) -> str | None:
        """The ``redis://`` URL of this (bound) store when one describes it, else None."""
        if self._bound_url is not None:
            return self._bound_url
        return _feast_to_url(self.connection_string) if self.connection_string else None

    @property
    def tls(self) -> RedisTls:
        """The ``REDIS_TLS_*`` files this store was bound with (none for a yaml string)."""
        return self._bound_tls


_BIND_LOCK = threading.Lock()


def bind_online_config(config: RepoConfig, settings: Settings | None = None) -> Any:
    """The repository's online store config, bound to the repository's settings.

    For a :class:`LoyaltyRedisOnlineStoreConfig`, fills ``connection_string`` from ``REDIS_URL``
    and ``key_ttl_seconds`` from ``ONLINE_TTL_SECONDS`` (unless the yaml set them), once per
    config, in place. Other online store configs are returned unchanged.

    Args:
        config: The Feast ``RepoConfig`` (``store.config``).
        settings: The settings the caller's entry point loaded; ``None`` loads them once, with
            ``load_settings(repo_path=config.repo_path)`` (the ``.env`` beside or above the
            repository).

    Returns:
        ``config.online_store``.

    Raises:
        ConfigurationError: A setting is invalid.
    """
    online = config.online_store
    if isinstance(online, LoyaltyRedisOnlineStoreConfig) and not online.bound:
        with _BIND_LOCK:
            if not online.bound:
                if settings is None:
                    settings = repo_settings(config)
                online.bind(settings)
    return online


def online_redis_client(
    config: RepoConfig,
    settings: Settings | None = None,
    *,
    online_store: OnlineStore | None = None,
) -> RedisClient | None:
    """A Redis client of the repository's online store; None when the store is not Redis.

    The store's ``REDIS_URL`` (or the yaml's single-node ``connection_string`` translated to a
    URL) goes through :func:`xiva_source.redis_client.connect_redis` with the store's
    ``redis_type`` and ``sentinel_master``: a ``redis.Redis``, a ``RedisCluster``, or the
    sentinels' primary. A yaml ``connection_string`` a URL cannot say (several nodes, other
    parameters) uses Feast's own client builder, reusing ``online_store``'s connection when
    given.

    Args:
        config: The Feast ``RepoConfig``.
        settings: As for :func:`bind_online_config`.
        online_store: The store's online store instance (its client is reused when Feast's
            builder is needed).

    Returns:
        A ``redis.Redis`` or ``RedisCluster`` client, or None for a non-Redis online store.

    Raises:
        ConfigurationError: ``REDIS_URL`` or ``connection_string`` is not usable.
    """
    online = bind_online_config(config, settings)
    if not isinstance(online, RedisOnlineStoreConfig):
        return None
    if not online.connection_string:
        raise ConfigurationError(
            "the online store's Redis connection_string names no host",
            'Set REDIS_URL, or write connection_string: "host:6379" in feature_store.yaml.',
            setting="REDIS_URL",
        )
    url = (
        online.redis_url()
        if isinstance(online, LoyaltyRedisOnlineStoreConfig)
        else _feast_to_url(online.connection_string)
        if online.redis_type == RedisType.redis
        else None
    )
    if url is not None:
        return connect_redis(
            url,
            redis_type=online.redis_type.value,
            sentinel_master=online.sentinel_master,
            tls=online.tls if isinstance(online, LoyaltyRedisOnlineStoreConfig) else None,
        )
    store = online_store if isinstance(online_store, RedisOnlineStore) else RedisOnlineStore()
    client: RedisClient = store._get_client(online)
    return client


def _bound_client_args(config: RedisOnlineStoreConfig) -> dict[str, Any] | None:
    """:func:`connect_redis`'s arguments for a bound store config; None for a yaml
    ``connection_string`` (Feast's own builder reads that)."""
    if not isinstance(config, LoyaltyRedisOnlineStoreConfig) or not config.bound:
        return None
    url = config.redis_url()
    if url is None:
        return None
    return {
        "url": url,
        "redis_type": config.redis_type.value,
        "sentinel_master": config.sentinel_master,
        "tls": config.tls,
    }


def _mark_rows(client: Any, project: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Mark the customers of ``online_write_batch``'s rows (one join key each) as changed."""
    from xiva_source.feast_plugin.changed import mark_changed

    data = kwargs.get("data", args[1] if len(args) > 1 else None) or []
    ids = []
    for row in data:
        values = row[0].entity_values
        if len(values) == 1:  # segments are over one entity with one join key
            kind = values[0].WhichOneof("val")
            if kind is not None:
                ids.append(getattr(values[0], kind))
    mark_changed(client, project, ids)


class LoyaltyRedisOnlineStore(RedisOnlineStore):
    """Feast's :class:`RedisOnlineStore`, bound to the repository's settings (see the module doc).

    Every method Feast calls with the ``RepoConfig`` binds the config first, so the client Feast
    builds talks to the Redis the repository's ``.env`` / environment names; that client (sync
    and async) is built by :mod:`xiva_source.redis_client` from the bound URL and TLS files.
    """

    def _get_client(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        args = _bound_client_args(online_store_config)
        if args is None or self._client:
            return super()._get_client(online_store_config)
        self._client = connect_redis(**args)  # type: ignore[assignment]
        return self._client

    async def _get_client_async(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        args = _bound_client_args(online_store_config)
        if args is None or self._client_async:
            return await super()._get_client_async(online_store_config)
        self._client_async = connect_redis_async(**args)  # type: ignore[assignment]
        return self._client_async

    def online_write_batch(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        """Feast's write; a failure is noted in the shared run state, then raised.

        The rows' customers are marked in the changed-customers journal before and after
        (:mod:`~xiva_source.feast_plugin.changed`).

        Feast's Ray engine only logs a failed write and records the interval anyway: the note
        keeps the job from carrying on from that pull (:mod:`~xiva_source.feast_plugin.
        feast_runs`).
        """
        bind_online_config(config)
        try:
            # Before the write (a crash after it leaves the mark) and after it (a refresh that
            # read them in between): segment refreshes re-read them.
            _mark_rows(self._get_client(config.online_store), config.project, args, kwargs)
            super().online_write_batch(config, *args, **kwargs)
            _mark_rows(self._get_client(config.online_store), config.project, args, kwargs)
        except Exception:
            from xiva_source.feast_plugin.feast_runs import note_write_failure

            table = kwargs.get("table", args[0] if args else None)
            note_write_failure(config, str(getattr(table, "name", table)))
            raise

    async def online_write_batch_async(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        await super().online_write_batch_async(config, *args, **kwargs)

    def online_read(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return super().online_read(config, *args, **kwargs)

    async def online_read_async(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return await super().online_read_async(config, *args, **kwargs)

    def get_online_features(
        self,
        config: RepoConfig,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> Any:
        """Feast's read; python-mode on-demand views run without Feast's generic overhead.

        The steps are Feast's (:class:`~xiva_source.feast_plugin.on_demand.OnlineRead`); the
        on-demand step of python-mode views is
        :func:`~xiva_source.feast_plugin.on_demand.augment_online_response`, value for value
        Feast's at a fraction of the cost (docs/feature-repo.md, "Serving").
        """
        bind_online_config(config)
        args = (features, entity_rows, registry, project, full_feature_names)
        if precomputed(features):
            return super().get_online_features(config, *args, include_feature_view_version_metadata)
        read = OnlineRead.prepare(self, *args, include_feature_view_version_metadata)
        self._read_features_per_fv(config, *read.read_args())
        return read.finish(self)

    async def get_online_features_async(
        self,
        config: RepoConfig,
        features: Any,
        entity_rows: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> Any:
        """:meth:`get_online_features`, async (``feast serve`` reads Redis this way)."""
        bind_online_config(config)
        args = (features, entity_rows, registry, project, full_feature_names)
        if precomputed(features):
            return await super().get_online_features_async(
                config, *args, include_feature_view_version_metadata
            )
        read = OnlineRead.prepare(self, *args, include_feature_view_version_metadata)
        await self._read_features_per_fv_async(config, *read.read_args())
        return read.finish(self)

    def update(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        super().update(config, *args, **kwargs)

    def plan(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return super().plan(config, *args, **kwargs)

    def teardown(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        super().teardown(config, *args, **kwargs)

    def delete_table(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        super().delete_table(config, *args, **kwargs)

    def delete_entity_values(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        super().delete_entity_values(config, *args, **kwargs)

    def read_precomputed_vectors(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return super().read_precomputed_vectors(config, *args, **kwargs)

    def write_precomputed_vector(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return super().write_precomputed_vector(config, *args, **kwargs)

    async def initialize(self, config: RepoConfig) -> None:
        bind_online_config(config)
        await super().initialize(config)
