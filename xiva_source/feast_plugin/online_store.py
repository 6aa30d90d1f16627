"""``LoyaltyRedisOnlineStore``: Feast's Redis online store, configured from the environment.

One ``feature_store.yaml`` serves every environment: the connection comes from ``REDIS_URL``
(``redis://[[user]:password@]host:port/db``, ``rediss://`` for TLS; default
``redis://127.0.0.1:6379``) and the entity expiry from ``ONLINE_TTL_SECONDS`` (default 86400),
unless the yaml sets ``connection_string`` / ``key_ttl_seconds`` itself. Everything else is Feast's
Redis store unchanged (layout, reads, writes, cluster and sentinel modes).

``feature_store.yaml``::

    online_store:
      type: xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore

The connection string holds the password: it is excluded from the config's ``repr`` and never
logged.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from pydantic import Field, StrictStr, model_validator

from xiva_source.settings import DEFAULT_REDIS_URL, load_settings

__all__ = ["LoyaltyRedisOnlineStore", "LoyaltyRedisOnlineStoreConfig", "redis_url_to_feast"]


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


_StoreType = Literal[
    "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore",
    # feature_store.yaml files written before the re-layout (compatibility shim)
    "xiva_source.online_store.LoyaltyRedisOnlineStore",
]
_STORE_TYPE: _StoreType = "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"


class LoyaltyRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis store config, defaulting from ``REDIS_URL`` and ``ONLINE_TTL_SECONDS``."""

    type: _StoreType = _STORE_TYPE  # type: ignore[assignment]
    """Online store type selector."""
    connection_string: StrictStr = Field(default="127.0.0.1:6379", repr=False)
    """Feast's ``host:port,db=N,password=...``; from REDIS_URL unless set in the yaml."""

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "connection_string" not in data or "key_ttl_seconds" not in data:
            settings = load_settings()
            data.setdefault(
                "connection_string", redis_url_to_feast(settings.redis_url or DEFAULT_REDIS_URL)
            )
            data.setdefault("key_ttl_seconds", settings.online_ttl_seconds or None)
        return data


class LoyaltyRedisOnlineStore(RedisOnlineStore):
    """Feast's :class:`RedisOnlineStore`; only its config differs (see the module doc)."""
