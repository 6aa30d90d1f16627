"""One client's own request counts: what *this* client sent, whatever the shared counters say.

The usage counters (:mod:`~xiva_source.xiva_api.usage`) are shared by every worker of a deployment
and bucketed per UTC hour, so a difference of them counts other workers' calls and breaks at an
hour boundary. A run reports its own calls from :attr:`XivaClient.counts` instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["RequestCounts"]


@dataclass
class RequestCounts:
    """Requests one :class:`~xiva_source.xiva_api.client.XivaClient` sent; thread-safe.

    Attributes:
        requests: HTTP requests sent (every attempt: retries and auth calls included).
        throttled: Responses with status 429.
        retries: Requests that repeated an earlier failed attempt.
        errors: Calls that failed for the caller (an ``XivaError`` after any retries).
    """

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self, *, requests: int = 0, throttled: int = 0, retries: int = 0, errors: int = 0
    ) -> None:
        """Add to the counts (one lock, so concurrent fetch threads never lose a count)."""
        with self._lock:
            self.requests += requests
            self.throttled += throttled
            self.retries += retries
            self.errors += errors
