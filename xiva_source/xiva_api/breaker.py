"""The "Redis is down: leave it alone for 30 s, warn once" rule of the client's Redis users.

The shared rate limiter and the usage counters both use Redis as an optional helper: when it fails,
the client keeps calling Xiva (pacing this process alone, or dropping counts) instead of failing,
and must not pay a connection timeout on every request while Redis stays down. One
:class:`RedisBreaker` per Redis user: the house's one breaker (:class:`xiva_source.breaker.Breaker`)
opened by one Redis error, with a fallback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from xiva_source.breaker import Breaker
from xiva_source.xiva_api.logs import logger as _client_logger

__all__ = ["REDIS_RETRY_SECONDS", "RedisBreaker"]

REDIS_RETRY_SECONDS = 30.0
"""After a Redis failure, how long the shared limiter and the usage counters leave Redis alone."""


def _is_redis_error(error: BaseException) -> bool:
    import redis  # not at import time: `xiva-source usage` without REDIS_URL never needs it

    return isinstance(error, redis.RedisError)


class RedisBreaker(Breaker):
    """Skips Redis for ``retry_seconds`` after a failure, with one warning per outage.

    :meth:`~xiva_source.breaker.Breaker.call` runs the fallback without touching Redis while the
    breaker is open; after ``retry_seconds`` one call tries Redis again (the others still fall
    back). A ``redis.RedisError`` is a failure; any other exception propagates.

    Args:
        down: The warning logged when an outage starts, a %-format over ``%(reason)s`` (the
            exception's type name) and ``%(cooldown).0f`` (``retry_seconds``), e.g.
            ``"Redis failed (%(reason)s); retrying in %(cooldown).0f s"``.
        recovered: Logged (at WARNING) when Redis answers again after an outage; ``None`` to stay
            silent.
        retry_seconds: How long Redis is left alone after a failure.
        clock: Monotonic clock, injectable for tests.
        logger: Where the messages go (the client's logger by default).

    Example:
        >>> breaker = RedisBreaker("Redis counters unavailable (%(reason)s)")
        >>> breaker.call(lambda: 1, fallback=lambda: 0)
        1
    """

    def __init__(
        self,
        down: str,
        *,
        recovered: str | None = None,
        retry_seconds: float = REDIS_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = _client_logger,
    ) -> None:
        super().__init__(
            1,
            retry_seconds,
            name="Redis",
            opened=down,
            closed=recovered,
            level=logging.WARNING,
            logger=logger,
            clock=clock,
            counts_as_failure=_is_redis_error,
        )
