"""Errors of the Xiva HTTP API client: the ``XivaError`` branch of the project's error tree::

    LoyaltyError (xiva_source.errors)
    └── XivaError                     any failed call; status, url and a redacted body excerpt
        ├── XivaAuthenticationError   401/403: credentials or tokens refused
        │   └── XivaNotConfiguredError  no credentials configured; nothing was sent
        ├── XivaRateLimitError        429 and the client will not wait any longer
        ├── XivaNotFoundError         404
        ├── XivaServerError           5xx after retries
        ├── XivaBadResponseError      not JSON, HTML, the wrong shape, a looping page
        ├── XivaConnectionError       refused, dropped, timed out, past the request deadline
        │   └── XivaCircuitOpenError  the circuit breaker is open: nothing was sent
        └── XivaRetryBudgetError      retryable failures until the call's time budget ran out

Each error carries the HTTP ``status`` (when there was a response), the ``url`` it came from and a
short ``body`` excerpt: at most 200 characters, HTML tags stripped, tokens and passwords redacted,
so an error can be logged or shown as is; and, as every project error, its ``problem`` and ``fix``.
"""

from __future__ import annotations

from typing import ClassVar

from xiva_source.errors import LoyaltyError
from xiva_source.redaction import body_excerpt, redact

__all__ = [
    "XivaAuthenticationError",
    "XivaBadResponseError",
    "XivaCircuitOpenError",
    "XivaConnectionError",
    "XivaError",
    "XivaNotConfiguredError",
    "XivaNotFoundError",
    "XivaRateLimitError",
    "XivaRetryBudgetError",
    "XivaServerError",
]


class XivaError(LoyaltyError):
    """A call to the Xiva API failed.

    Args:
        message: What happened and what to do about it.
        status: The HTTP status of the response, if there was one.
        body: The response body; only a short redacted excerpt is kept.
        url: The URL requested (its query string is kept, it carries no secrets).

    Attributes:
        message: The message without the status/URL/body details.
        status: HTTP status or ``None``.
        body: The redacted excerpt (at most 200 characters) or ``None``.
        url: The URL or ``None``.
    """

    default_fix: ClassVar[str] = (
        "Check XIVA_API_BASE_URL and that Xiva is up; the error above says what it answered."
    )

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | bytes | None = None,
        url: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.status = status
        self.body = body_excerpt(body)
        self.url = redact(url) if url else None
        super().__init__(self._describe(), fix)

    def _describe(self) -> str:
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.url:
            details.append(self.url)
        text = self.message
        if details:
            text += f" [{' '.join(details)}]"
        if self.body:
            text += f" Response: {self.body}"
        return text


class XivaAuthenticationError(XivaError):
    """Xiva rejected the credentials or the tokens (HTTP 401/403), or none are configured."""

    default_fix: ClassVar[str] = (
        "Check XIVA_API_USERNAME and XIVA_API_PASSWORD (in .env or the environment)."
    )


class XivaNotConfiguredError(XivaAuthenticationError):
    """No Xiva user name or password is configured; raised before any request is sent."""

    default_fix: ClassVar[str] = (
        "Set XIVA_API_USERNAME and XIVA_API_PASSWORD in the project's .env or the environment."
    )

    MESSAGE = "Not authenticated. Please configure XIVA_API_USERNAME and XIVA_API_PASSWORD"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)

    def _render(self) -> str:
        # The contract's exact words (they already say what to configure).
        return self.problem


class XivaRateLimitError(XivaError):
    """Xiva throttled the client (HTTP 429) and the client will not wait any longer.

    Attributes:
        retry_after: Seconds Xiva asked to wait (``None`` when it did not say).
    """

    default_fix: ClassVar[str] = (
        "Lower XIVA_REQUESTS_PER_SECOND, or raise XIVA_MAX_RETRY_AFTER / XIVA_RETRY_BUDGET."
    )

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        body: str | bytes | None = None,
        url: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, body=body, url=url)


class XivaNotFoundError(XivaError):
    """The requested object does not exist in Xiva (HTTP 404)."""

    default_fix: ClassVar[str] = "Check the customer id: Xiva does not know it."


class XivaServerError(XivaError):
    """Xiva or a gateway in front of it failed (HTTP 5xx) and retries did not help."""

    default_fix: ClassVar[str] = "Xiva is failing: retry later, or check Xiva's status."


class XivaBadResponseError(XivaError):
    """Xiva answered something the client cannot use: not JSON, an HTML page, the wrong shape."""

    default_fix: ClassVar[str] = (
        "Check that XIVA_API_BASE_URL points at the Xiva API (it ends in /api)."
    )


class XivaConnectionError(XivaError):
    """No usable response: connection refused or dropped, or the response timed out."""

    default_fix: ClassVar[str] = (
        "Check XIVA_API_BASE_URL and that Xiva is reachable from this machine."
    )


class XivaCircuitOpenError(XivaConnectionError):
    """Xiva stopped answering; the client's circuit breaker fails this call without sending it."""

    default_fix: ClassVar[str] = (
        "Check that Xiva is up and XIVA_API_BASE_URL is right; the run's earlier connection "
        "errors say what failed (XIVA_BREAKER_FAILURES, XIVA_BREAKER_COOLDOWN_SECONDS tune it)."
    )


class XivaRetryBudgetError(XivaError):
    """A call kept failing with retryable errors until its total time budget ran out.

    It carries the status, URL and body excerpt of the last attempt; ``last_error`` (also its
    ``__cause__``) is that attempt's own error: a :class:`XivaServerError`,
    :class:`XivaRateLimitError` or :class:`XivaConnectionError`.

    Attributes:
        attempts: How many HTTP attempts the call made.
        elapsed: Seconds the call spent.
        last_error: The error of the last attempt.
    """

    default_fix: ClassVar[str] = "Xiva kept failing: retry later, or raise XIVA_RETRY_BUDGET."

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        elapsed: float,
        last_error: XivaError | None = None,
    ) -> None:
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error
        where = last_error or XivaError("")
        super().__init__(
            message,
            status=where.status,
            body=where.body,
            url=where.url,
            fix=last_error.fix if last_error is not None else None,
        )
