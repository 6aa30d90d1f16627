"""``XivaClient``: the production client of the Xiva BSS REST API.

Every HTTP request goes through one choke point, :meth:`XivaClient._request`, which

1. takes an access token (logging in, or refreshing shortly before the JWT's ``exp``),
2. takes a slot from the client-side rate limiter (shared through Redis by every worker of a
   deployment when ``REDIS_URL`` is set),
3. sends the request on a pooled ``requests.Session`` and counts it in the usage counters,
4. retries 429s, 5xx, timeouts and dropped connections, honouring ``Retry-After`` (never sending
   before it passes) or backing off with jitter, within a total time budget,
5. renews the token once on a ``401`` (refresh, or log in again when the refresh token is dead),
6. maps any other failure to the :mod:`xiva_source.errors` hierarchy.

Example:
    >>> with XivaClient() as client:                      # reads XIVA_* from the env / .env
    ...     for customer in client.iter_customers(updated_since=last_run):
    ...         view = client.get_customer_360(customer["id"])
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from xiva_source.redaction import redact, redact_url
from xiva_source.settings import Settings, load_settings
from xiva_source.xiva_api.auth import Credentials, TokenManager
from xiva_source.xiva_api.errors import (
    XivaAuthenticationError,
    XivaBadResponseError,
    XivaConnectionError,
    XivaError,
    XivaNotConfiguredError,
    XivaNotFoundError,
    XivaRateLimitError,
    XivaServerError,
)
from xiva_source.xiva_api.ratelimit import RateLimiter, default_rate_key, make_rate_limiter
from xiva_source.xiva_api.retry import RetryPolicy, RetryState, parse_retry_after
from xiva_source.xiva_api.usage import (
    MemoryUsageStore,
    RedisUsageStore,
    UsageReport,
    UsageStore,
    usage_prefix_for,
)

if TYPE_CHECKING:
    import redis

__all__ = ["PAGE_SIZE", "XivaClient"]

logger = logging.getLogger("xiva_source.xiva_api.client")

PAGE_SIZE = 50
"""Customers per list page (Xiva's maximum)."""
CUSTOMERS_PATH = "customerManagement/v4/customer/"
CUSTOMER_360_PATH = "customerManagement/v4/customers/{id}/360/{part}/"
PARTS_360 = ("financial", "usage", "services")
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_USER_AGENT = "xiva-source/0.1 (+python-requests)"


class _RedactingFilter(logging.Filter):
    """Last line of defence: mask anything token- or password-like in this logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
    logger.addFilter(_RedactingFilter())


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
            given = {k: v for k, v in overrides.items() if v is not None}
            settings = Settings.model_validate({**settings.model_dump(), **given})
        self.settings = settings
        self.base_url = settings.xiva_api_base_url
        self.username = settings.xiva_api_username
        self.timeout = settings.xiva_timeout
        self.max_workers = max(1, settings.xiva_max_workers)
        self.retry_policy = RetryPolicy(
            max_retry_after=settings.xiva_max_retry_after,
            budget=settings.xiva_retry_budget,
            max_attempts=max(1, max_attempts),
        )

        self._session = requests.Session()
        self._pool_size = 0
        self._pool_lock = threading.Lock()
        self._ensure_pool(self.max_workers)
        self._session.headers.update({"Accept": "application/json", "User-Agent": _USER_AGENT})

        self._redis: redis.Redis | None = None
        if settings.redis_url:
            import redis as redis_lib
            from redis.backoff import NoBackoff
            from redis.retry import Retry as RedisRetry

            # Fail fast: a slow or dead Redis must not stall API calls (both users degrade).
            try:
                self._redis = redis_lib.Redis.from_url(
                    settings.redis_url,
                    socket_timeout=2.0,
                    socket_connect_timeout=2.0,
                    retry=RedisRetry(NoBackoff(), 1),
                )
            except ValueError as e:
                raise XivaError(
                    f"REDIS_URL {redact_url(settings.redis_url)!r} is not a Redis URL ({e}); use "
                    "e.g. redis://127.0.0.1:6379/0, or unset it to keep rate and usage per process."
                ) from e
        self.rate_key = rate_key or default_rate_key(
            self.base_url, self.username, settings.xiva_redis_prefix
        )
        self._limiter: RateLimiter = make_rate_limiter(
            settings.xiva_requests_per_second, redis_client=self._redis, key=self.rate_key
        )
        self._usage: UsageStore = (
            RedisUsageStore(self._redis, usage_prefix or usage_prefix_for(settings))
            if self._redis is not None
            else MemoryUsageStore()
        )

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

    def _ensure_pool(self, workers: int) -> None:
        """Size the keep-alive pool for ``workers`` threads (+2 for auth and list calls)."""
        with self._pool_lock:
            if workers + 2 <= self._pool_size:
                return
            self._pool_size = workers + 2
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self._pool_size, max_retries=0)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)

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

    def iter_customers(self, updated_since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every customer (changed at or after ``updated_since``), each exactly once.

        Pages by ``(lastUpdate, position among customers sharing that lastUpdate)``: each page is
        requested with ``lastUpdate.gte`` = the last ``lastUpdate`` seen and an offset that
        re-reads the last customer seen. When that anchor is not where it should be (customers
        changed between pages), it steps back until it is, so nothing is skipped however many
        customers share one ``lastUpdate``; customers read twice are yielded once.

        Args:
            updated_since: Only customers whose ``lastUpdate`` is at or after it; a naive
                datetime is taken as UTC. ``None`` lists everyone.

        Yields:
            Customer objects (dicts) in ``(lastUpdate, id)`` order.

        Raises:
            XivaBadResponseError: A page is not a list of customers, or Xiva repeats a page,
                makes no progress or ignores the ordering (it does not honour ``offset``,
                ``ordering`` or ``lastUpdate.gte``); customers already yielded stay valid.
            XivaError: Any other failure of a page request (after retries).
        """
        seen: set[str] = set()
        cursor: datetime | None = _as_utc(updated_since) if updated_since is not None else None
        at_cursor = 0  # customers at `cursor` before the end of the last page, in list order
        offset = 0
        previous_ids: list[str] | None = None
        step_backs = 0  # consecutive re-reads looking for the anchor
        stalled = 0  # requests since the last new customer
        while True:
            params: dict[str, Any] = {
                "limit": PAGE_SIZE,
                "offset": offset,
                "ordering": "lastUpdate,id",
            }
            if cursor is not None:
                params["lastUpdate.gte"] = _iso(cursor)
            resp = self._request("GET", CUSTOMERS_PATH, endpoint="customer_list", params=params)
            page, total, has_next = self._parse_customer_page(resp)
            ids = [c["id"] for c in page]
            if previous_ids is not None and ids and ids == previous_ids:
                raise self._paging_error(resp, "returned the same page twice")
            previous_ids = ids
            stalled += 1
            # However the set shifts, a sane server yields a new customer within a full pass of the
            # remaining list (plus a few anchor searches): beyond that, it is not paging sanely.
            if stalled > 20 + 2 * (total if total is not None else 10_000) // (PAGE_SIZE - 1):
                raise self._paging_error(resp, "made no progress")
            updated = [_parse_ts(c["lastUpdate"]) for c in page]
            if any(b < a for a, b in itertools.pairwise(updated)):
                raise self._paging_error(resp, "is not sorted by lastUpdate")

            if offset > 0 and not (page and updated[0] == cursor and ids[0] in seen):
                # The customer we re-read as an anchor moved (customers at `cursor` changed
                # since the last page): step back so none of them can be skipped.
                offset = max(0, offset - PAGE_SIZE * 2**step_backs)
                step_backs += 1
                logger.info("Xiva customer list shifted between pages; re-reading from %d", offset)
                continue

            step_backs = 0
            new = 0
            for customer, cid in zip(page, ids, strict=True):
                if cid not in seen:
                    seen.add(cid)
                    new += 1
                    stalled = 0
                    yield customer

            final = (
                not page
                or has_next is False
                or (total is not None and offset + len(page) >= total)
                or (total is None and has_next is None and len(page) < PAGE_SIZE)
            )
            if final:
                return
            before = (cursor, at_cursor)
            last = updated[-1]
            if cursor is not None and last < cursor:
                raise self._paging_error(resp, "returned customers older than lastUpdate.gte")
            if cursor is not None and last == cursor:
                at_cursor = offset + sum(1 for u in updated if u == cursor)
            else:
                cursor = last
                at_cursor = sum(1 for u in updated if u == last)
            if new == 0 and (cursor, at_cursor) == before:
                raise self._paging_error(resp, "made no progress")
            offset = at_cursor - 1  # re-read the last customer seen: the anchor of the next page

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """One customer.

        Raises:
            XivaNotFoundError: No customer has this id.
            XivaError: Any other failure (after retries).
        """
        path = f"{CUSTOMERS_PATH}{quote(str(customer_id), safe='')}/"
        resp = self._request("GET", path, endpoint="customer_detail")
        return self._json_object(resp, "a customer")

    def get_customer_360(self, customer_id: str) -> dict[str, Any]:
        """The complete 360 view of one customer: ``customer``, ``financial``, ``usage``, ...

        Raises:
            XivaNotFoundError: No customer has this id.
            XivaBadResponseError: The answer is not a 360 view (no ``customer`` object).
            XivaError: Any other failure (after retries).
        """
        path = CUSTOMER_360_PATH.format(id=quote(str(customer_id), safe=""), part="complete")
        resp = self._request("GET", path, endpoint="customer_360")
        view = self._json_object(resp, "a 360 view")
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
        return self._json_object(resp, f"the 360 {part} part")

    def iter_customers_360(
        self, ids: Iterable[str], max_workers: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any] | XivaError]]:
        """Fetch many 360 views concurrently, within the shared request rate.

        Failures do not stop the batch: a customer whose fetch failed is yielded with its
        :class:`XivaError`. ``ids`` is consumed lazily (a bounded window is in flight).

        Args:
            ids: Customer ids.
            max_workers: Threads (default ``XIVA_MAX_WORKERS``).

        Yields:
            ``(customer_id, view or XivaError)`` in completion order.
        """
        workers = max(1, max_workers or self.max_workers)
        self._ensure_pool(workers)
        source = iter(ids)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xiva-360")
        pending: dict[Future[dict[str, Any]], str] = {}

        def fill() -> None:
            while len(pending) < 2 * workers:
                cid = next(source, None)
                if cid is None:
                    return
                pending[pool.submit(self.get_customer_360, cid)] = cid

        try:
            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    cid = pending.pop(future)
                    try:
                        yield cid, future.result()
                    except XivaError as e:
                        yield cid, e
                fill()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def usage(self, hours: int = 24) -> UsageReport:
        """The API usage counters of the last ``hours`` UTC hours.

        With ``REDIS_URL`` these are the deployment's (every worker's); otherwise this process's.
        """
        return self._usage.report(hours)

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
            self._usage.record(endpoint, errors=1)
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
            waited = self._limiter.acquire()
            if waited > 1.0:
                logger.info("Xiva %s: waited %.1f s for the client-side rate", endpoint, waited)
            self._usage.record(endpoint, requests=1, retries=1 if sent else 0)
            sent += 1
            try:
                resp = self._session.request(
                    method, url, params=params, json=body, headers=headers, timeout=self.timeout
                )
            except _NETWORK_ERRORS as e:
                kind = "timed out" if isinstance(e, requests.Timeout) else "connection failed"
                error: XivaError = XivaConnectionError(
                    f"Xiva {endpoint} {kind} ({type(e).__name__}); check XIVA_API_BASE_URL and "
                    f"the network, or raise XIVA_TIMEOUT (now {self.timeout:g} s) for slow "
                    "responses.",
                    url=url,
                )
                error.__cause__ = e
                delay = self._next_wait(state, error, None, endpoint)
                time.sleep(delay)
                continue

            status = resp.status_code
            if 200 <= status < 300:
                return resp
            if status == 401 and authenticated and not renewed and token is not None:
                # Expired or revoked access token: renew once (refresh, or log in again).
                if self._tokens is not None:
                    self._tokens.invalidate(token)
                renewed = True
                continue
            error = self._http_error(resp, endpoint)
            if status not in RETRYABLE_STATUSES:
                raise error
            if status == 429:
                self._usage.record(endpoint, throttled=1)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            delay = self._next_wait(state, error, retry_after, endpoint)
            if retry_after is not None:
                # Throttling is per user: every thread and worker sharing the rate waits too.
                self._limiter.hold(delay)
            time.sleep(delay)

    def _next_wait(
        self,
        state: RetryState,
        error: XivaError,
        retry_after: float | None,
        endpoint: str,
    ) -> float:
        try:
            delay = state.next_wait(error, retry_after)
        except XivaError as final:
            logger.warning("Xiva %s: giving up: %s", endpoint, final.message)
            raise
        how = f"Retry-After {retry_after:g} s" if retry_after is not None else "backoff"
        reason = (
            f"HTTP {error.status}"
            if error.status is not None
            else type(error.__cause__ or error).__name__
        )
        logger.warning(
            "Xiva %s: %s; retry %d in %.2f s (%s)", endpoint, reason, state.attempts, delay, how
        )
        return delay

    # -- auth calls (through the choke point, unauthenticated) -----------------------------------

    def _access_token(self) -> str:
        if self._tokens is None:
            raise XivaNotConfiguredError()
        return self._tokens.access_token()

    def _login_call(self, body: dict[str, str]) -> dict[str, Any]:
        resp = self._request(
            "POST", "auth/jwt/create/", endpoint="auth_create", json=body, authenticated=False
        )
        return self._json_object(resp, "a token pair")

    def _refresh_call(self, refresh_token: str) -> dict[str, Any]:
        resp = self._request(
            "POST",
            "auth/jwt/refresh/",
            endpoint="auth_refresh",
            json={"refresh": refresh_token},
            authenticated=False,
        )
        return self._json_object(resp, "a refreshed token")

    # -- response handling ---------------------------------------------------------------------

    def _http_error(self, resp: requests.Response, endpoint: str) -> XivaError:
        status = resp.status_code
        text = resp.text[:4000]
        detail = _detail(resp)
        said = f": {detail}" if detail else ""
        where: dict[str, Any] = {"status": status, "body": text, "url": resp.url}
        if endpoint == "auth_create" and status in (400, 401, 403):
            return XivaAuthenticationError(
                f"Xiva rejected the credentials of user {self.username!r}{said}. Check "
                "XIVA_API_USERNAME and XIVA_API_PASSWORD (an e-mail address logs in as email).",
                **where,
            )
        if endpoint == "auth_refresh" and status in (400, 401, 403):
            return XivaAuthenticationError(
                f"Xiva rejected the refresh token{said}; the client logs in again.", **where
            )
        if status in (401, 403):
            return XivaAuthenticationError(
                f"Xiva refused {endpoint} for user {self.username!r} even with a fresh token"
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
            page = " (an HTML error page)" if _is_html(resp) else ""
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

    def _decode(self, resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError as e:
            kind = "an HTML page" if _is_html(resp) else "a body that is not JSON"
            raise XivaBadResponseError(
                f"Xiva answered {kind} where {what} was expected; check that XIVA_API_BASE_URL "
                "points at the Xiva API (e.g. https://host/api), not a web page or proxy.",
                status=resp.status_code,
                body=resp.text[:4000],
                url=resp.url,
            ) from e

    def _json_object(self, resp: requests.Response, what: str) -> dict[str, Any]:
        data = self._decode(resp, what)
        if not isinstance(data, dict):
            raise XivaBadResponseError(
                f"Xiva answered a JSON {type(data).__name__} where {what} (an object) was "
                "expected; check XIVA_API_BASE_URL.",
                status=resp.status_code,
                body=resp.text[:4000],
                url=resp.url,
            )
        return data

    def _parse_customer_page(
        self, resp: requests.Response
    ) -> tuple[list[dict[str, Any]], int | None, bool | None]:
        """``(customers, total or None, has_next or None)`` from either list shape."""
        data = self._decode(resp, "a customer list")
        has_next: bool | None = None
        if isinstance(data, list):
            page, total = data, _int_header(resp, "X-Total-Count")
        elif isinstance(data, dict) and isinstance(data.get("results"), list):
            page = data["results"]
            count = data.get("count")
            total = count if isinstance(count, int) else None
            has_next = data.get("next") is not None
        else:
            raise XivaBadResponseError(
                "Xiva's customer list is neither a JSON array nor a DRF page "
                "({count, next, results}); check XIVA_API_BASE_URL.",
                status=resp.status_code,
                body=resp.text[:4000],
                url=resp.url,
            )
        for item in page:
            ok = isinstance(item, dict) and isinstance(item.get("id"), str)
            if ok:
                try:
                    _parse_ts(item.get("lastUpdate"))
                except ValueError:
                    ok = False
            if not ok:
                raise XivaBadResponseError(
                    "Xiva's customer list holds an entry without a string 'id' and an ISO "
                    "'lastUpdate', which paging needs; report this Xiva deployment's format.",
                    status=resp.status_code,
                    body=str(item)[:400],
                    url=resp.url,
                )
        return page, total, has_next

    @staticmethod
    def _paging_error(resp: requests.Response, what: str) -> XivaBadResponseError:
        return XivaBadResponseError(
            f"Xiva's customer list {what}: this deployment does not honour offset, "
            "ordering=lastUpdate,id or lastUpdate.gte, so paging cannot be trusted and stopped "
            "instead of looping. Report it to the Xiva administrators; use the DWH source "
            "meanwhile.",
            status=resp.status_code,
            url=resp.url,
        )


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return _as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))


def _int_header(resp: requests.Response, name: str) -> int | None:
    value = resp.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _is_html(resp: requests.Response) -> bool:
    ctype = resp.headers.get("Content-Type", "")
    return "html" in ctype or resp.text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def _detail(resp: requests.Response) -> str | None:
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
