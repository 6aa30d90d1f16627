"""Secret masking for any text the project prints, logs or stores (one place for the patterns).

Two layers: patterns (JWTs, ``Bearer`` values, ``"password"``-style fields, also as escaped JSON,
URL passwords) and a process-wide registry of known secret values (:func:`register_secret`: the
settings register the password and URL passwords, the Xiva client its credentials and every token
it is issued), matched raw, JSON-escaped, ``repr``'d, URL-encoded, HTML-escaped, base64 (also
inside a longer base64 text), base32 and hex, so a server that echoes a secret in free text or
encoded cannot make it print.

Used by every error message, the HTTP client's logging filter, the command line's log formatter
(:class:`RedactingFormatter`) and the settings' reprs.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from collections import OrderedDict
from urllib.parse import quote, quote_plus, unquote

__all__ = [
    "EXCERPT_LIMIT",
    "MAX_TRANSIENT_SECRETS",
    "MIN_EMBEDDED_BASE64",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "RedactingFormatter",
    "body_excerpt",
    "forget_secrets",
    "redact",
    "redact_url",
    "register_secret",
    "register_url_secret",
]

EXCERPT_LIMIT = 200
"""Longest body excerpt an error carries."""

_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_SECRET_KEY = r"(?:access|refresh)(?:_token)?|token|password|passwd|secret|api[_-]?key"
# A quoted key ("password": ...), also as escaped JSON (\"password\": \"...\"), or key=value;
# prose such as "refresh token: expired" is left alone.
_SECRET_FIELD_RE = re.compile(
    rf"""(?P<key>(?:\\*"(?:{_SECRET_KEY})\\*"|'(?:{_SECRET_KEY})')\s*[:=]\s*|\b(?:{_SECRET_KEY})=)"""
    r"""(?P<value>\\+".*?\\+"|"[^"]*"|'[^']*'|[^\s,;&}]+)""",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"\b(Bearer|JWT)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# The user may be empty (redis://:pw@host); later nodes of a multi-node URL may carry their own
# credentials (redis://u:pw@h1:1,u:pw@h2:2).
_URL_PASSWORD_RE = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s,]*):[^@/\s]+@", re.IGNORECASE
)
_URL_NODE_PASSWORD_RE = re.compile(r"(?P<scheme>,[^:/@\s,]*):[^@/\s,]+@")
_SCRIPT_STYLE_RE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")
REDACTED = "***"

MIN_SECRET_LENGTH = 4
"""Shorter values are not registered (masking every ``"abc"`` in every text would hide prose)."""

MAX_TRANSIENT_SECRETS = 16
"""Transient secrets (issued tokens: the last 8 pairs) kept; older ones are forgotten (each
registered value costs every redact() call a little)."""

_registry_lock = threading.Lock()
_permanent: set[str] = set()
_transient: OrderedDict[str, None] = OrderedDict()
_secret_re: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    """``value`` as text can carry it: raw, JSON-escaped (once and twice), repr'd, URL-encoded
    (also every byte percent-encoded), HTML-escaped (also as numeric character references),
    base64 (standard and URL-safe, with and without padding), base32 and hex (either case)."""
    forms = {value}
    for _ in range(2):  # escaped JSON inside a JSON string: "detail": "{\\"password\\": ...}"
        forms |= {json.dumps(f)[1:-1] for f in forms}
        forms |= {json.dumps(f, ensure_ascii=False)[1:-1] for f in forms}
        forms |= {repr(f)[1:-1] for f in forms}
    forms |= {quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    raw = value.encode()
    every_byte = "".join(f"%{b:02X}" for b in raw)
    forms |= {every_byte, every_byte.lower(), html.escape(value), html.escape(value, quote=False)}
    forms |= {"".join(f"&#{ord(c)};" for c in value), "".join(f"&#x{ord(c):x};" for c in value)}
    forms |= {raw.hex(), raw.hex().upper()}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw), base64.b32encode(raw)):
        text = encoded.decode("ascii")
        forms |= {text, text.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


MIN_EMBEDDED_BASE64 = 8
"""Shortest base64 fragment of a secret masked inside a longer base64 text (shorter ones would
match random base64 by chance)."""


def _embedded_base64_forms(value: str) -> set[str]:
    """The parts of any base64 text that carry ``value`` wherever it sits in the encoded bytes
    (``base64("user:" + password)``, a Basic ``Authorization`` header echoed back): per alignment
    (0, 1 or 2 bytes before it), the characters that depend on ``value``'s bytes alone, in the
    standard and URL-safe alphabets. Decoding the rest yields no more than a byte or two of it."""
    raw = value.encode()
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        whole_groups = (offset + len(raw)) // 3  # the last, partial group depends on what follows
        core = encoded[(4 if offset else 0) : 4 * whole_groups]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= MIN_EMBEDDED_BASE64}


def register_secret(value: str | None, *, transient: bool = False) -> None:
    """Mask ``value`` from now on in everything :func:`redact` cleans, whatever surrounds it.

    For values the patterns cannot recognize: the configured password (a server may echo it in
    free text), tokens as they are issued, URL passwords from settings. Its reversible forms are
    masked too: JSON-escaped, ``repr``, URL- and HTML-encoded, base64 (standard and URL-safe, with
    or without padding, whole or inside a longer base64 text such as ``user:password``), base32,
    hex. The registry is process-wide; values shorter
    than :data:`MIN_SECRET_LENGTH` are ignored.

    Args:
        value: The secret (``None`` or empty: nothing to do).
        transient: A value replaced over time (an access or refresh token): only the last
            :data:`MAX_TRANSIENT_SECRETS` are kept, so a long-lived process's registry is bounded.
            Other values are kept for the life of the process.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    global _secret_re
    with _registry_lock:
        if value in _permanent or (transient and value in _transient):
            return
        if transient:
            _transient[value] = None
            while len(_transient) > MAX_TRANSIENT_SECRETS:
                _transient.popitem(last=False)
        else:
            _permanent.add(value)
            _transient.pop(value, None)
        values = (*_permanent, *_transient)
        whole = set().union(*(_forms(v) for v in values))
        # A fragment inside a longer base64 text touches other letters: no word boundary there.
        embedded = set().union(*(_embedded_base64_forms(v) for v in values))
        alternatives = [(f, _alternative(f)) for f in whole - embedded]
        alternatives += [(f, re.escape(f)) for f in embedded]
        alternatives.sort(key=lambda pair: len(pair[0]), reverse=True)  # longest first
        pattern = "|".join(a for _, a in alternatives)
        _secret_re = re.compile(pattern) if pattern else None


def _alternative(form: str) -> str:
    """``form`` as a regex that does not match inside a longer word (``postgres`` in
    ``postgresql``): an alphanumeric end must not touch another alphanumeric character."""
    pattern = re.escape(form)
    if form[0].isalnum():
        pattern = r"(?<![^\W_])" + pattern
    if form[-1].isalnum():
        pattern += r"(?![^\W_])"
    return pattern


def register_url_secret(url: str | None) -> None:
    """Register the password(s) of a URL such as ``redis://:pw@host`` or ``redis://:pw@h1,h2``
    (no-op without one)."""
    if not url:
        return
    _, sep, rest = url.partition("://")
    if not sep:
        return
    for creds in _url_credentials(rest):
        if ":" in creds:
            password = creds.split(":", 1)[1]
            register_secret(password)
            register_secret(unquote(password))


def _url_credentials(rest: str) -> list[str]:
    """The ``user:password`` parts of a URL after its ``scheme://``: one (whose password may hold
    ``,`` or ``/``), or one per node (``u:pw@h1:1,u:pw@h2:2``)."""
    creds, at, _ = rest.rpartition("@")
    if not at:
        return []
    per_node = [p.rpartition("@")[0] for p in rest.partition("/")[0].split(",") if "@" in p]
    if "," not in creds or "@" not in creds:  # also per node: redis://h1:1,u:pw@h2:2
        return [creds, *per_node]
    return per_node


def forget_secrets() -> None:
    """Empty the registry (tests only: a process never needs to un-mask a secret)."""
    global _secret_re
    with _registry_lock:
        _permanent.clear()
        _transient.clear()
        _secret_re = None


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like a secret.

    Every registered secret (:func:`register_secret`) in any of its forms, JWTs,
    ``Authorization`` values, ``"access"``/``"refresh"``/``"password"``-style fields (also as
    escaped JSON) and passwords inside URLs are replaced with ``***``.

    Example:
        >>> redact('{"access": "eyJhbGciOi.eyJleHAiOjF9.c2ln", "detail": "ok"}')
        '{"access": ***, "detail": "ok"}'
    """
    known = _secret_re
    if known is not None:
        text = known.sub(REDACTED, text)
    text = _JWT_RE.sub(REDACTED, text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_FIELD_RE.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    text = _URL_PASSWORD_RE.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)
    return _URL_NODE_PASSWORD_RE.sub(lambda m: f"{m.group('scheme')}:{REDACTED}@", text)


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
    """Mask the password of a URL such as ``postgresql://user:pass@host/db``.

    A URL naming several nodes (``redis://:pw@h1:1,h2:2``, ``redis://u:pw@h1:1,u:pw@h2:2``) keeps
    every node, each password masked.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds = rest.rpartition("@")[0]
    if "," not in creds or "@" not in creds:  # one set of credentials (may hold "," or "/")
        return f"{scheme}://{_redact_node(rest)}"
    netloc, slash, tail = rest.partition("/")  # credentials per node
    nodes = ",".join(_redact_node(part) for part in netloc.split(","))
    return f"{scheme}://{nodes}{slash}{tail}"


def _redact_node(part: str) -> str:
    """``user:pass@host...`` -> ``user:***@host...`` (unchanged without a password)."""
    if "@" not in part:
        return part
    creds, _, host = part.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{user}:***@{host}" if ":" in creds else part


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output, traceback included, went through :func:`redact`.

    The command line's stderr handler uses it, so a record of any logger (Feast's, urllib3's,
    SQLAlchemy's) prints no registered secret and no secret-looking field.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
