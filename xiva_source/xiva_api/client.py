"""``XivaClient``: the production client of the Xiva BSS REST API.

Every HTTP request goes through one choke point, :meth:`XivaClient._request`, which

1. takes an access token (logging in, or refreshing shortly before the JWT's ``exp``),
2. takes a slot from the client-side rate limiter (shared through Redis by every worker of a
   deployment when ``REDIS_URL`` is set),
3. sends the request on a pooled ``requests.Session`` and records it once
   (:class:`~xiva_source.xiva_api.counts.RequestRecorder`: the client's own counts and the usage
   counters),
4. retries 429s and 5xx patiently, honouring ``Retry-After`` (never sending before it passes) or
   backing off with jitter, within a total time budget; a call that gets no response at all
   (refused, DNS failure, timed out, dropped, past ``XIVA_REQUEST_DEADLINE_SECONDS``) only
   ``XIVA_CONNECT_ATTEMPTS`` times over about a second, and after ``XIVA_BREAKER_FAILURES`` such
   calls in a row the circuit breaker (:mod:`~xiva_source.xiva_api.circuit`) fails every call at
   once until a probe gets an answer,
5. renews the token once on a ``401`` (refresh, or log in again when the refresh token is dead),
6. maps any other failure to the :mod:`xiva_source.xiva_api.errors` tree
   (:mod:`~xiva_source.xiva_api.responses`).

The customer list is paged by :class:`~xiva_source.xiva_api.paging.CustomerCursor`, many 360 views
are fetched by :func:`~xiva_source.xiva_api.fanout.fetch_concurrently`.

Example:
    >>> with XivaClient() as client:                      # reads XIVA_* from the env / .env
    ...     for customer in client.iter_customers(updated_since=last_run):
    ...         view = client.get_customer_360(customer["id"])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from pydantic import SecretStr

from xiva_source.redaction import redact_url
from xiva_source.redis_client import redis_for_settings
from xiva_source.settings import Settings, load_settings
from xiva_source.timeutil import Clock, to_iso, utc_now
from xiva_source.xiva_api.auth import Credentials, TokenManager
from xiva_source.xiva_api.circuit import CircuitBreaker, failure_reason
from xiva_source.xiva_api.counts import RequestRecorder
from xiva_source.xiva_api.deadline import RequestDeadline
from xiva_source.xiva_api.errors import (
    XivaBadResponseError,
    XivaConnectionError,
    XivaError,
    XivaNotConfiguredError,
)
from xiva_source.xiva_api.fanout import fetch_concurrently
from xiva_source.xiva_api.logs import logger
from xiva_source.xiva_api.paging import PAGE_SIZE, CustomerCursor, RawPage
from xiva_source.xiva_api.ratelimit import RateLimiter, default_rate_key, make_rate_limiter
from xiva_source.xiva_api.responses import (
    NETWORK_ERRORS,
    connection_error,
    customer_page,
    deadline_error,
    error_for,
    json_object,
)
from xiva_source.xiva_api.retry import RetryPolicy, parse_retry_after
from xiva_source.xiva_api.server_clock import ServerClock
from xiva_source.xiva_api.session import PooledSession
from xiva_source.xiva_api.usage import (
    MemoryUsageStore,
    RedisUsageStore,
    UsageReport,
    UsageStore,
    usage_prefix_for,
)

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = ["PAGE_SIZE", "XivaClient"]

CUSTOMERS_PATH = "customerManagement/v4/customer/"
CUSTOMER_360_PATH = "customerManagement/v4/customers/{id}/360/{part}/"
PARTS_360 = ("financial", "usage", "services")
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class XivaClient:
    """A thread-safe client of the Xiva API: auth, paging, retries, shared rate, usage counters.

    Settings come from :func:`~xiva_source.settings.load_settings` (environment, then ``.env``);
    keyword arguments override them. Credentials are checked lazily: a client without them can
    still report usage, and the first API call fails before sending anything.

    Args:
        base_url: Xiva API base URL (``XIVA_API_BASE_URL``), e.g. ``https://www.xiva.ca/api``.
        username: User name or e-mail (``XIVA_API_USERNAME``); one with ``@`` logs in as
            ``email``.
        password: Password (``XIVA_API_PASSWORD``).
        settings: Settings to start from instead of :func:`load_settings`.
        requests_per_second: Client-side request rate, shared by all workers using the same
            ``rate_key`` (``XIVA_REQUESTS_PER_SECOND``); ``<= 0`` disables it.
        redis_url: Redis for the shared rate and usage counters (``REDIS_URL``); without it both
            are per process.
        rate_key: The Redis key of the shared rate (default
            ``<XIVA_REDIS_PREFIX>:rate:<sha1(base URL, user)>``).
        max_retry_after: Longest ``Retry-After`` honoured, in seconds (``XIVA_MAX_RETRY_AFTER``).
        retry_budget: Total seconds one call may spend retrying (``XIVA_RETRY_BUDGET``).
        timeout: Seconds to wait for one response (``XIVA_TIMEOUT``).
        max_workers: Default concurrency of :meth:`iter_customers_360` (``XIVA_MAX_WORKERS``);
            also sizes the connection pool.
        usage_prefix: Redis key prefix of the usage counters (default
            ``<XIVA_REDIS_PREFIX>:usage``).
        max_attempts: Most HTTP attempts per call, retries included.
        clock: The current time of the usage counters' hour buckets (tests move it).
        breaker: The circuit breaker to use (tests inject one with their clock); default one
            built from ``XIVA_BREAKER_FAILURES`` and ``XIVA_BREAKER_COOLDOWN_SECONDS``.

    Attributes:
        counts: This client's own requests, 429s, retries and errors (:class:`RequestCounts`):
            what a run reports, unlike the usage counters every worker shares.
        server_clock: Xiva's clock as measured from the ``Date`` header of every answer
            (:class:`~xiva_source.xiva_api.server_clock.ServerClock`; :meth:`clock_skew`).

    Raises:
        ConfigurationError: A setting or keyword does not parse, or ``REDIS_URL`` is not a Redis
            URL (nothing is connected yet: a Redis that is down only degrades rate and usage).
    """

    def __init__(
        self,
        base_url: str | None = None,
        username: str | None = None,
        password: str | SecretStr | None = None,
        *,
        settings: Settings | None = None,
        requests_per_second: float | None = None,
        redis_url: str | None = None,
        rate_key: str | None = None,
        max_retry_after: float | None = None,
        retry_budget: float | None = None,
        timeout: float | None = None,
        max_workers: int | None = None,
        usage_prefix: str | None = None,
        max_attempts: int = 10,
        clock: Clock = utc_now,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        overrides: dict[str, Any] = {
            "xiva_api_base_url": base_url,
            "xiva_api_username": username,
            "xiva_api_password": password,
            "xiva_requests_per_second": requests_per_second,
            "redis_url": redis_url,
            "xiva_max_retry_after": max_retry_after,
            "xiva_retry_budget": retry_budget,
            "xiva_timeout": timeout,
            "xiva_max_workers": max_workers,
        }
        if settings is None:
            settings = load_settings(**overrides)
        else:
            settings = settings.with_overrides(**overrides)
        self.settings = settings
        self.base_url = settings.xiva_api_base_url
        self.username = settings.xiva_api_username
        self.timeout = settings.xiva_timeout
        self.max_workers = max(1, settings.xiva_max_workers)
        self.retry_policy = RetryPolicy(
            max_retry_after=settings.xiva_max_retry_after,
            budget=settings.xiva_retry_budget,
            max_attempts=max(1, max_attempts),
            connect_attempts=settings.xiva_connect_attempts,
        )
        self.request_deadline = settings.xiva_request_deadline_seconds
        self.breaker = breaker or CircuitBreaker(
            settings.xiva_breaker_failures,
            settings.xiva_breaker_cooldown_seconds,
            name=redact_url(self.base_url),
        )

        self._session = PooledSession(self.max_workers)

        # Fail fast: a slow or dead Redis must not stall API calls (rate and usage degrade).
        self._redis: RedisClient | None = _shared_redis(settings)
        self.rate_key = rate_key or default_rate_key(
            self.base_url, self.username, settings.xiva_redis_prefix
        )
        self._limiter: RateLimiter = make_rate_limiter(
            settings.xiva_requests_per_second, redis_client=self._redis, key=self.rate_key
        )
        usage: UsageStore = (
            RedisUsageStore(self._redis, usage_prefix or usage_prefix_for(settings), clock=clock)
            if self._redis is not None
            else MemoryUsageStore(clock=clock)
        )
        # One recording path: each event counted once, in the client's own counts and in usage.
        self._recorder = RequestRecorder(usage)
        self.counts = self._recorder.counts
        self.server_clock = ServerClock()

        self._tokens: TokenManager | None = None
        if settings.has_credentials and self.username and settings.xiva_api_password:
            self._tokens = TokenManager(
                Credentials(self.username, settings.xiva_api_password),
                login=self._login_call,
                refresh=self._refresh_call,
            )
        self._closed = False
        self._close_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"XivaClient(base_url={redact_url(self.base_url)!r}, username={self.username!r})"

    def __enter__(self) -> XivaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool and the Redis connection; safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._session.close()
        if self._redis is not None:
            self._redis.close()

    # -- public API --------------------------------------------------------------------------

    def iter_customers(self, updated_since: datetime | None = None) -> CustomerCursor:
        """Every customer (changed at or after ``updated_since``), each exactly once.

        Pages by ``(lastUpdate, position among customers sharing that lastUpdate)``, re-reading
        the last customer seen as an anchor and stepping back when it moved, so nothing is
        skipped while customers change (see :mod:`xiva_source.xiva_api.paging`). Nothing is
        sent until the first customer is asked for.

        Args:
            updated_since: Only customers whose ``lastUpdate`` is at or after it; a naive
                datetime is taken as UTC. ``None`` lists everyone.

        Returns:
            An iterator of customer objects (dicts) in ``(lastUpdate, id)`` order.

        Raises:
            XivaBadResponseError: (while iterating) a page is not a list of customers, or Xiva
                repeats a page, makes no progress or ignores the ordering (it does not honour
                ``offset``, ``ordering`` or ``lastUpdate.gte``); customers already yielded stay
                valid.
            XivaError: (while iterating) any other failure of a page request (after retries).
        """
        return CustomerCursor(self._customer_page, updated_since=updated_since, page_size=PAGE_SIZE)

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """One customer.

        Raises:
            XivaNotFoundError: No customer has this id.
            XivaError: Any other failure (after retries).
        """
        path = f"{CUSTOMERS_PATH}{quote(str(customer_id), safe='')}/"
        resp = self._request("GET", path, endpoint="customer_detail")
        return json_object(resp, "a customer")

    def get_customer_360(self, customer_id: str) -> dict[str, Any]:
        """The complete 360 view of one customer: ``customer``, ``financial``, ``usage``, ...

        Raises:
            XivaNotFoundError: No customer has this id.
            XivaBadResponseError: The answer is not a 360 view (no ``customer`` object).
            XivaError: Any other failure (after retries).
        """
        path = CUSTOMER_360_PATH.format(id=quote(str(customer_id), safe=""), part="complete")
        resp = self._request("GET", path, endpoint="customer_360")
        view = json_object(resp, "a 360 view")
        if not isinstance(view.get("customer"), dict):
            raise XivaBadResponseError(
                "Xiva's 360 view has no 'customer' object; check that XIVA_API_BASE_URL points at "
                "the Xiva API.",
                status=resp.status_code,
                body=resp.text,
                url=resp.url,
            )
        return view

    def get_customer_360_part(self, customer_id: str, part: str) -> dict[str, Any]:
        """One part (``financial``, ``usage`` or ``services``) of a customer's 360 view."""
        if part not in PARTS_360:
            raise ValueError(f"unknown 360 part {part!r}; use one of {', '.join(PARTS_360)}")
        path = CUSTOMER_360_PATH.format(id=quote(str(customer_id), safe=""), part=part)
        resp = self._request("GET", path, endpoint="customer_360_part")
        return json_object(resp, f"the 360 {part} part")

    def iter_customers_360(
        self, ids: Iterable[str], max_workers: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any] | XivaError]]:
        """Fetch many 360 views concurrently, within the shared request rate.

        Failures do not stop the batch: a customer whose fetch failed is yielded with its
        :class:`XivaError`. ``ids`` is consumed lazily (a bounded window is in flight).

        Args:
            ids: Customer ids.
            max_workers: Threads (default ``XIVA_MAX_WORKERS``).

        Returns:
            An iterator of ``(customer_id, view or XivaError)`` in completion order.
        """
        workers = max(1, max_workers or self.max_workers)
        self._session.ensure_pool(workers)
        return fetch_concurrently(
            self.get_customer_360, ids, workers, thread_name_prefix="xiva-360"
        )

    def clock_skew(self) -> timedelta | None:
        """How far Xiva's clock runs ahead of this host's (negative: behind).

        Measured from the ``Date`` header of Xiva's latest answer; when nothing was asked yet,
        the client logs in first (that answer carries the header). The pull moves its window
        onto Xiva's clock with it (Xiva stamps ``lastUpdate`` on its own clock).

        Returns:
            The skew, or ``None`` when Xiva's answers carry no ``Date`` header.

        Raises:
            XivaError: Logging in failed.
        """
        if self.server_clock.skew is None and self._tokens is not None:
            self._access_token()
        return self.server_clock.skew

    def usage(self, hours: int = 24) -> UsageReport:
        """The API usage counters of the last ``hours`` UTC hours.

        With ``REDIS_URL`` these are the deployment's (every worker's); otherwise this process's.
        """
        return self._recorder.usage.report(hours)

    # -- the choke point -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        authenticated: bool = True,
    ) -> requests.Response:
        """Send one API call with auth, rate, retries and usage counting.

        Args:
            method: HTTP method.
            path: Path under the base URL, e.g. ``customerManagement/v4/customer/``.
            endpoint: The usage-counter name of the call (``customer_list``, ...).
            params: Query parameters.
            json: JSON body.
            authenticated: Send the bearer token (``False`` only for the auth calls).

        Returns:
            The successful (2xx) response.

        Raises:
            XivaError: A subclass saying what failed and what to do.
        """
        try:
            return self._send(method, path, endpoint, params, json, authenticated)
        except XivaError:
            self._recorder.failed(endpoint)
            raise

    def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        authenticated: bool,
    ) -> requests.Response:
        if self._closed:
            raise XivaError("This XivaClient is closed; create a new one.")
        url = f"{self.base_url}/{path.lstrip('/')}"
        state = self.retry_policy.start()
        renewed = False
        sent = 0
        while True:
            headers: dict[str, str] = {}
            token: str | None = None
            if authenticated:
                token = self._access_token()
                headers["Authorization"] = f"Bearer {token}"
            self.breaker.before_call(endpoint)  # Xiva not answering: fail now, send nothing
            try:
                waited = self._limiter.acquire()
                if waited > 1.0:
                    logger.info("Xiva %s: waited %.1f s for the client-side rate", endpoint, waited)
                self._recorder.sent(endpoint, retry=sent > 0)
                sent += 1
                resp = self._attempt(method, url, params, body, headers, endpoint)
                self.server_clock.observe(resp.headers.get("Date"))
            except XivaConnectionError as failed:
                self.breaker.record_failure(failure_reason(failed))
                time.sleep(state.wait_before_retry(failed, None, endpoint))
                continue
            except BaseException:
                self.breaker.abandon()
                raise
            self.breaker.record_success()

            status = resp.status_code
            if 200 <= status < 300:
                return resp
            if status == 401 and authenticated and not renewed and token is not None:
                # Expired or revoked access token: renew once (refresh, or log in again).
                if self._tokens is not None:
                    self._tokens.invalidate(token)
                renewed = True
                continue
            error = error_for(resp, endpoint, self.username)
            if status not in RETRYABLE_STATUSES:
                raise error
            if status == 429:
                self._recorder.throttled(endpoint)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            delay = state.wait_before_retry(error, retry_after, endpoint)
            if retry_after is not None:
                # Throttling is per user: every thread and worker sharing the rate waits too.
                self._limiter.hold(delay)
            time.sleep(delay)

    def _attempt(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        endpoint: str,
    ) -> requests.Response:
        """One HTTP attempt within the whole-request deadline.

        Raises:
            XivaConnectionError: No usable response: refused, DNS failure, timed out, dropped, or
                the whole request (body included) overran ``XIVA_REQUEST_DEADLINE_SECONDS``.
        """
        deadline = RequestDeadline(self.request_deadline)
        try:
            with deadline:
                resp = self._session.request(
                    method, url, params=params, json=body, headers=headers, timeout=self.timeout
                )
        except NETWORK_ERRORS as e:
            if deadline.expired:
                raise deadline_error(endpoint, url, self.request_deadline) from e
            raise connection_error(e, endpoint, url, self.timeout) from e
        if deadline.expired:  # cut at the deadline, the body may look complete: not trusted
            raise deadline_error(endpoint, url, self.request_deadline)
        return resp

    # -- auth calls (through the choke point, unauthenticated) -----------------------------------

    def _access_token(self) -> str:
        if self._tokens is None:
            raise XivaNotConfiguredError()
        return self._tokens.access_token()

    def _login_call(self, body: dict[str, str]) -> dict[str, Any]:
        resp = self._request(
            "POST", "auth/jwt/create/", endpoint="auth_create", json=body, authenticated=False
        )
        return json_object(resp, "a token pair")

    def _refresh_call(self, refresh_token: str) -> dict[str, Any]:
        resp = self._request(
            "POST",
            "auth/jwt/refresh/",
            endpoint="auth_refresh",
            json={"refresh": refresh_token},
            authenticated=False,
        )
        return json_object(resp, "a refreshed token")

    # -- paging ----------------------------------------------------------------------------------

    def _customer_page(self, offset: int, limit: int, since: datetime | None) -> RawPage:
        """One request of the customer list, for :class:`CustomerCursor`."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, "ordering": "lastUpdate,id"}
        if since is not None:
            params["lastUpdate.gte"] = to_iso(since)
        resp = self._request("GET", CUSTOMERS_PATH, endpoint="customer_list", params=params)
        return customer_page(resp)


def _shared_redis(settings: Settings) -> RedisClient | None:
    """The fail-fast Redis client of the shared rate and usage counters; None without REDIS_URL.

    A cluster client asks its nodes for the slot map when built: if none answers, the client
    runs without Redis (rate and counters per process, one warning), as when Redis fails later.
    """
    if not settings.redis_url:
        return None
    from redis.exceptions import RedisError

    try:
        return redis_for_settings(settings, fail_fast=True)
    except RedisError as e:
        logger.warning(
            "Redis for the shared rate and usage counters is unavailable (%s); pacing and "
            "counting in this process only. Check REDIS_URL / REDIS_TYPE.",
            e,
        )
        return None
