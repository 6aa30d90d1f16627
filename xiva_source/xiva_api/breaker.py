"""The "Redis is down: leave it alone for 30 s, warn once" rule of the client's Redis users.

The shared rate limiter and the usage counters both use Redis as an optional helper: when it fails,
the client keeps calling Xiva (pacing this process alone, or dropping counts) instead of failing,
and must not pay a connection timeout on every request while Redis stays down. One
:class:`RedisBreaker` per Redis user holds that state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from xiva_source.xiva_api.logs import logger as _client_logger

__all__ = ["REDIS_RETRY_SECONDS", "RedisBreaker"]

REDIS_RETRY_SECONDS = 30.0
"""After a Redis failure, how long the shared limiter and the usage counters leave Redis alone."""

T = TypeVar("T")
F = TypeVar("F")


class RedisBreaker:
    """Skips Redis for ``retry_seconds`` after a failure, with one warning per outage.

    While the breaker is open, :meth:`call` runs the fallback without touching Redis; the first
    call after ``retry_seconds`` tries Redis again. The warning is logged when an outage starts,
    not on every failed retry; ``recovered`` (when given) is logged when Redis answers again.

    Args:
        down: The warning logged when an outage starts, a %-format taking the exception's type
            name and ``retry_seconds``, e.g. ``"Redis failed (%s); retrying in %.0f s"``.
        recovered: Logged (at WARNING) when Redis answers again after an outage; ``None`` to stay
            silent.
        retry_seconds: How long Redis is left alone after a failure.
        clock: Monotonic clock, injectable for tests.
        logger: Where the messages go (the client's logger by default).

    Example:
        >>> breaker = RedisBreaker("Redis counters unavailable (%s); skipped for %.0f s")
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
        self.down = down
        self.recovered = recovered
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: Redis is believed up

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"RedisBreaker({state}, retry_seconds={self.retry_seconds:g})"

    @property
    def is_open(self) -> bool:
        """True while Redis is being left alone after a failure."""
        return bool(self._open_until) and self._clock() < self._open_until

    def call(self, action: Callable[[], T], fallback: Callable[[], F]) -> T | F:
        """Run ``action`` (a Redis round trip) unless Redis is being skipped.

        Args:
            action: The Redis work; a ``redis.RedisError`` from it opens the breaker.
            fallback: What to do instead, while the breaker is open or when ``action`` failed.

        Returns:
            ``action``'s result, or ``fallback``'s when Redis was skipped or failed.
        """
        import redis

        if self.is_open:
            return fallback()
        try:
            result = action()
        except redis.RedisError as e:
            self.record_failure(e)
            return fallback()
        self.record_success()
        return result

    def record_failure(self, error: BaseException) -> None:
        """Open the breaker for ``retry_seconds``; warn if this starts an outage."""
        with self._lock:
            starts = not self._open_until
            self._open_until = self._clock() + self.retry_seconds
        if starts:
            self._logger.warning(self.down, type(error).__name__, self.retry_seconds)

    def record_success(self) -> None:
        """Redis answered: close the breaker, logging ``recovered`` if an outage ends."""
        if not self._open_until:
            return
        with self._lock:
            ended = bool(self._open_until)
            self._open_until = 0.0
        if ended and self.recovered:
            self._logger.warning(self.recovered)
