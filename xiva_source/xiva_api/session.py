"""The client's HTTP session: keep-alive connections sized for its threads, no hidden retries."""

from __future__ import annotations

import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from xiva_source.xiva_api.deadline import DeadlineHTTPConnectionPool, DeadlineHTTPSConnectionPool

__all__ = ["USER_AGENT", "DeadlineAdapter", "PooledSession"]

USER_AGENT = "xiva-source/0.1 (+python-requests)"
"""The ``User-Agent`` of every request."""


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections honour the thread's
    :class:`~xiva_source.xiva_api.deadline.RequestDeadline` (a whole-request deadline)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": DeadlineHTTPConnectionPool,
            "https": DeadlineHTTPSConnectionPool,
        }


class PooledSession(requests.Session):
    """A ``requests.Session`` whose connection pool grows with the threads using it.

    urllib3's own retries are off (``max_retries=0``): the client's choke point retries, within
    its time budget and the shared rate. Its connections honour the whole-request deadline the
    client sets around each attempt (:mod:`~xiva_source.xiva_api.deadline`).

    Args:
        workers: Threads expected to share the session.
    """

    def __init__(self, workers: int = 1) -> None:
        super().__init__()
        self.pool_size = 0
        self._pool_lock = threading.Lock()
        self.ensure_pool(workers)
        self.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})

    def ensure_pool(self, workers: int) -> None:
        """Size the keep-alive pool for ``workers`` threads (+2 for auth and list calls)."""
        with self._pool_lock:
            if workers + 2 <= self.pool_size:
                return
            self.pool_size = workers + 2
            adapter = DeadlineAdapter(
                pool_connections=2, pool_maxsize=self.pool_size, max_retries=0
            )
            self.mount("http://", adapter)
            self.mount("https://", adapter)
