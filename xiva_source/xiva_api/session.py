"""The client's HTTP session: keep-alive connections sized for its threads, no hidden retries."""

from __future__ import annotations

import threading

import requests
from requests.adapters import HTTPAdapter

__all__ = ["USER_AGENT", "PooledSession"]

USER_AGENT = "xiva-source/0.1 (+python-requests)"
"""The ``User-Agent`` of every request."""


class PooledSession(requests.Session):
    """A ``requests.Session`` whose connection pool grows with the threads using it.

    urllib3's own retries are off (``max_retries=0``): the client's choke point retries, within
    its time budget and the shared rate.

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
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.pool_size, max_retries=0)
            self.mount("http://", adapter)
            self.mount("https://", adapter)
