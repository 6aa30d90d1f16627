"""Xiva's clock as this host sees it: the skew measured from the ``Date`` header of its answers.

Xiva stamps ``lastUpdate`` with its own clock, and the pull asks for changes since a moment of
this host's clock (the job's watermark). When the two clocks disagree by more than the pull's
overlap, changes fall between the windows: a Xiva 30 minutes behind stamps a change made right
after a run 30 minutes *before* that run's end, before the next window's start. Every HTTP answer
carries the server's time in its ``Date`` header (RFC 9110, whole seconds), so the client records
it on each response (:meth:`ServerClock.observe`), and the pull moves its window onto Xiva's clock
(:mod:`xiva_source.pipeline.xiva_pull`).

The measure is the ``Date`` header minus this host's time when the answer arrived: a lower bound
of the true skew, which is at most :data:`PRECISION` more (the header drops the fraction of its
second, and the server wrote it before the answer travelled). A window moved by it starts early
enough; its end is moved by the upper bound (:mod:`xiva_source.pipeline.xiva_pull`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["PRECISION", "ServerClock"]

PRECISION = timedelta(seconds=2)
"""How much later than :attr:`ServerClock.skew` the true skew may be: the header's whole second,
plus an answer's latency (a slower answer fails the client's timeout long before it matters)."""


class ServerClock:
    """The latest measure of how far Xiva's clock runs ahead of this host's (thread-safe).

    Args:
        clock: This host's wall clock (UNIX time), injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._skew: float | None = None

    def observe(self, date_header: str | None) -> None:
        """Record the ``Date`` header of an answer that just arrived (absent or bad: ignored)."""
        if not date_header:
            return
        try:
            served = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            return
        if served.tzinfo is None:  # RFC 9110: every HTTP date is GMT (asctime has no zone)
            served = served.replace(tzinfo=UTC)
        skew = served.timestamp() - self._clock()
        with self._lock:
            self._skew = skew

    @property
    def skew(self) -> timedelta | None:
        """Xiva's time minus this host's at the latest answer (negative: Xiva is behind), a lower
        bound (the true skew is within :data:`PRECISION` above it); ``None`` before an answer
        carried a ``Date`` header."""
        with self._lock:
            return None if self._skew is None else timedelta(seconds=self._skew)
