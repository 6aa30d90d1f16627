"""Request counters and the request log. Thread-safe."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any, NamedTuple

__all__ = ["CONTROL_ENDPOINT", "RequestRecord", "RequestRecorder", "Status"]

CONTROL_ENDPOINT = "control"
"""Endpoint name of ``/_sim/`` calls: counted per endpoint, but not in ``total`` nor the log."""

Status = int | str
"""An HTTP status, or ``"drop"`` for a connection closed without a response."""


class RequestRecord(NamedTuple):
    """One API request as the server saw it."""

    at: float
    """``time.monotonic()`` when the request arrived (compare records with each other)."""
    endpoint: str
    status: Status
    user: str | None
    """The authenticated user (or the one logging in), None when unknown."""


class RequestRecorder:
    """Counts requests per endpoint and status and per user, and keeps a bounded log."""

    def __init__(self, log_size: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._log: deque[RequestRecord] = deque(maxlen=log_size)
        self._total = 0
        self._by_endpoint: dict[str, Counter[Status]] = {}
        self._by_user: Counter[str] = Counter()

    def record(self, arrived: float, endpoint: str, status: Status, user: str | None) -> None:
        """Count one request that arrived at ``arrived`` (monotonic seconds)."""
        with self._lock:
            self._by_endpoint.setdefault(endpoint, Counter())[status] += 1
            if endpoint == CONTROL_ENDPOINT:
                return
            self._total += 1
            if user is not None:
                self._by_user[user] += 1
            self._log.append(RequestRecord(arrived, endpoint, status, user))

    def counters(self) -> dict[str, Any]:
        """A copy: ``{"total", "by_endpoint": {endpoint: {status: n}}, "by_user": {user: n}}``."""
        with self._lock:
            return {
                "total": self._total,
                "by_endpoint": {name: dict(c) for name, c in self._by_endpoint.items()},
                "by_user": dict(self._by_user),
            }

    def log(self) -> list[RequestRecord]:
        """The recent requests, oldest first."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Zero every counter and empty the log."""
        with self._lock:
            self._log.clear()
            self._total = 0
            self._by_endpoint = {}
            self._by_user = Counter()
