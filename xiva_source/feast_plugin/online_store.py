"""``LoyaltyRedisOnlineStore``: Feast's Redis online store, configured from the project's settings.

One ``feature_store.yaml`` serves every environment: the connection comes from ``REDIS_URL``
(``redis://[[user]:password@]host:port/db``, ``rediss://`` for TLS; default
``redis://127.0.0.1:6379``) and the entity expiry from ``ONLINE_TTL_SECONDS`` (default 86400),
unless the yaml sets ``connection_string`` / ``key_ttl_seconds`` itself. Everything else is Feast's
Redis store unchanged (layout, reads, writes, cluster and sentinel modes).

``feature_store.yaml``::

    online_store:
      type: xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore

When the settings are read: Feast validates the config before it knows the repository's path, so
the config cannot read them then (it would find the ``.env`` of the working directory, not the
repository's). Instead, every store method Feast calls with the ``RepoConfig`` first binds the
config (:func:`bind_online_config`): the settings are loaded once with
``load_settings(repo_path=config.repo_path)`` and ``connection_string`` / ``key_ttl_seconds`` are
filled in before Feast builds its client. Code reading the config directly binds it first.

The connection string holds the password: it is excluded from the config's ``repr`` and never
logged.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from pydantic import Field, PrivateAttr, StrictStr

from xiva_source.errors import ConfigurationError
from xiva_source.feast_plugin.repo_settings import repo_settings
from xiva_source.redis_client import connect_redis
from xiva_source.settings import DEFAULT_REDIS_URL, Settings

if TYPE_CHECKING:
    import redis
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.repo_config import RepoConfig

__all__ = [
    "LoyaltyRedisOnlineStore",
    "LoyaltyRedisOnlineStoreConfig",
    "bind_online_config",
    "online_redis_client",
    "redis_url_to_feast",
]


def redis_url_to_feast(url: str) -> str:
    """Translate a ``redis://`` URL into Feast's ``host:port,db=N,password=...`` form.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...`` (TLS).

    Returns:
        The Feast connection string.

    Raises:
        ValueError: Not a redis URL, or a password/user containing ``,`` (which Feast's format
            cannot carry). The message never includes the password.

    Example:
        >>> redis_url_to_feast("redis://:pw@cache:6380/2")
        'cache:6380,db=2,password=pw'
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(
            f"REDIS_URL must start with redis:// or rediss:// (got scheme {parts.scheme!r}); "
            "e.g. redis://:password@host:6379/0"
        )
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 6379
    items = [f"{host}:{port}"]
    db = parts.path.strip("/")
    if db:
        if not db.isdigit():
            raise ValueError(f"REDIS_URL database must be a number (got {db!r}); e.g. .../0")
        items.append(f"db={int(db)}")
    if parts.username:
        items.append(f"username={_safe(unquote(parts.username), 'user name')}")
    if parts.password:
        items.append(f"password={_safe(unquote(parts.password), 'password')}")
    if parts.scheme == "rediss":
        items.append("ssl=true")
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

    Only ``host:port`` with ``db``, ``username``, ``password`` and ``ssl`` translate; other
    parameters (timeouts, several nodes) are left to Feast's own client builder.
    """
    nodes, params = RedisOnlineStore._parse_connection_string(connection_string)
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
    """Feast's Redis store config; ``REDIS_URL`` / ``ONLINE_TTL_SECONDS`` fill what it leaves out.

    ``connection_string`` is ``None`` until the config is bound to the repository's settings
    (:func:`bind_online_config`), so an unbound config can never silently reach a default Redis.
    """

    type: _StoreType = _STORE_TYPE  # type: ignore[assignment]
    """Online store type selector."""
    connection_string: StrictStr | None = Field(default=None, repr=False)  # type: ignore[assignment]
    """Feast's ``host:port,db=N,password=...``; from REDIS_URL unless set in the yaml."""

    _explicit: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _bound_url: str | None = PrivateAttr(default=None)
    _bound: bool = PrivateAttr(default=False)

    def model_post_init(self, context: Any, /) -> None:
        """Remember which of the settings-backed fields the yaml set itself."""
        super().model_post_init(context)
        self._explicit = frozenset(self.model_fields_set & {"connection_string", "key_ttl_seconds"})

    @property
    def bound(self) -> bool:
        """True once the repository's settings were applied (:func:`bind_online_config`)."""
        return self._bound

    def bind(self, settings: Settings) -> None:
        """Fill ``connection_string`` / ``key_ttl_seconds`` from ``settings`` (once).

        Raises:
            ConfigurationError: ``REDIS_URL`` is not a usable Redis URL.
        """
        if self._bound:
            return
        if "connection_string" not in self._explicit:
            url = settings.redis_url or DEFAULT_REDIS_URL
            try:
                self.connection_string = redis_url_to_feast(url)
            except ValueError as e:
                raise ConfigurationError(
                    str(e),
                    "Set REDIS_URL to e.g. redis://:password@host:6379/0 (in .env or the "
                    "environment), or connection_string under online_store in feature_store.yaml.",
                    setting="REDIS_URL",
                ) from e
            self._bound_url = url
        if "key_ttl_seconds" not in self._explicit:
            self.key_ttl_seconds = settings.online_ttl_seconds or None
        self._bound = True

    def redis_url(self) -> str | None:
        """The ``redis://`` URL of this (bound) store when one describes it, else None."""
        if self._bound_url is not None:
            return self._bound_url
        return _feast_to_url(self.connection_string) if self.connection_string else None


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
) -> redis.Redis | None:
    """A Redis client of the repository's online store; None when the store is not Redis.

    A single Redis goes through :func:`xiva_source.redis_client.connect_redis` (from
    ``REDIS_URL``, or the yaml's ``connection_string`` translated to a URL); cluster and sentinel
    deployments (or connection parameters a URL cannot carry) use Feast's own client builder,
    reusing ``online_store``'s connection when given.

    Args:
        config: The Feast ``RepoConfig``.
        settings: As for :func:`bind_online_config`.
        online_store: The store's online store instance (its client is reused when Feast's
            builder is needed).

    Returns:
        A ``redis.Redis`` (or ``RedisCluster``) client, or None for a non-Redis online store.

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
    if online.redis_type == RedisType.redis:
        url = (
            online.redis_url()
            if isinstance(online, LoyaltyRedisOnlineStoreConfig)
            else _feast_to_url(online.connection_string)
        )
        if url is not None:
            return connect_redis(url)
    store = online_store if isinstance(online_store, RedisOnlineStore) else RedisOnlineStore()
    client: redis.Redis = store._get_client(online)
    return client


class LoyaltyRedisOnlineStore(RedisOnlineStore):
    """Feast's :class:`RedisOnlineStore`, bound to the repository's settings (see the module doc).

    Every method Feast calls with the ``RepoConfig`` binds the config first, so the client Feast
    builds talks to the Redis the repository's ``.env`` / environment names.
    """

    def online_write_batch(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        super().online_write_batch(config, *args, **kwargs)

    async def online_write_batch_async(self, config: RepoConfig, *args: Any, **kwargs: Any) -> None:
        bind_online_config(config)
        await super().online_write_batch_async(config, *args, **kwargs)

    def online_read(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return super().online_read(config, *args, **kwargs)

    async def online_read_async(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return await super().online_read_async(config, *args, **kwargs)

    def get_online_features(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return super().get_online_features(config, *args, **kwargs)

    async def get_online_features_async(self, config: RepoConfig, *args: Any, **kwargs: Any) -> Any:
        bind_online_config(config)
        return await super().get_online_features_async(config, *args, **kwargs)

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
