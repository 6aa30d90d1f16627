"""Fault injection: which API requests fail, and the responses they fail with."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from .config import FaultConfig, RetryAfterStyle
from .wire import Response, html_error, json_response, tmf_error

__all__ = ["Fault", "FaultInjector", "retry_after_header", "throttled_response"]


def retry_after_header(
    style: RetryAfterStyle, seconds: float, now: float | None = None
) -> dict[str, str]:
    """The ``Retry-After`` header of a 429/503 in the given style (``{}`` for ``missing``).

    The HTTP-date style is rounded up to the next whole second, so the announced wait is never
    shorter than ``seconds``; it is a date on the server's clock ``now`` (UNIX time; default
    this host's).
    """
    if style == "missing":
        return {}
    if style == "zero":
        return {"Retry-After": "0"}
    if style == "http_date":
        moment = datetime.fromtimestamp(
            math.ceil((time.time() if now is None else now) + seconds), UTC
        )
        return {"Retry-After": format_datetime(moment, usegmt=True)}
    return {"Retry-After": str(max(0, math.ceil(seconds)))}


def throttled_response(seconds: int, headers: dict[str, str]) -> Response:
    """DRF's throttle response:
    ``{"detail": "Request was throttled. Expected available in N seconds."}``.
    """
    detail = f"Request was throttled. Expected available in {seconds} seconds."
    return json_response(429, {"detail": detail}, headers)


@dataclass(frozen=True)
class Fault:
    """One injected failure: its kind and the fault configuration it came from."""

    kind: str
    config: FaultConfig

    @property
    def swaps_customer(self) -> bool:
        """A ``swapped`` fault: a request about one customer is answered with another's record
        (a gateway cache or routing fault); other requests are answered normally."""
        return self.kind == "swapped"

    @property
    def echoes_login(self) -> bool:
        """A ``login_echo`` fault: a login is refused ``400`` with a body that echoes the
        password it was sent, base64-encoded (as ``username:password`` too, the way a
        misconfigured gateway quotes a Basic header); other requests are answered normally."""
        return self.kind == "login_echo"

    def response(self, now: float | None = None) -> Response | None:
        """The failure response; None for ``slow`` (sleep, then answer normally), ``swapped``
        (answer with another customer's record: the app does it, :attr:`swaps_customer`) and
        ``login_echo`` (the app answers a login: :attr:`echoes_login`).

        Args:
            now: The server's clock (UNIX time) for ``Retry-After`` dates; default this host's.
        """
        config = self.config
        if self.kind in ("slow", "swapped", "login_echo"):
            return None
        if self.kind == "drop":
            return Response(0, drop=True)
        if self.kind == "429":
            headers = retry_after_header(config.retry_after, config.retry_after_seconds, now)
            return throttled_response(config.retry_after_seconds, headers)
        if self.kind == "503":
            headers = retry_after_header(config.retry_after, config.retry_after_seconds, now)
            return tmf_error(503, "The service is temporarily unavailable.", headers)
        if self.kind == "500":
            return tmf_error(500, "Internal server error.")
        return html_error(502 if self.kind == "502_html" else 504)


class FaultInjector:
    """Decides, per API request, whether it fails. Thread-safe and reproducible (seeded dice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config: FaultConfig | None = None
        self._remaining: int | None = None
        self._rng = random.Random(0)

    @property
    def config(self) -> FaultConfig | None:
        """The active fault configuration, or None."""
        return self._config

    def configure(self, config: FaultConfig | None) -> None:
        """Replace the fault configuration (None: no faults)."""
        with self._lock:
            self._config = config
            self._remaining = None if config is None else config.count
            self._rng = random.Random(0 if config is None else config.seed)

    def decide(self, endpoint: str, path: str) -> Fault | None:
        """The fault for this request, if any.

        Args:
            endpoint: The endpoint name (``customer_list``...).
            path: The request path, without the API base path.
        """
        with self._lock:
            config = self._config
            if config is None or (self._remaining is not None and self._remaining <= 0):
                return None
            if config.paths is not None and not _matches(config.paths, endpoint, path):
                return None
            if config.rate < 1.0 and self._rng.random() >= config.rate:
                return None
            if self._remaining is not None:
                self._remaining -= 1
            return Fault(self._rng.choice(config.kinds), config)


def _matches(paths: Collection[str], endpoint: str, path: str) -> bool:
    if endpoint in paths:
        return True
    return any(path.startswith(p) for p in paths if p.startswith("/"))
