"""The one way the project builds a Redis client from ``REDIS_URL``.

Every Redis user (the online store's job steps, the Xiva client's shared rate and usage counters,
segmentation) gets its client here, so timeouts, URL checking and error wording are the same
everywhere, and a later change of deployment shape (cluster, sentinel) has one place to go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source.errors import ConfigurationError
from xiva_source.redaction import redact_url

if TYPE_CHECKING:
    import redis

__all__ = ["connect_redis"]

FAIL_FAST_TIMEOUT = 2.0
"""Seconds a fail-fast client waits to connect or for a reply (rate limiter, usage counters)."""


def connect_redis(url: str, *, fail_fast: bool = False) -> redis.Redis:
    """A Redis client for ``url`` (no connection is made until the first command).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` (TLS).
        fail_fast: Short timeouts and a single attempt, for callers that degrade without Redis
            (a slow or dead Redis must not stall a Xiva call).

    Returns:
        A ``redis.Redis`` client.

    Raises:
        ConfigurationError: ``url`` is not a Redis URL (the message never shows its password).

    Example:
        >>> client = connect_redis("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    """
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, object] = {}
    if fail_fast:
        options = {
            "socket_timeout": FAIL_FAST_TIMEOUT,
            "socket_connect_timeout": FAIL_FAST_TIMEOUT,
            "retry": Retry(NoBackoff(), 1),
        }
    try:
        return redis_lib.Redis.from_url(url, **options)  # type: ignore[arg-type]
    except ValueError as e:
        raise ConfigurationError(
            f"REDIS_URL {redact_url(url)!r} is not a Redis URL ({e})",
            "Set REDIS_URL to e.g. redis://127.0.0.1:6379/0 (in .env or the environment).",
            setting="REDIS_URL",
        ) from e
