"""Secret masking for any text the project prints, logs or stores (one place for the patterns).

Used by every error message, the HTTP client's logging filter and the settings' reprs.
"""

from __future__ import annotations

import html
import re

__all__ = ["EXCERPT_LIMIT", "REDACTED", "body_excerpt", "redact", "redact_url"]

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


def redact_url(url: str) -> str:
    """Mask the password of a URL such as ``postgresql://user:pass@host/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
