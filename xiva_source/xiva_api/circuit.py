"""The circuit breaker of one Xiva client: stop calling a Xiva that does not answer.

Closed, it lets every call through and counts consecutive calls that got no response at all
(refused, DNS failure, dropped, timed out, past the request deadline). After ``failures`` of them
it opens: every call fails at once with :class:`XivaCircuitOpenError`, without touching the
network, so a dead Xiva costs a run seconds, not a retry loop per customer. After ``cooldown``
seconds it is half-open: one call (the probe) goes through while the others still fail at once;
an answer (any HTTP status) closes it, another connection failure opens it for a new cool-down.

One breaker per :class:`~xiva_source.xiva_api.client.XivaClient` (one base URL): a run's client
shares it between its threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from xiva_source.xiva_api.errors import XivaCircuitOpenError, XivaConnectionError
from xiva_source.xiva_api.logs import logger

__all__ = ["CircuitBreaker", "XivaCircuitOpenError", "failure_reason"]

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Consecutive connection failures open it; a probe after ``cooldown`` seconds closes it.

    Args:
        failures: Consecutive connection failures that open the breaker.
        cooldown: Seconds the breaker stays open before letting one probe through.
        name: What is guarded, for messages (the redacted base URL).
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 30.0,
        *,
        name: str = "Xiva",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = max(1, failures)
        self.cooldown = cooldown
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.state}, failures={self._consecutive}/{self.failures})"

    @property
    def state(self) -> State:
        """``closed``, ``open`` (calls fail at once) or ``half-open`` (a probe may go)."""
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if self._clock() < self._opened_at + self.cooldown else "half-open"

    def before_call(self, endpoint: str) -> None:
        """Let a call through, or fail it at once while the breaker is open.

        Raises:
            XivaCircuitOpenError: The breaker is open, or half-open with a probe already out.
        """
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half-open" and not self._probing:
                self._probing = True
                logger.info("Xiva circuit half-open: probing %s with %s", self.name, endpoint)
                return
            left = max(0.0, self._opened_at + self.cooldown - self._clock())  # type: ignore[operator]
        raise XivaCircuitOpenError(
            f"Xiva {endpoint} not sent: {self.name} gave no response to {self.failures} calls in "
            f"a row (last: {self.last_error or 'unknown'}); the circuit breaker fails calls at "
            f"once for {left:.0f} s more."
        )

    def abandon(self) -> None:
        """A call let through ended without any answer to judge (a bug, an interrupt): free the
        probe slot so another call can probe."""
        with self._lock:
            self._probing = False

    def record_success(self) -> None:
        """Xiva answered (any HTTP status): close the breaker."""
        with self._lock:
            was_open = self._opened_at is not None
            self._consecutive = 0
            self._opened_at = None
            self._probing = False
        if was_open:
            logger.info("Xiva circuit closed: %s answers again", self.name)

    def record_failure(self, reason: str) -> None:
        """A call got no response; open the breaker after ``failures`` in a row (or a probe's)."""
        with self._lock:
            self.last_error = reason
            self._consecutive += 1
            probe_failed = self._probing
            self._probing = False
            if not probe_failed and (
                self._opened_at is not None or self._consecutive < self.failures
            ):
                return
            self._opened_at = self._clock()
        logger.info(  # the failure it causes is reported once (summary line, boundary)
            "Xiva circuit open: %s gave no response to %d calls in a row (%s); calls fail at "
            "once for %.0f s",
            self.name,
            self._consecutive,
            reason,
            self.cooldown,
        )


def failure_reason(error: XivaConnectionError) -> str:
    """A short cause for the breaker's messages: the network exception's name, or 'deadline'."""
    cause = error.__cause__
    if "XIVA_REQUEST_DEADLINE_SECONDS" in error.message:
        return "request deadline"
    return type(cause).__name__ if cause is not None else type(error).__name__
