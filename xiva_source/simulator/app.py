"""The simulated Xiva API: routing, authentication, throttling, faults and the endpoints.

Transport-free: :meth:`SimulatorApp.handle` maps a :class:`~.wire.Request` to a
:class:`~.wire.Response`; :mod:`.server` does the HTTP.
"""

from __future__ import annotations

import base64
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .config import ListShape, SimulatorConfig
from .data import CustomerStore, parse_timestamp, reference_now
from .errors import TokenRejectedError, UnknownCustomerError
from .faults import FaultInjector, throttled_response
from .ratelimit import UserRateLimiter
from .recorder import CONTROL_ENDPOINT, RequestRecorder
from .tokens import TokenIssuer
from .wire import Request, Response, json_response, tmf_error

__all__ = ["CONTROL_PREFIX", "ENDPOINTS", "SimulatorApp"]

CONTROL_PREFIX = "/_sim/"

_ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("auth_create", "POST", re.compile(r"^/auth/jwt/create/?$")),
    ("auth_refresh", "POST", re.compile(r"^/auth/jwt/refresh/?$")),
    ("customer_list", "GET", re.compile(r"^/customerManagement/v4/customer/?$")),
    ("customer_detail", "GET", re.compile(r"^/customerManagement/v4/customer/(?P<id>[^/]+)/?$")),
    (
        "customer_360",
        "GET",
        re.compile(r"^/customerManagement/v4/customers/(?P<id>[^/]+)/360/complete/?$"),
    ),
    (
        "customer_360_part",
        "GET",
        re.compile(
            r"^/customerManagement/v4/customers/(?P<id>[^/]+)/360/"
            r"(?P<part>financial|usage|services)/?$"
        ),
    ),
)
ENDPOINTS: tuple[str, ...] = tuple(name for name, _, _ in _ROUTES)
"""Endpoint names, as they appear in counters and in ``FaultConfig.paths``."""

_NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
_TOKEN_NOT_VALID = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
_REFRESH_NOT_VALID = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
_BAD_LOGIN = {"detail": "No active account found with the given credentials"}
_AUTH_SCHEMES = frozenset({"bearer", "jwt"})
_ORDERINGS = frozenset({"lastUpdate,id", "lastUpdate"})
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="api"'}


class SimulatorApp:
    """All mutable state of one simulator and the request handling over it.

    Args:
        config: The initial configuration (what :meth:`reset` restores).
        control: Handler of ``/_sim/`` requests (set by the simulator facade).
    """

    def __init__(
        self, config: SimulatorConfig, control: Callable[[Request], Response] | None = None
    ) -> None:
        self.config = config
        self.control = control
        reference = config.reference_time or reference_now()
        self.store = CustomerStore(config.customers, config.seed, reference)
        secret = (
            config.jwt_secret.get_secret_value().encode()
            if config.jwt_secret is not None
            else secrets.token_bytes(32)
        )
        self.clock_skew = config.clock_skew_seconds
        self.tokens = TokenIssuer(
            secret,
            config.access_token_lifetime,
            config.refresh_token_lifetime,
            rotate=config.rotate_refresh_tokens,
            clock=self.time,
        )
        self.limiter = UserRateLimiter(config.rate_limit_per_second, config.rate_limit_burst)
        self.faults = FaultInjector()
        self.recorder = RequestRecorder(config.request_log_size)
        self._users_lock = threading.Lock()
        self._users: dict[str, str] = {}
        self.list_shape: ListShape = config.list_shape
        self.reset()

    def reset(self) -> None:
        """Back to the configured initial state (the HTTP server is not touched)."""
        config = self.config
        self.store.reset()
        self.faults.configure(None)
        self.limiter.configure(config.rate_limit_per_second, config.rate_limit_burst)
        self.tokens.access_lifetime = config.access_token_lifetime
        self.tokens.refresh_lifetime = config.refresh_token_lifetime
        self.tokens.forget_revocations()
        self.list_shape = config.list_shape
        self.clock_skew = config.clock_skew_seconds
        with self._users_lock:
            self._users = config.passwords()
        self.recorder.reset()

    def time(self) -> float:
        """The simulated Xiva's wall clock (UNIX time): this host's plus :attr:`clock_skew`."""
        return time.time() + self.clock_skew

    def now(self) -> datetime:
        """The simulated Xiva's current time (UTC, aware)."""
        return datetime.fromtimestamp(self.time(), UTC)

    def add_user(self, name: str, password: str) -> None:
        """Let ``name`` log in with ``password`` (replaces an existing password)."""
        if not name or not password:
            raise ValueError("A simulator user needs a non-empty name and password")
        with self._users_lock:
            self._users[name] = password

    def user_names(self) -> list[str]:
        """The accounts that may log in."""
        with self._users_lock:
            return sorted(self._users)

    def _password_ok(self, name: str, password: str) -> bool:
        with self._users_lock:
            expected = self._users.get(name)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    def _user_exists(self, name: str) -> bool:
        with self._users_lock:
            return name in self._users

    # -- dispatch --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (and count it)."""
        if request.path.startswith(CONTROL_PREFIX) or request.path == CONTROL_PREFIX.rstrip("/"):
            response = (
                self.control(request)
                if self.control is not None
                else tmf_error(404, "No control endpoints on this simulator.")
            )
            self.recorder.record(request.arrived, CONTROL_ENDPOINT, response.status, None)
            return response
        endpoint, user, response = self._handle_api(request)
        status: int | str = "drop" if response.drop else response.status
        self.recorder.record(request.arrived, endpoint, status, user)
        return response

    def _handle_api(self, request: Request) -> tuple[str, str | None, Response]:
        base = self.config.base_path
        if not (request.path == base or request.path.startswith(base + "/")):
            return (
                "unknown",
                None,
                tmf_error(404, f"No API at {request.path}; it is under {base}/."),
            )
        path = request.path[len(base) :]
        routed = _route(path)
        if routed is None:
            return "unknown", None, tmf_error(404, f"Unknown resource {request.path}.")
        endpoint, method, match = routed
        user, auth_error = (
            (None, None) if endpoint.startswith("auth_") else self._authenticate(request)
        )
        fault = self.faults.decide(endpoint, path)
        swapped = fault is not None and fault.swaps_customer
        echo_login = fault is not None and fault.echoes_login
        if fault is not None and not swapped:
            fault_response = fault.response(self.time())
            if fault_response is not None:
                return endpoint, user, fault_response
            if fault.kind == "slow":
                time.sleep(fault.config.slow_seconds)
        if request.method != method:
            detail = {"detail": f'Method "{request.method}" not allowed.'}
            return endpoint, user, json_response(405, detail, {"Allow": f"{method}, OPTIONS"})
        if endpoint == "auth_create":
            return self._auth_create(request, echo=echo_login)
        if endpoint == "auth_refresh":
            return self._auth_refresh(request)
        if auth_error is not None:
            return endpoint, None, auth_error
        assert user is not None
        wait = self.limiter.acquire(user)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return endpoint, user, throttled_response(seconds, {"Retry-After": str(seconds)})
        try:
            if endpoint == "customer_list":
                return endpoint, user, self._customer_list(request, path)
            customer_id = match["id"]
            if swapped:  # answered with the next customer's record, as a mixed-up cache would
                customer_id = self.store.neighbour(customer_id)
            if endpoint == "customer_detail":
                return endpoint, user, json_response(200, self.store.customer(customer_id))
            view = self.store.view_360(customer_id)
            if endpoint == "customer_360":
                return endpoint, user, json_response(200, view)
            return endpoint, user, json_response(200, view[match["part"]])
        except UnknownCustomerError as e:
            return endpoint, user, tmf_error(404, f"Customer {e.customer_id} not found.")

    # -- authentication --------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[str | None, Response | None]:
        header = request.headers.get("authorization", "")
        parts = header.split()
        if not parts or parts[0].lower() not in _AUTH_SCHEMES:
            return None, json_response(401, _NOT_PROVIDED, _WWW_AUTHENTICATE)
        if len(parts) != 2:
            return None, json_response(401, _TOKEN_NOT_VALID, _WWW_AUTHENTICATE)
        try:
            payload = self.tokens.decode(parts[1], "access")
        except TokenRejectedError:
            return None, json_response(401, _TOKEN_NOT_VALID, _WWW_AUTHENTICATE)
        user = str(payload.get("sub"))
        if not self._user_exists(user):
            return None, json_response(401, _TOKEN_NOT_VALID, _WWW_AUTHENTICATE)
        return user, None

    def _json_body(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        try:
            body = request.json()
        except ValueError as e:
            return None, json_response(400, {"detail": f"JSON parse error - {e}"})
        if not isinstance(body, dict):
            detail = f"Invalid data. Expected a dictionary, but got {type(body).__name__}."
            return None, json_response(400, {"non_field_errors": [detail]})
        return body, None

    def _auth_create(
        self, request: Request, *, echo: bool = False
    ) -> tuple[str, str | None, Response]:
        endpoint = "auth_create"
        body, error = self._json_body(request)
        if error is not None or body is None:
            return endpoint, None, error or json_response(400, {})
        if echo:  # a login_echo fault: the password quoted back, base64-encoded
            return endpoint, None, json_response(400, _login_echo(body))
        login_field = "email" if "email" in body and "username" not in body else "username"
        errors: dict[str, list[str]] = {}
        for name in (login_field, "password"):
            value = body.get(name)
            if value is None:
                errors[name] = ["This field is required."]
            elif not isinstance(value, str):
                errors[name] = ["Not a valid string."]
            elif not value.strip():
                errors[name] = ["This field may not be blank."]
        if errors:
            return endpoint, None, json_response(400, errors)
        login, password = str(body[login_field]), str(body["password"])
        if not self._password_ok(login, password):
            return endpoint, None, json_response(401, _BAD_LOGIN, _WWW_AUTHENTICATE)
        return endpoint, login, json_response(200, self.tokens.issue_pair(login))

    def _auth_refresh(self, request: Request) -> tuple[str, str | None, Response]:
        endpoint = "auth_refresh"
        body, error = self._json_body(request)
        if error is not None or body is None:
            return endpoint, None, error or json_response(400, {})
        token = body.get("refresh")
        if not isinstance(token, str) or not token.strip():
            problem = "This field is required." if token is None else "This field may not be blank."
            return endpoint, None, json_response(400, {"refresh": [problem]})
        try:
            user = str(self.tokens.decode(token, "refresh").get("sub"))
            if not self._user_exists(user):
                raise TokenRejectedError("unknown user")
            tokens = self.tokens.refresh(token)
        except TokenRejectedError:
            return endpoint, None, json_response(401, _REFRESH_NOT_VALID, _WWW_AUTHENTICATE)
        return endpoint, user, json_response(200, tokens)

    # -- customers -------------------------------------------------------------------------------

    def _customer_list(self, request: Request, path: str) -> Response:
        max_size = self.config.max_page_size
        try:
            limit = _int_param(request, "limit", self.config.default_page_size, minimum=1)
            offset = _int_param(request, "offset", 0, minimum=0)
        except ValueError as e:
            return tmf_error(400, str(e))
        limit = min(limit, max_size)
        since_text = request.param("lastUpdate.gte")
        since = None
        if since_text is not None:
            try:
                since = parse_timestamp(since_text)
            except ValueError:
                return tmf_error(
                    400,
                    f"Invalid lastUpdate.gte {since_text!r}: give an ISO 8601 UTC timestamp "
                    "such as 2026-10-14T08:00:00Z.",
                )
        ordering = request.param("ordering")
        if ordering is not None and ordering.replace(" ", "") not in _ORDERINGS:
            return tmf_error(400, f"Unsupported ordering {ordering!r}: use ordering=lastUpdate,id.")
        total, customers = self.store.page(since=since, offset=offset, limit=limit)
        if self.list_shape == "array":
            headers = {"X-Total-Count": str(total), "X-Result-Count": str(len(customers))}
            return json_response(200, customers, headers)
        url = f"http://{request.host}{self.config.base_path}{path}"
        next_url = None
        if offset + limit < total:
            next_url = _page_url(url, request, limit, offset + limit)
        previous_url = None
        if offset > 0:
            previous_url = _page_url(url, request, limit, max(0, offset - limit))
        payload = {"count": total, "next": next_url, "previous": previous_url, "results": customers}
        return json_response(200, payload)


def _login_echo(body: dict[str, Any]) -> dict[str, Any]:
    """The 400 body of a ``login_echo`` fault: the password base64-encoded, alone (standard and
    URL-safe) and as a Basic header's ``username:password``."""
    user = str(body.get("username", body.get("email", "")))
    password = str(body.get("password", "")).encode()
    basic = base64.b64encode(user.encode() + b":" + password).decode("ascii")
    return {
        "detail": "Invalid credentials encoding.",
        "received": base64.b64encode(password).decode("ascii"),
        "received_urlsafe": base64.urlsafe_b64encode(password).decode("ascii").rstrip("="),
        "authorization": f"Basic {basic}",
    }


def _route(path: str) -> tuple[str, str, re.Match[str]] | None:
    for endpoint, method, pattern in _ROUTES:
        match = pattern.match(path)
        if match is not None:
            return endpoint, method, match
    return None


def _int_param(request: Request, name: str, default: int, *, minimum: int) -> int:
    text = request.param(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError as e:
        raise ValueError(f"Invalid {name} {text!r}: give an integer >= {minimum}.") from e
    if value < minimum:
        raise ValueError(f"Invalid {name} {value}: give an integer >= {minimum}.")
    return value


def _page_url(url: str, request: Request, limit: int, offset: int) -> str:
    params = {name: values[0] for name, values in request.query.items() if values}
    params["limit"] = str(limit)
    params["offset"] = str(offset)
    if offset == 0:
        del params["offset"]  # as DRF's LimitOffsetPagination does
    return f"{url}?{urlencode(params)}"
