"""The simulator's error hierarchy: every error it raises is a :class:`SimulatorError`."""

from __future__ import annotations

__all__ = [
    "ControlRequestError",
    "SimulatorError",
    "SimulatorNotRunningError",
    "TokenRejectedError",
    "UnknownCustomerError",
]


class SimulatorError(Exception):
    """Base class of every error raised by :mod:`xiva_source.simulator`."""


class SimulatorNotRunningError(SimulatorError):
    """The simulator's HTTP server is not started, so it has no URL yet."""

    def __init__(self) -> None:
        super().__init__(
            "The Xiva simulator is not running: call sim.start() (or use it as a context "
            "manager) before asking for its URL."
        )


class UnknownCustomerError(SimulatorError, KeyError):
    """A customer id that the simulated population does not contain."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        super().__init__(
            f"No simulated customer has id {customer_id!r}: take ids from sim.customer_ids()."
        )

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class TokenRejectedError(SimulatorError):
    """A JWT the simulator did not issue, or one that is expired, revoked or of the wrong type.

    The token itself is never part of the message.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Token rejected: {reason}.")


class ControlRequestError(SimulatorError):
    """A ``/_sim/`` control request whose body is not what the control endpoint expects."""

    def __init__(self, endpoint: str, problem: str, fix: str) -> None:
        self.endpoint = endpoint
        self.problem = problem
        super().__init__(f"Bad control request to {endpoint}: {problem}. {fix}")
