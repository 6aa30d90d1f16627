"""Reading Xiva's HTTP answers: JSON decoding, and mapping a failed response to its ``XivaError``.

Pure functions of a ``requests.Response``: the client's choke point decides *whether* to retry;
this module decides *what* an answer means and which error (with which advice) describes it.
"""

from __future__ import annotations

from typing import Any

import requests

from xiva_source.redaction import redact
from xiva_source.xiva_api.errors import (
    XivaAuthenticationError,
    XivaBadResponseError,
    XivaConnectionError,
    XivaError,
    XivaNotFoundError,
    XivaRateLimitError,
    XivaServerError,
)
from xiva_source.xiva_api.paging import RawPage
from xiva_source.xiva_api.retry import parse_retry_after

__all__ = [
    "NETWORK_ERRORS",
    "connection_error",
    "customer_page",
    "deadline_error",
    "decode_json",
    "error_for",
    "int_header",
    "is_html",
    "json_object",
    "xiva_detail",
]

_BODY_LIMIT = 4000  # characters of a body handed to an error (which keeps a short excerpt)

NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
"""What ``requests`` raises when there is no usable response (retried by the client)."""


def connection_error(
    error: BaseException, endpoint: str, url: str, timeout: float
) -> XivaConnectionError:
    """The error describing a request without a usable response (its cause is ``error``).

    Args:
        error: One of :data:`NETWORK_ERRORS`.
        endpoint: The usage-counter name of the call.
        url: The URL requested.
        timeout: The client's response timeout, in seconds (named in the advice).
    """
    kind = "timed out" if isinstance(error, requests.Timeout) else "connection failed"
    result = XivaConnectionError(
        f"Xiva {endpoint} {kind} ({type(error).__name__}); check XIVA_API_BASE_URL and the "
        f"network, or raise XIVA_TIMEOUT (now {timeout:g} s) for slow responses.",
        url=url,
    )
    result.__cause__ = error
    return result


def deadline_error(endpoint: str, url: str, seconds: float) -> XivaConnectionError:
    """The error of a request cut by ``XIVA_REQUEST_DEADLINE_SECONDS`` (a whole-request limit)."""
    return XivaConnectionError(
        f"Xiva {endpoint} did not complete within XIVA_REQUEST_DEADLINE_SECONDS={seconds:g} s (the "
        "response was too slow or trickled in); check Xiva's health, or raise the deadline for "
        "very large answers.",
        url=url,
    )


def error_for(resp: requests.Response, endpoint: str, username: str | None) -> XivaError:
    """The error describing a non-2xx answer, with what to do about it.

    Args:
        resp: The failed response.
        endpoint: The usage-counter name of the call (``auth_create``, ``customer_detail``, ...).
        username: The client's Xiva user, named in authentication errors.

    Returns:
        An :class:`XivaError` subclass chosen by status and endpoint (not raised).
    """
    status = resp.status_code
    text = resp.text[:_BODY_LIMIT]
    detail = xiva_detail(resp)
    said = f": {detail}" if detail else ""
    where: dict[str, Any] = {"status": status, "body": text, "url": resp.url}
    if endpoint == "auth_create" and status in (400, 401, 403):
        return XivaAuthenticationError(
            # The fix (the class's default) names the settings: said once (issue 10).
            f"Xiva rejected the credentials of user {username!r}{said} (a user name that is an "
            "e-mail address logs in as email).",
            **where,
        )
    if endpoint == "auth_refresh" and status in (400, 401, 403):
        return XivaAuthenticationError(
            f"Xiva rejected the refresh token{said}; the client logs in again.", **where
        )
    if status in (401, 403):
        return XivaAuthenticationError(
            f"Xiva refused {endpoint} for user {username!r} even with a fresh token"
            f"{said}. Check the user's permissions in Xiva.",
            **where,
        )
    if status == 404 and endpoint.startswith("auth_"):
        return XivaNotFoundError(
            f"Xiva's {endpoint} endpoint does not exist at this URL; XIVA_API_BASE_URL must be "
            "the API root, e.g. https://www.xiva.ca/api.",
            **where,
        )
    if status == 404:
        return XivaNotFoundError(
            f"Xiva has no such object for {endpoint}{said}. Check the customer id "
            "(take ids from iter_customers) and XIVA_API_BASE_URL.",
            **where,
        )
    if status == 429:
        return XivaRateLimitError(
            f"Xiva throttled {endpoint} (429 Too Many Requests){said}. Lower "
            "XIVA_REQUESTS_PER_SECOND.",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            **where,
        )
    if status >= 500:
        page = " (an HTML error page)" if is_html(resp) else ""
        return XivaServerError(
            f"Xiva failed on {endpoint} with HTTP {status}{page}{said}. It is a server-side "
            "problem: retry later and check Xiva's status.",
            **where,
        )
    return XivaError(
        f"Xiva rejected {endpoint} with HTTP {status}{said}. The request does not match this "
        "Xiva deployment's API; report it with the URL below.",
        **where,
    )


def decode_json(resp: requests.Response, what: str) -> Any:
    """The JSON body of a successful answer.

    Args:
        resp: The response.
        what: What was expected, for the message (e.g. ``"a customer list"``).

    Raises:
        XivaBadResponseError: The body is not JSON (e.g. an HTML page from a proxy).
    """
    try:
        return resp.json()
    except ValueError as e:
        kind = "an HTML page" if is_html(resp) else "a body that is not JSON"
        raise XivaBadResponseError(
            f"Xiva answered {kind} where {what} was expected; check that XIVA_API_BASE_URL "
            "points at the Xiva API (e.g. https://host/api), not a web page or proxy.",
            status=resp.status_code,
            body=resp.text[:_BODY_LIMIT],
            url=resp.url,
        ) from e


def json_object(resp: requests.Response, what: str) -> dict[str, Any]:
    """The JSON object of a successful answer.

    Raises:
        XivaBadResponseError: The body is not JSON, or not a JSON object.
    """
    data = decode_json(resp, what)
    if not isinstance(data, dict):
        raise XivaBadResponseError(
            f"Xiva answered a JSON {type(data).__name__} where {what} (an object) was "
            "expected; check XIVA_API_BASE_URL.",
            status=resp.status_code,
            body=resp.text[:_BODY_LIMIT],
            url=resp.url,
        )
    return data


def customer_page(resp: requests.Response) -> RawPage:
    """One answer of the customer list, for :class:`~xiva_source.xiva_api.paging.CustomerCursor`.

    Raises:
        XivaBadResponseError: The body is not JSON.
    """
    return RawPage(
        data=decode_json(resp, "a customer list"),
        total_count=int_header(resp, "X-Total-Count"),
        status=resp.status_code,
        url=resp.url,
        text=resp.text[:_BODY_LIMIT],
    )


def int_header(resp: requests.Response, name: str) -> int | None:
    """An integer header's value; ``None`` when missing or not an integer."""
    value = resp.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def is_html(resp: requests.Response) -> bool:
    """True when the answer is an HTML page (a proxy's or a web server's, not the API's)."""
    ctype = resp.headers.get("Content-Type", "")
    return "html" in ctype or resp.text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def xiva_detail(resp: requests.Response) -> str | None:
    """Xiva's own one-line explanation (DRF ``detail`` or TMF ``message``/``reason``), if any."""
    try:
        data = resp.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("detail", "message", "reason"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return redact(value)[:150]
    return None
