"""The request and response values passed between the HTTP server and the simulated API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["Request", "Response", "html_error", "json_response", "tmf_error"]


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    host: str
    """``host:port`` the client addressed (for absolute ``next`` URLs)."""
    arrived: float = 0.0
    """``time.monotonic()`` when the request line was read."""

    def param(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (an empty body is ``{}``).

        Raises:
            ValueError: the body is not JSON.
        """
        return json.loads(self.body) if self.body.strip() else {}


@dataclass
class Response:
    """One HTTP response; ``drop`` closes the connection without sending anything."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (compact encoding)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, body, "application/json", dict(headers or {}))


def tmf_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A TMF Error body: ``{"code", "reason", "message", "status"}``."""
    reason = HTTPStatus(status).phrase
    payload = {"code": str(status), "reason": reason, "message": message, "status": str(status)}
    return json_response(status, payload, headers)


def html_error(status: int) -> Response:
    """The HTML page a gateway (nginx) sends instead of JSON."""
    phrase = f"{status} {HTTPStatus(status).phrase}"
    page = (
        f"<html>\r\n<head><title>{phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Response(status, page.encode(), "text/html; charset=utf-8")
