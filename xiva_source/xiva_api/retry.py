"""The client's bounded retry policy: ``Retry-After`` parsing, jittered backoff, a time budget.

One :class:`RetryPolicy` per client; each call starts a :class:`RetryState` and asks it how long to
wait before the next attempt. The state never shortens a server's ``Retry-After`` and fails fast,
with an error that says what to change, when the wait would be too long or the call's total time
budget would run out.

Waiting helps a throttled or overloaded Xiva (429, 5xx: patient, within the budget) but not one
that does not answer at all (refused, DNS failure, dropped, timed out): a call without any response
gets ``connect_attempts`` attempts over about a second, then fails.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from xiva_source.xiva_api.errors import (
    XivaConnectionError,
    XivaError,
    XivaRateLimitError,
    XivaRetryBudgetError,
)
from xiva_source.xiva_api.logs import logger

__all__ = ["RetryPolicy", "RetryState", "parse_retry_after"]

# urllib3 parses both header forms; an unbounded maximum so a long wait is seen, not clamped.
_PARSER = Retry(total=0, retry_after_max=sys.maxsize)

RETRY_AFTER_MARGIN = 0.05
"""Seconds added to a server-given wait: HTTP dates have whole-second resolution and clocks tick
unevenly, so waiting exactly the stated time could land a hair early."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header.

    Args:
        value: The header: whole seconds (``"120"``) or an HTTP date
            (``"Wed, 21 Oct 2026 07:28:00 GMT"``), or ``None``.

    Returns:
        The seconds (a date in the past gives ``0.0``), or ``None`` when the header is missing,
        ``0`` or unparsable; the caller then backs off exponentially with jitter.
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(_PARSER.parse_retry_after(value))
    except InvalidHeader:
        return None
    return seconds if seconds > 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    """How one call retries.

    Attributes:
        max_retry_after: The longest server-requested wait honoured; a longer one fails fast.
        budget: Total seconds one call may take, waits included, before it fails.
        max_attempts: Most HTTP attempts per call (python-gitlab's ``max_retries`` + 1).
        backoff_base: First backoff ceiling in seconds when the server gives no ``Retry-After``.
        backoff_max: Largest backoff ceiling in seconds.
        connect_attempts: Most attempts of a call that gets no response at all
            (:class:`XivaConnectionError`): refused, DNS failure, dropped, timed out.
        connect_backoff_base: First backoff ceiling in seconds after a connection failure.
        connect_backoff_max: Largest backoff ceiling after a connection failure.
    """

    max_retry_after: float = 120.0
    budget: float = 300.0
    max_attempts: int = 10
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    connect_attempts: int = 3
    connect_backoff_base: float = 0.25
    connect_backoff_max: float = 1.0

    def start(self, *, clock: Callable[[], float] = time.monotonic) -> RetryState:
        """Begin one call's retry bookkeeping."""
        return RetryState(self, clock=clock)


@dataclass
class RetryState:
    """The retry bookkeeping of one call (not shared between threads)."""

    policy: RetryPolicy
    clock: Callable[[], float] = time.monotonic
    attempts: int = 0
    connect_failures: int = 0
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the call started."""
        return self.clock() - self.started

    def backoff(self) -> float:
        """Exponential backoff with full jitter for the current attempt (AWS' "full jitter")."""
        ceiling = min(self.policy.backoff_max, self.policy.backoff_base * 2 ** (self.attempts - 1))
        return random.uniform(0.0, ceiling)

    def connect_backoff(self) -> float:
        """The short full-jitter backoff after a connection failure."""
        policy = self.policy
        ceiling = policy.connect_backoff_base * 2 ** (self.connect_failures - 1)
        return random.uniform(0.0, min(policy.connect_backoff_max, ceiling))

    def next_wait(self, error: XivaError, retry_after: float | None) -> float:
        """Record a failed attempt and return the seconds to wait before the next one.

        Args:
            error: Why the attempt failed; raised (chained) when the call gives up.
            retry_after: Seconds the server asked to wait, from :func:`parse_retry_after`.

        Returns:
            Seconds to sleep: at least ``retry_after`` (plus a small margin) when given, a jittered
            exponential backoff otherwise.

        Raises:
            XivaRateLimitError: ``retry_after`` exceeds ``max_retry_after``.
            XivaRetryBudgetError: The attempts (``connect_attempts`` for a connection failure) or
                the time budget would run out.
        """
        self.attempts += 1
        if isinstance(error, XivaConnectionError):
            self.connect_failures += 1
            if self.connect_failures >= self.policy.connect_attempts:
                elapsed = self.elapsed
                raise XivaRetryBudgetError(
                    f"Gave up after {self.attempts} attempts in {elapsed:.1f} s ("
                    f"{self.connect_failures} without a response, XIVA_CONNECT_ATTEMPTS="
                    f"{self.policy.connect_attempts}); last error: {error.message}",
                    attempts=self.attempts,
                    elapsed=elapsed,
                    last_error=error,
                ) from error
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            raise XivaRateLimitError(
                f"Xiva asked to wait {retry_after:.0f} s (Retry-After) which exceeds "
                f"XIVA_MAX_RETRY_AFTER={self.policy.max_retry_after:g}; lower the request rate "
                "XIVA_REQUESTS_PER_SECOND, or raise XIVA_MAX_RETRY_AFTER if waiting that long is "
                "acceptable.",
                retry_after=retry_after,
                status=error.status,
                body=error.body,
                url=error.url,
            ) from error
        if retry_after is not None:
            wait = retry_after + RETRY_AFTER_MARGIN
        elif isinstance(error, XivaConnectionError):
            wait = self.connect_backoff()
        else:
            wait = self.backoff()
        elapsed = self.elapsed
        if self.attempts >= self.policy.max_attempts or elapsed + wait > self.policy.budget:
            spent = (
                f"{self.attempts} attempts"
                if self.attempts >= self.policy.max_attempts
                else f"the next wait of {wait:.1f} s would exceed XIVA_RETRY_BUDGET="
                f"{self.policy.budget:g} s"
            )
            raise XivaRetryBudgetError(
                f"Gave up after {self.attempts} attempts in {elapsed:.1f} s ({spent}); last error: "
                f"{error.message} Check Xiva's health, lower XIVA_REQUESTS_PER_SECOND if it "
                "throttles, or raise XIVA_RETRY_BUDGET.",
                attempts=self.attempts,
                elapsed=elapsed,
                last_error=error,
            ) from error
        return wait

    def wait_before_retry(
        self, error: XivaError, retry_after: float | None, endpoint: str
    ) -> float:
        """:meth:`next_wait`, logging the retry (or the giving up) at WARNING.

        Args:
            error: Why the attempt failed.
            retry_after: Seconds the server asked to wait, if it did.
            endpoint: The call's usage-counter name, for the log.

        Returns:
            Seconds to sleep before the next attempt.

        Raises:
            XivaRateLimitError: ``retry_after`` exceeds ``max_retry_after``.
            XivaRetryBudgetError: The attempts or the time budget would run out.
        """
        try:
            delay = self.next_wait(error, retry_after)
        except XivaError as final:
            # INFO: the error is raised, and its one report (summary line, boundary) says it
            logger.info("Xiva %s: giving up: %s", endpoint, final.message)
            raise
        how = f"Retry-After {retry_after:g} s" if retry_after is not None else "backoff"
        cause = error.__cause__ or error
        reason = f"HTTP {error.status}" if error.status is not None else type(cause).__name__
        logger.info(  # a detail: the run's summary line counts what came of it
            "Xiva %s: %s; retry %d in %.2f s (%s)", endpoint, reason, self.attempts, delay, how
        )
        return delay
