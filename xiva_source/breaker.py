"""The one circuit breaker: stop calling something that is down, try it again after a cool-down.

Whatever it guards (Xiva, the Redis of the shared rate and usage counters, later a DWH), the state
machine is the same:

- **closed**: every call goes through; consecutive failures are counted, a success resets them.
- **open**: after ``failures`` failures in a row every call is refused at once, without touching
  what is down. What a refused call does is the caller's: raise (:meth:`Breaker.admit` said no:
  the Xiva client raises ``XivaCircuitOpenError``) or fall back (:meth:`Breaker.call` runs the
  fallback: the rate limiter paces this process alone, the usage counters drop a count).
- **half-open**: ``cooldown`` seconds after it opened, one call (the probe) goes through while the
  others are still refused; its success closes the breaker, its failure opens it for a new
  cool-down. A failure of a call let through *before* the breaker opened does not extend the
  cool-down.

One message when an outage starts (``opened``), one when it ends (``closed``), and optionally one
per probe (``probing``): never one per refused or failed call. Messages are %-formats over a
mapping: ``%(name)s`` (what is guarded), ``%(reason)s`` (the last failure), ``%(count)d``
(failures in a row), ``%(cooldown).0f`` (seconds) and ``%(call)s`` (what the probe is).

A core module: it imports no package of the project, so the Xiva client and the packages above it
(jobs, workers) guard their dependencies with the same breaker. Thread-safe; the clock (monotonic
seconds) is injectable for tests.

Example:
    >>> breaker = Breaker(failures=1, cooldown=30.0, name="Redis")
    >>> breaker.call(lambda: "shared", fallback=lambda: "local")
    'shared'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half-open"]
"""``closed`` (calls go), ``open`` (calls refused), ``half-open`` (one probe may go)."""

T = TypeVar("T")
F = TypeVar("F")

_logger = logging.getLogger(__name__)


def _any_exception(error: BaseException) -> bool:
    return isinstance(error, Exception)


class Breaker:
    """Consecutive failures open it; a probe after ``cooldown`` seconds closes it.

    Args:
        failures: Failures in a row that open the breaker (at least 1).
        cooldown: Seconds the breaker stays open before it lets one probe through.
        name: What is guarded, for the messages (never a secret: a redacted URL at most).
        opened: Logged once when an outage starts (``None``: silent).
        probing: Logged when a probe is let through (``None``: silent).
        closed: Logged once when an outage ends (``None``: silent).
        level: The level of the three messages.
        logger: Where they go (default: this module's logger).
        clock: Monotonic clock, injectable for tests.
        counts_as_failure: Which exceptions of :meth:`call`'s action are failures of what is
            guarded (they open the breaker and run the fallback); any other propagates. Default:
            any ``Exception``.

    Attributes:
        failures: The threshold (failures in a row that open the breaker).
        cooldown: Seconds open before a probe.
        name: What is guarded.
        last_error: The reason of the last failure recorded, or ``None``.
    """

    def __init__(
        self,
        failures: int = 1,
        cooldown: float = 30.0,
        *,
        name: str = "",
        opened: str | None = None,
        probing: str | None = None,
        closed: str | None = None,
        level: int = logging.WARNING,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        counts_as_failure: Callable[[BaseException], bool] = _any_exception,
    ) -> None:
        self.failures = max(1, failures)
        self.cooldown = cooldown
        self.name = name
        self.last_error: str | None = None
        self._messages = {"opened": opened, "probing": probing, "closed": closed}
        self._level = level
        self._logger = logger or _logger
        self._clock = clock
        self._counts_as_failure = counts_as_failure
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None  # None: closed
        self._probing = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.state}, failures={self._consecutive}/{self.failures}, "
            f"cooldown={self.cooldown:g})"
        )

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` (calls refused) or ``half-open`` (a probe may go)."""
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "open" if self._clock() < self._opened_at + self.cooldown else "half-open"

    def retry_in(self) -> float:
        """Seconds until a probe may go (0 when closed or half-open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown - self._clock())

    def admit(self, call: str = "") -> bool:
        """May a call go? Closed: yes. Half-open: yes for one call, the probe. Else no.

        A call admitted must end in :meth:`record_success`, :meth:`record_failure` or
        :meth:`abandon`, or a half-open breaker would wait for its probe forever.

        Args:
            call: What the call is, for the ``probing`` message.

        Returns:
            True if the call may go; False if it is refused (the caller raises or falls back).
        """
        return self._admit(call) is not None

    def _admit(self, call: str) -> Literal["call", "probe"] | None:
        with self._lock:
            state = self._state()
            if state == "closed":
                return "call"
            if state == "open" or self._probing:
                return None
            self._probing = True
        self._log("probing", call=call)
        return "probe"

    def record_success(self) -> None:
        """What is guarded answered: close the breaker (an outage ends: ``closed`` is logged)."""
        if self._opened_at is None and not self._consecutive:
            return  # the common case, without the lock
        with self._lock:
            ended = self._opened_at is not None
            self._consecutive = 0
            self._opened_at = None
            self._probing = False
        if ended:
            self._log("closed")

    def record_failure(self, reason: str) -> None:
        """A call failed: open the breaker after ``failures`` in a row, or when the probe failed.

        Args:
            reason: A short, secret-free cause (an exception's type name), for the messages.
        """
        with self._lock:
            self.last_error = reason
            self._consecutive += 1
            probe_failed = self._probing
            self._probing = False
            starts = self._opened_at is None and self._consecutive >= self.failures
            if not (starts or probe_failed):
                return  # below the threshold, or a call let through before it opened
            self._opened_at = self._clock()
            count = self._consecutive
        if starts:
            self._log("opened", count=count)

    def abandon(self) -> None:
        """A call let through ended without an outcome to judge (a bug, an interrupt): free the
        probe slot so another call can probe."""
        with self._lock:
            self._probing = False

    def call(self, action: Callable[[], T], fallback: Callable[[], F]) -> T | F:
        """Run ``action`` unless the breaker refuses it; fall back when refused or failed.

        Args:
            action: The guarded work; an exception ``counts_as_failure`` accepts is recorded as a
                failure (its type name the reason) and replaced by the fallback.
            fallback: What to do instead.

        Returns:
            ``action``'s result, or ``fallback``'s when the call was refused or failed.

        Raises:
            BaseException: Whatever ``action`` raised that is not a failure of what is guarded
                (the breaker's state is left as it was).
        """
        admitted = self._admit("")
        if admitted is None:
            return fallback()
        try:
            result = action()
        except BaseException as e:
            if not self._counts_as_failure(e):
                if admitted == "probe":  # not another thread's probe slot
                    self.abandon()
                raise
            self.record_failure(type(e).__name__)
            return fallback()
        self.record_success()
        return result

    def _log(self, event: str, *, count: int | None = None, call: str = "") -> None:
        message = self._messages[event]
        if message is None:
            return
        fields = {
            "name": self.name,
            "reason": self.last_error or "unknown",
            "count": self._consecutive if count is None else count,
            "cooldown": self.cooldown,
            "call": call,
        }
        self._logger.log(self._level, message, fields)
