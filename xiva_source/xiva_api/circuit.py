"""The circuit breaker of one Xiva client: stop calling a Xiva that does not answer.

The house's one breaker (:class:`xiva_source.breaker.Breaker`) with Xiva's thresholds, raising
when open. Closed, it lets every call through and counts consecutive calls that got no response at
all (refused, DNS failure, dropped, timed out, past the request deadline). After ``failures`` of
them it opens: every call fails at once with :class:`XivaCircuitOpenError`, without touching the
network, so a dead Xiva costs a run seconds, not a retry loop per customer. After ``cooldown``
seconds it is half-open: one call (the probe) goes through while the others still fail at once;
an answer (any HTTP status) closes it, another connection failure opens it for a new cool-down.

One breaker per :class:`~xiva_source.xiva_api.client.XivaClient` (one base URL): a run's client
shares it between its threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from xiva_source.breaker import Breaker
from xiva_source.xiva_api.errors import XivaCircuitOpenError, XivaConnectionError
from xiva_source.xiva_api.logs import logger

__all__ = ["CircuitBreaker", "XivaCircuitOpenError", "failure_reason"]


class CircuitBreaker(Breaker):
    """Consecutive connection failures open it; a probe after ``cooldown`` seconds closes it.

    The client calls :meth:`before_call` before sending, then ``record_success`` (any HTTP
    answer), ``record_failure`` (no response: :func:`failure_reason`) or ``abandon``.

    Args:
        failures: Consecutive connection failures that open the breaker
            (``XIVA_BREAKER_FAILURES``).
        cooldown: Seconds the breaker stays open before letting one probe through
            (``XIVA_BREAKER_COOLDOWN_SECONDS``).
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
        super().__init__(
            failures,
            cooldown,
            name=name,
            # the failure it causes is reported once (summary line, boundary): INFO here
            opened="Xiva circuit open: %(name)s gave no response to %(count)d calls in a row "
            "(%(reason)s); calls fail at once for %(cooldown).0f s",
            probing="Xiva circuit half-open: probing %(name)s with %(call)s",
            closed="Xiva circuit closed: %(name)s answers again",
            level=logging.INFO,
            logger=logger,
            clock=clock,
        )

    def before_call(self, endpoint: str) -> None:
        """Let a call through, or fail it at once while the breaker is open.

        Args:
            endpoint: The call's endpoint name (``customer_360``, ...), for the messages.

        Raises:
            XivaCircuitOpenError: The breaker is open, or half-open with a probe already out.
        """
        if self.admit(endpoint):
            return
        raise XivaCircuitOpenError(
            f"Xiva {endpoint} not sent: {self.name} gave no response to {self.failures} calls in "
            f"a row (last: {self.last_error or 'unknown'}); the circuit breaker fails calls at "
            f"once for {self.retry_in():.0f} s more."
        )


def failure_reason(error: XivaConnectionError) -> str:
    """A short cause for the breaker's messages: the network exception's name, or 'deadline'."""
    cause = error.__cause__
    if "XIVA_REQUEST_DEADLINE_SECONDS" in error.message:
        return "request deadline"
    return type(cause).__name__ if cause is not None else type(error).__name__
