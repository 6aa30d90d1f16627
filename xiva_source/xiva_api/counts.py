"""What one client counts: each request event recorded once, in its own counts and the shared ones.

The usage counters (:mod:`~xiva_source.xiva_api.usage`) are shared by every worker of a deployment
and bucketed per UTC hour, so a difference of them counts other workers' calls and breaks at an
hour boundary. A run reports its own calls from :attr:`XivaClient.counts` (:class:`RequestCounts`)
instead. :class:`RequestRecorder` is the one path the client records an event by (a request sent,
a 429, a failed call): it adds it to both, so the two never disagree on what an event counts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xiva_source.xiva_api.usage import UsageStore

__all__ = ["RequestCounts", "RequestRecorder"]


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


class RequestRecorder:
    """Records each event of a client's requests once: in its own counts and the usage counters.

    Args:
        usage: The usage counters (Redis-shared or this process's), per endpoint and hour.

    Attributes:
        counts: This client's own counts (what a run reports as ``xiva_calls``).
        usage: The usage counters it also adds to.
    """

    def __init__(self, usage: UsageStore) -> None:
        self.usage = usage
        self.counts = RequestCounts()

    def __repr__(self) -> str:
        return f"RequestRecorder({self.counts!r}, usage={self.usage!r})"

    def sent(self, endpoint: str, *, retry: bool) -> None:
        """An HTTP request is being sent (``retry``: it repeats a failed attempt of the call)."""
        self._record(endpoint, requests=1, retries=int(retry))

    def throttled(self, endpoint: str) -> None:
        """Xiva answered 429."""
        self._record(endpoint, throttled=1)

    def failed(self, endpoint: str) -> None:
        """A call failed for its caller (an ``XivaError`` after any retries)."""
        self._record(endpoint, errors=1)

    def _record(self, endpoint: str, **counts: int) -> None:
        self.counts.add(**counts)
        self.usage.record(endpoint, **counts)
