"""Fetching many customers at once: a bounded window of calls on a thread pool.

The calls themselves go through the client's choke point, so they share its request rate, tokens
and retries; this module only keeps ``2 x workers`` calls in flight and turns each failure into a
result, so one bad customer never stops a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from xiva_source.xiva_api.errors import XivaError

__all__ = ["fetch_concurrently"]

T = TypeVar("T")


def fetch_concurrently(
    fetch: Callable[[str], T],
    ids: Iterable[str],
    workers: int,
    *,
    thread_name_prefix: str = "xiva-fetch",
) -> Iterator[tuple[str, T | XivaError]]:
    """Call ``fetch(id)`` for every id on ``workers`` threads.

    ``ids`` is consumed lazily: at most ``2 * workers`` calls are in flight. Closing the iterator
    early waits for the calls in flight and cancels the rest.

    Args:
        fetch: One call, e.g. ``client.get_customer_360``.
        ids: Customer ids.
        workers: Threads (at least 1).
        thread_name_prefix: Names of the pool's threads.

    Yields:
        ``(id, result or the XivaError it raised)`` in completion order; any other exception
        propagates.
    """
    workers = max(1, workers)
    source = iter(ids)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
    pending: dict[Future[T], str] = {}

    def fill() -> None:
        while len(pending) < 2 * workers:
            cid = next(source, None)
            if cid is None:
                return
            pending[pool.submit(fetch, cid)] = cid

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
