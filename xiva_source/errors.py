"""The error hierarchy of :mod:`xiva_source`: everything the package raises is a :class:`XivaError`.

Each error carries the HTTP ``status`` (when there was a response), the ``url`` it came from and a
short ``body`` excerpt: at most 200 characters, HTML tags stripped, and tokens, passwords and
secrets redacted, so an error can be logged or shown as is. Messages are built in ``__init__`` and
say what happened and what to do.

The store-side errors (:class:`DataSourceError` and its subclasses) share the root so a caller can
catch every failure of the package with one ``except XivaError``.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xiva_source.materialize import RunSummary

__all__ = [
    "AllSourcesFailedError",
    "DataSourceError",
    "DwhError",
    "LiveRefreshError",
    "MaterializationConfigError",
    "MaterializationError",
    "MaterializationFailedError",
    "XivaAuthenticationError",
    "XivaBadResponseError",
    "XivaConnectionError",
    "XivaError",
    "XivaNotConfiguredError",
    "XivaNotFoundError",
    "XivaRateLimitError",
    "XivaRetryBudgetError",
    "XivaServerError",
    "body_excerpt",
    "redact",
]

EXCERPT_LIMIT = 200
"""Longest body excerpt an error carries."""

_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_SECRET_KEY = r"(?:access|refresh)(?:_token)?|token|password|passwd|secret|api[_-]?key"
# A quoted key ("password": ...) or key=value; prose such as "refresh token: expired" is left alone.
_SECRET_FIELD_RE = re.compile(
    rf"""(?P<key>(?:"(?:{_SECRET_KEY})"|'(?:{_SECRET_KEY})')\s*[:=]\s*|\b(?:{_SECRET_KEY})=)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&}]+)""",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"\b(Bearer|JWT)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_URL_PASSWORD_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):[^@/\s]+@", re.IGNORECASE)
_SCRIPT_STYLE_RE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")
REDACTED = "***"


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like a secret.

    JWTs, ``Authorization`` values, ``"access"``/``"refresh"``/``"password"``-style fields and
    passwords inside URLs are replaced with ``***``.

    Example:
        >>> redact('{"access": "eyJhbGciOi.eyJleHAiOjF9.c2ln", "detail": "ok"}')
        '{"access": ***, "detail": "ok"}'
    """
    text = _JWT_RE.sub(REDACTED, text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_FIELD_RE.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    return _URL_PASSWORD_RE.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)


def body_excerpt(body: str | bytes | None, limit: int = EXCERPT_LIMIT) -> str | None:
    """A short, secret-free, single-line excerpt of a response body.

    Args:
        body: The raw body (bytes are decoded as UTF-8, invalid bytes replaced).
        limit: The longest excerpt returned; longer text is cut and ends with ``...``.

    Returns:
        The excerpt, or ``None`` for an empty body. HTML tags are stripped (an HTML error page
        becomes its visible text) and secrets are redacted before truncation.
    """
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if "<" in text and ">" in text:
        text = html.unescape(_TAG_RE.sub(" ", _SCRIPT_STYLE_RE.sub(" ", text)))
    text = redact(_SPACE_RE.sub(" ", text).strip())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class XivaError(Exception):
    """Base class of every error raised by :mod:`xiva_source`.

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

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | bytes | None = None,
        url: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.status = status
        self.body = body_excerpt(body)
        self.url = redact(url) if url else None
        super().__init__(self._render())

    def _render(self) -> str:
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

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling (multiprocessing, Feast).
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[XivaError], text: str, state: dict[str, Any]) -> XivaError:
    err = cls.__new__(cls)
    Exception.__init__(err, text)
    err.__dict__.update(state)
    return err


class XivaAuthenticationError(XivaError):
    """Xiva rejected the credentials or the tokens (HTTP 401/403), or none are configured."""


class XivaNotConfiguredError(XivaAuthenticationError):
    """No Xiva user name or password is configured; raised before any request is sent."""

    MESSAGE = "Not authenticated. Please configure XIVA_API_USERNAME and XIVA_API_PASSWORD"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class XivaRateLimitError(XivaError):
    """Xiva throttled the client (HTTP 429) and the client will not wait any longer.

    Attributes:
        retry_after: Seconds Xiva asked to wait (``None`` when it did not say).
    """

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


class XivaServerError(XivaError):
    """Xiva or a gateway in front of it failed (HTTP 5xx) and retries did not help."""


class XivaBadResponseError(XivaError):
    """Xiva answered something the client cannot use: not JSON, an HTML page, the wrong shape."""


class XivaConnectionError(XivaError):
    """No usable response: connection refused or dropped, or the response timed out."""


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
        super().__init__(message, status=where.status, body=where.body, url=where.url)


class DataSourceError(XivaError):
    """A feature source (Xiva or the DWH) failed while the store read from it.

    Args:
        source: The source's name, e.g. ``"xiva"`` or ``"dwh"``.
        cause: What went wrong, in one sentence (the original exception is chained with
            ``raise ... from``).
        hint: What to do about it.
    """

    def __init__(self, source: str, cause: str, *, hint: str | None = None) -> None:
        self.source = source
        self.cause = cause
        self.hint = hint
        text = f"Data source {source!r} failed: {cause}"
        if hint:
            text += f" {hint}"
        super().__init__(text)


class DwhError(DataSourceError):
    """The data warehouse could not be read (connection, SQL or schema problem)."""

    def __init__(self, cause: str, *, hint: str | None = None) -> None:
        super().__init__(
            "dwh",
            cause,
            hint=hint or "Check DWH_URL and that the warehouse tables exist and are readable.",
        )


class AllSourcesFailedError(DataSourceError):
    """In ``auto`` mode every source failed, so no feature value could be produced.

    Args:
        failures: Source name -> the error it raised.
    """

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = dict(failures)
        summary = "; ".join(f"{name}: {err}" for name, err in self.failures.items())
        super().__init__(
            "+".join(self.failures) or "all",
            f"every source failed ({summary}).",
            hint="Fix one of them (see each error) or set FEATURE_STORE_DATA_SOURCE to the working "
            "one.",
        )


# --- Operations (xiva_source.materialize, xiva_source.live) ---------------------------------


class MaterializationError(XivaError):
    """Base class of the job's own errors (a :class:`~xiva_source.errors.XivaError`)."""


class MaterializationConfigError(MaterializationError):
    """The job cannot start: bad settings, no feature repository, an unknown view (exit 2).

    Args:
        problem: What is wrong.
        fix: What to do about it.
    """

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}")


class MaterializationFailedError(MaterializationError):
    """A run failed (exit 1); the views it could not finish keep their previous watermark.

    Args:
        summary: The run's summary, ``status="failed"``, for the summary line.
        cause: What went wrong.
        fix: What to do about it.

    Attributes:
        summary: As above; ``summary.views_done`` lists views that did finish before the failure.
    """

    def __init__(self, summary: RunSummary, cause: str, fix: str) -> None:
        self.summary = summary
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause} Fix: {fix}")


class LiveRefreshError(XivaError):
    """A live refresh cannot run in this configuration; nothing was written.

    Args:
        problem: What is wrong.
        fix: What to do about it.
    """

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}")
