"""The Xiva BSS REST API client: auth, paging, retries, a shared request rate, usage counters.

It imports nothing of Feast, SQLAlchemy, pandas or Arrow. Modules, one concern each:

- :mod:`~xiva_source.xiva_api.client`: :class:`XivaClient` and its one request choke point
- :mod:`~xiva_source.xiva_api.paging`: :class:`CustomerCursor`, the customer-list cursor
- :mod:`~xiva_source.xiva_api.fanout`: many 360 views at once on a thread pool
- :mod:`~xiva_source.xiva_api.responses`: JSON decoding, a failed answer -> its error
- :mod:`~xiva_source.xiva_api.session`: the pooled HTTP session
- :mod:`~xiva_source.xiva_api.auth`: JWT tokens: when to refresh or log in again
- :mod:`~xiva_source.xiva_api.retry`: ``Retry-After``, backoff with jitter, the time budget
- :mod:`~xiva_source.xiva_api.ratelimit`: the request rate, Redis-shared or in-process
- :mod:`~xiva_source.xiva_api.usage`: usage counters per endpoint and hour
- :mod:`~xiva_source.xiva_api.breaker`: "Redis is down: leave it alone for 30 s, warn once"
- :mod:`~xiva_source.xiva_api.errors`: the ``XivaError`` branch of the error tree

Every name loads on first use (:mod:`xiva_source.lazy`), so
``import xiva_source.xiva_api.errors`` does not import ``requests``.

Example:
    >>> from xiva_source.xiva_api import XivaClient
    >>> with XivaClient() as client:  # doctest: +SKIP
    ...     first = next(client.iter_customers())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.xiva_api.breaker import RedisBreaker
    from xiva_source.xiva_api.circuit import CircuitBreaker
    from xiva_source.xiva_api.client import XivaClient
    from xiva_source.xiva_api.errors import (
        XivaAuthenticationError,
        XivaBadResponseError,
        XivaCircuitOpenError,
        XivaConnectionError,
        XivaError,
        XivaNotConfiguredError,
        XivaNotFoundError,
        XivaRateLimitError,
        XivaRetryBudgetError,
        XivaServerError,
    )
    from xiva_source.xiva_api.paging import PAGE_SIZE, CustomerCursor, RawPage
    from xiva_source.xiva_api.ratelimit import (
        LocalRateLimiter,
        RateLimiter,
        RedisRateLimiter,
        default_rate_key,
    )
    from xiva_source.xiva_api.retry import RetryPolicy, parse_retry_after
    from xiva_source.xiva_api.usage import (
        MemoryUsageStore,
        RedisUsageStore,
        UsageCounts,
        UsageReport,
        UsageStore,
    )

__all__ = lazy.attach(__name__, __file__)
