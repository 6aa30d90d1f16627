"""Xiva API usage counters: requests, 429s, retries and errors, per endpoint and per UTC hour.

Counters live in Redis when ``REDIS_URL`` is set, so every worker of a deployment adds to the same
numbers (one hash per hour, ``<prefix>:<YYYY-MM-DDTHH>``, fields ``<endpoint>:<counter>``, expiring
after 8 days), and in memory otherwise. Read them from Python with ``XivaClient.usage()`` or from a
shell with ``python -m xiva_source usage [--hours N] [--json]``.

Counters:
    requests: HTTP requests sent (every attempt, retries and auth calls included).
    throttled: responses with status 429.
    retries: requests that repeated an earlier failed attempt.
    errors: calls that failed for the caller (an ``XivaError`` raised after any retries).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

from xiva_source.settings import Settings
from xiva_source.timeutil import Clock, as_utc, utc_now
from xiva_source.xiva_api.breaker import RedisBreaker

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = [
    "COUNTERS",
    "DEFAULT_USAGE_PREFIX",
    "ENDPOINTS",
    "MemoryUsageStore",
    "RedisUsageStore",
    "UsageCounts",
    "UsageReport",
    "UsageStore",
    "hour_bucket",
    "usage_prefix_for",
]

COUNTERS = ("requests", "throttled", "retries", "errors")
"""The counter names, in display order."""
ENDPOINTS = (
    "auth_create",
    "auth_refresh",
    "customer_list",
    "customer_detail",
    "customer_360",
    "customer_360_part",
)
"""The endpoint names the client counts under."""
DEFAULT_USAGE_PREFIX = "xiva:usage"
"""Redis key prefix of the hourly hashes."""
USAGE_TTL_SECONDS = 8 * 24 * 3600
"""How long an hour's counters are kept in Redis."""


def usage_prefix_for(settings: Settings) -> str:
    """The usage counters' key prefix of a deployment: ``<XIVA_REDIS_PREFIX>:usage``."""
    return f"{settings.xiva_redis_prefix.rstrip(':')}:usage"


def hour_bucket(at: datetime | None = None) -> str:
    """The UTC hour a moment (default now; naive means UTC) falls in, as ``YYYY-MM-DDTHH``."""
    return as_utc(at or utc_now()).strftime("%Y-%m-%dT%H")


class UsageCounts(BaseModel):
    """The four counters of one endpoint, hour, or of everything."""

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    """HTTP requests sent (every attempt, retries and auth calls included)."""
    throttled: int = 0
    """Responses with status 429 Too Many Requests."""
    retries: int = 0
    """Requests that repeated an earlier failed attempt."""
    errors: int = 0
    """Calls that failed for the caller after any retries."""

    def __add__(self, other: UsageCounts) -> UsageCounts:
        return UsageCounts(**{c: getattr(self, c) + getattr(other, c) for c in COUNTERS})


class UsageReport(BaseModel):
    """API usage over a window of whole UTC hours.

    Attributes:
        hours: The UTC hours covered, oldest first (``YYYY-MM-DDTHH``).
        totals: Every counter summed over the window.
        by_endpoint: Per endpoint (only endpoints with a count), summed over the window.
        by_hour: Per hour of the window (every hour, zero when idle).
        cells: Per hour, then per endpoint: the raw counts.
    """

    model_config = ConfigDict(frozen=True)

    hours: list[str]
    totals: UsageCounts
    by_endpoint: dict[str, UsageCounts]
    by_hour: dict[str, UsageCounts]
    cells: dict[str, dict[str, UsageCounts]]

    @classmethod
    def from_cells(
        cls, hours: list[str], cells: Mapping[str, Mapping[str, Mapping[str, int]]]
    ) -> UsageReport:
        """Aggregate raw ``hour -> endpoint -> counter -> n`` counts into a report."""
        typed = {
            h: {ep: UsageCounts(**dict(c)) for ep, c in sorted(cells.get(h, {}).items())}
            for h in hours
        }
        by_endpoint: dict[str, UsageCounts] = defaultdict(UsageCounts)
        by_hour: dict[str, UsageCounts] = {}
        for h in hours:
            hour_total = UsageCounts()
            for ep, counts in typed[h].items():
                by_endpoint[ep] = by_endpoint[ep] + counts
                hour_total = hour_total + counts
            by_hour[h] = hour_total
        ordered = {ep: by_endpoint[ep] for ep in _endpoint_order(by_endpoint)}
        totals = sum(by_hour.values(), UsageCounts())
        return cls(
            hours=hours,
            totals=totals,
            by_endpoint=ordered,
            by_hour=by_hour,
            cells={h: c for h, c in typed.items() if c},
        )

    def to_table(self) -> str:
        """A plain-text table: per endpoint, then per hour with any traffic, then the total."""
        header = f"{'':<20}{'requests':>10}{'429s':>8}{'retries':>9}{'errors':>8}"

        def row(name: str, c: UsageCounts) -> str:
            return f"{name:<20}{c.requests:>10}{c.throttled:>8}{c.retries:>9}{c.errors:>8}"

        span = f"{self.hours[0]}:00 .. {self.hours[-1]}:59 UTC" if self.hours else "no hours"
        lines = [f"Xiva API usage, {len(self.hours)} h ({span})", "", "by endpoint", header]
        lines += [row(ep, c) for ep, c in self.by_endpoint.items()] or ["  (no requests)"]
        lines += ["", "by hour (UTC)", header]
        busy = [(h, c) for h, c in self.by_hour.items() if c != UsageCounts()]
        lines += [row(h, c) for h, c in busy] or ["  (no requests)"]
        lines += ["", row("TOTAL", self.totals)]
        return "\n".join(lines)


def _endpoint_order(names: Iterable[str]) -> list[str]:
    known = [e for e in ENDPOINTS if e in names]
    return known + sorted(n for n in names if n not in ENDPOINTS)


def _window(hours: int, now: datetime | None) -> list[str]:
    if hours < 1:
        raise ValueError(f"hours must be >= 1, got {hours}")
    end = as_utc(now or utc_now())
    return [hour_bucket(end - timedelta(hours=i)) for i in reversed(range(hours))]


class UsageStore(Protocol):
    """Where the counters are kept."""

    def record(self, endpoint: str, **counts: int) -> None:
        """Add ``counts`` (counter name -> increment) for ``endpoint`` in the current hour."""
        ...

    def report(self, hours: int = 24, *, now: datetime | None = None) -> UsageReport:
        """The counters of the last ``hours`` UTC hours, the current one included."""
        ...


class MemoryUsageStore:
    """Counters of this process only (no ``REDIS_URL``); thread-safe.

    Args:
        clock: The current time, whose UTC hour a count goes to (tests move it).
    """

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._cells: dict[str, dict[str, dict[str, int]]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def __repr__(self) -> str:
        return "MemoryUsageStore()"

    def record(self, endpoint: str, **counts: int) -> None:
        """Add ``counts`` for ``endpoint`` in the current hour."""
        hour = hour_bucket(self._clock())
        with self._lock:
            cell = self._cells.setdefault(hour, {}).setdefault(endpoint, dict.fromkeys(COUNTERS, 0))
            for name, n in counts.items():
                if n:
                    cell[name] += n

    def report(self, hours: int = 24, *, now: datetime | None = None) -> UsageReport:
        """The counters of the last ``hours`` UTC hours."""
        window = _window(hours, now or self._clock())
        with self._lock:
            snapshot = {h: {e: dict(c) for e, c in self._cells.get(h, {}).items()} for h in window}
        return UsageReport.from_cells(window, snapshot)


class RedisUsageStore:
    """Counters shared by every worker through Redis hashes ``<prefix>:<hour>``.

    A Redis failure while counting is logged once and the count dropped: usage accounting never
    fails an API call.

    Args:
        client: A ``redis.Redis`` client.
        prefix: Key prefix (tests use their own namespace).
        ttl_seconds: Expiry of each hourly hash.
        clock: The current time, whose UTC hour a count goes to (tests move it).
    """

    def __init__(
        self,
        client: RedisClient,
        prefix: str = DEFAULT_USAGE_PREFIX,
        *,
        ttl_seconds: int = USAGE_TTL_SECONDS,
        clock: Clock = utc_now,
    ) -> None:
        self.prefix = prefix.rstrip(":")
        self._clock = clock
        self.ttl_seconds = ttl_seconds
        self._client = client
        self._breaker = RedisBreaker(
            "Could not record Xiva usage in Redis (%(reason)s); counts are dropped for the next "
            "%(cooldown).0f s. Check REDIS_URL."
        )

    def __repr__(self) -> str:
        return f"RedisUsageStore(prefix={self.prefix!r})"

    def key(self, hour: str) -> str:
        """The Redis key of one hour's hash."""
        return f"{self.prefix}:{hour}"

    def record(self, endpoint: str, **counts: int) -> None:
        """Add ``counts`` for ``endpoint`` in the current hour (one round trip)."""
        key = self.key(hour_bucket(self._clock()))

        def increment() -> None:
            pipe = self._client.pipeline(transaction=False)
            for name, n in counts.items():
                if n:
                    pipe.hincrby(key, f"{endpoint}:{name}", n)
            pipe.expire(key, self.ttl_seconds)
            pipe.execute()

        self._breaker.call(increment, fallback=lambda: None)

    def report(self, hours: int = 24, *, now: datetime | None = None) -> UsageReport:
        """The counters of the last ``hours`` UTC hours, read from Redis."""
        window = _window(hours, now or self._clock())
        pipe = self._client.pipeline(transaction=False)
        for hour in window:
            pipe.hgetall(self.key(hour))
        cells: dict[str, dict[str, dict[str, int]]] = {}
        for hour, raw in zip(window, pipe.execute(), strict=True):
            for field, value in raw.items():
                name = field.decode() if isinstance(field, bytes) else str(field)
                endpoint, _, counter = name.rpartition(":")
                if counter in COUNTERS and endpoint:
                    per_ep = cells.setdefault(hour, {}).setdefault(endpoint, {})
                    per_ep[counter] = int(value)
        return UsageReport.from_cells(window, cells)
