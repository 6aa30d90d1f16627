"""Per-user token bucket, the server-side throttle behind the simulator's 429s."""

from __future__ import annotations

import math
import threading
import time

__all__ = ["UserRateLimiter"]


class UserRateLimiter:
    """One token bucket per user. Thread-safe. Disabled while ``per_second`` is None.

    Args:
        per_second: Refill rate (requests per second allowed in the long run).
        burst: Bucket size; None means ``ceil(per_second)`` (at least 1).
    """

    def __init__(self, per_second: float | None = None, burst: int | None = None) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.per_second: float | None = None
        self.burst = 1
        self.configure(per_second, burst)

    def configure(self, per_second: float | None, burst: int | None = None) -> None:
        """Change the limit; every bucket starts full again.

        Raises:
            ValueError: ``per_second`` is not positive or ``burst`` is below 1.
        """
        if per_second is not None and per_second <= 0:
            raise ValueError(
                f"per_second must be positive, got {per_second}; pass None to disable throttling"
            )
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        with self._lock:
            self.per_second = per_second
            self.burst = burst if burst is not None else max(1, math.ceil(per_second or 1))
            self._buckets = {}

    def acquire(self, user: str) -> float:
        """Take one token from ``user``'s bucket.

        Returns:
            0.0 when the request may go ahead, else the seconds until a token is available.
        """
        with self._lock:
            rate = self.per_second
            if rate is None:
                return 0.0
            now = time.monotonic()
            tokens, last = self._buckets.get(user, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[user] = (tokens - 1.0, now)
                return 0.0
            self._buckets[user] = (tokens, now)
            return (1.0 - tokens) / rate
