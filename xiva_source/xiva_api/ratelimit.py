"""Client-side request rate: shared by every worker of a deployment through Redis, or in-process.

When Xiva answers ``Retry-After``, :meth:`RateLimiter.hold` pushes the shared schedule past it,
so no thread or process sharing the rate sends a request before it passes.

Both limiters implement GCRA (the generic cell rate algorithm) as *reservations*: each caller
atomically books the next free slot and sleeps until it, so N threads or N processes together never
exceed the configured rate and nobody polls. In Redis the booking is one Lua script keyed by
``rate_key`` and timed by the Redis server's clock, so the workers' clocks do not matter.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from xiva_source.xiva_api.breaker import REDIS_RETRY_SECONDS, RedisBreaker

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = [
    "REDIS_RETRY_SECONDS",
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "Unlimited",
    "default_rate_key",
    "make_rate_limiter",
]

# KEYS[1]: the limiter's key. ARGV[1]: emission interval (us). ARGV[2]: burst (slots).
# Returns the microseconds the caller must wait before sending its request.
_GCRA_RESERVE = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - burst * interval - now
if wait < 0 then wait = 0 end
local ttl_ms = math.floor((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return math.floor(wait)
"""


# KEYS[1]: the limiter's key. ARGV[1]: hold (us). ARGV[2]: interval (us). ARGV[3]: burst.
# Pushes the schedule so no slot is handed out before now + hold.
_GCRA_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1]) + (tonumber(ARGV[3]) - 1) * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < untl then
  local ttl_ms = math.floor((untl - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', ttl_ms)
end
return 0
"""


class RateLimiter(Protocol):
    """Something that paces requests: :meth:`acquire` blocks until the caller may send one."""

    def acquire(self) -> float:
        """Wait for a request slot; returns the seconds waited."""
        ...

    def hold(self, seconds: float) -> None:
        """Hand out no slot for ``seconds`` (Xiva said ``Retry-After``): every sharer waits."""
        ...


class Unlimited:
    """No client-side rate (``XIVA_REQUESTS_PER_SECOND`` <= 0); still honours :meth:`hold`."""

    def __init__(self) -> None:
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Return at once, unless a hold is in force."""
        with self._lock:
            wait = self._hold_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)
            return wait
        return 0.0

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds``."""
        with self._lock:
            self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    def __repr__(self) -> str:
        return "Unlimited()"


class LocalRateLimiter:
    """A thread-safe GCRA limiter for one process.

    Args:
        rate: Requests per second.
        burst: Requests that may go back to back after an idle period (1 = evenly spaced).
        clock: Monotonic clock, injectable for tests.
        sleep: Sleep function, injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests/second, got {rate!r}")
        self.rate = rate
        self.burst = max(1, burst)
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._tat = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalRateLimiter(rate={self.rate:g}, burst={self.burst})"

    def reserve(self) -> float:
        """Book the next slot without sleeping; returns the seconds until it."""
        with self._lock:
            now = self._clock()
            self._tat = max(self._tat, now) + self._interval
            return max(0.0, self._tat - self.burst * self._interval - now)

    def acquire(self) -> float:
        """Book the next slot and sleep until it; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """Hand out no slot for ``seconds``."""
        with self._lock:
            until = self._clock() + seconds + (self.burst - 1) * self._interval
            self._tat = max(self._tat, until)


class RedisRateLimiter:
    """A GCRA limiter in Redis, shared by every process using the same ``key``.

    If Redis fails, the limiter logs a warning and paces this process alone (at the full rate)
    until Redis answers again, rather than failing the pull.

    Args:
        client: A ``redis.Redis`` client.
        key: The shared key, e.g. from :func:`default_rate_key`.
        rate: Requests per second for all processes together.
        burst: Requests that may go back to back after an idle period.
    """

    def __init__(self, client: RedisClient, key: str, rate: float, burst: int = 1) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests/second, got {rate!r}")
        self.key = key
        self.rate = rate
        self.burst = max(1, burst)
        self._client = client
        # One key per script: on a cluster it runs on the key's node (SCRIPT LOAD reaches all).
        self._script = client.register_script(_GCRA_RESERVE)  # type: ignore[misc]
        self._hold_script = client.register_script(_GCRA_HOLD)  # type: ignore[misc]
        self._interval_us = max(1, round(1_000_000 / rate))
        self._fallback = LocalRateLimiter(rate, burst)
        self._breaker = RedisBreaker(
            "Redis rate limiter unavailable (%(reason)s); pacing this process alone until Redis "
            "answers again (retried every %(cooldown).0f s). Check REDIS_URL.",
            recovered="Redis rate limiter available again; sharing the rate",
        )

    def __repr__(self) -> str:
        return f"RedisRateLimiter(key={self.key!r}, rate={self.rate:g}, burst={self.burst})"

    def acquire(self) -> float:
        """Book the next shared slot and sleep until it; returns the seconds waited."""
        wait = self._breaker.call(self._reserve_shared, fallback=lambda: None)
        if wait is None:
            return self._fallback.acquire()
        if wait > 0:
            time.sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """Hand out no slot to any process for ``seconds``."""
        self._fallback.hold(seconds)
        # While Redis is down, the local hold above still applies.
        self._breaker.call(
            lambda: self._hold_script(
                keys=[self.key], args=[round(seconds * 1e6), self._interval_us, self.burst]
            ),
            fallback=lambda: None,
        )

    def _reserve_shared(self) -> float:
        return int(self._script(keys=[self.key], args=[self._interval_us, self.burst])) / 1e6


def default_rate_key(base_url: str, username: str | None, prefix: str = "xiva") -> str:
    """The shared rate key of one Xiva user on one deployment: ``<prefix>:rate:<sha1>``.

    Xiva throttles per user, so every worker logging in as the same user shares one budget.
    """
    digest = hashlib.sha1(f"{base_url.rstrip('/')}\n{username or ''}".encode()).hexdigest()
    return f"{prefix.rstrip(':')}:rate:{digest}"


def make_rate_limiter(
    rate: float | None, *, redis_client: RedisClient | None = None, key: str | None = None
) -> RateLimiter:
    """The limiter for the settings: Redis-shared when a client and key are given.

    Args:
        rate: Requests per second; ``None`` or ``<= 0`` means no client-side limit.
        redis_client: A Redis client; ``None`` paces this process only.
        key: The shared key (required with ``redis_client``).
    """
    if rate is None or rate <= 0:
        return Unlimited()
    if redis_client is not None:
        if not key:
            raise ValueError("a Redis rate limiter needs a key; use default_rate_key()")
        return RedisRateLimiter(redis_client, key, rate)
    return LocalRateLimiter(rate)
