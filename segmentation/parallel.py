"""One thread per Redis primary, their chunks handed to one consumer as they come, bounded.

Each thread runs a producer over its own node (a cluster primary on its own connection) and puts
each chunk on one queue of ``len(nodes)`` places: a thread waits (checking ``stop``) while there
is no room, so at most one finished chunk per node waits, plus one being built per thread. A
producer's exception is raised in the consumer. When the consumer stops (it closes the generator,
or a producer failed) every thread is told to stop and joined before the generator returns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["parallel_chunks"]

N = TypeVar("N")
T = TypeVar("T")

_PUT_POLL = 0.1  # seconds a thread waits for room before checking whether to stop


class _Failure:
    """An exception raised in a producer thread, handed to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def parallel_chunks(
    nodes: Sequence[N],
    produce: Callable[[N, threading.Event], Iterable[T]],
    *,
    thread_name: str,
) -> Generator[T, None, None]:
    """The chunks of ``produce(node, stop)`` for every node, one thread each, in arrival order.

    Args:
        nodes: One thread each.
        produce: A node's chunks; it may check ``stop`` (set when the consumer has stopped) to
            end early between its own steps.
        thread_name: The threads' name prefix (``<prefix>-<i>``).

    Yields:
        The chunks, as the threads finish them (no set order across nodes).

    Raises:
        BaseException: The first exception of a producer.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=max(1, len(nodes)))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=_PUT_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work(node: N) -> None:
        try:
            for item in produce(node, stop):
                if not put(item):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put(_Failure(e))
        finally:
            put(_DONE)

    threads = [
        threading.Thread(target=work, args=(n,), name=f"{thread_name}-{i}", daemon=True)
        for i, n in enumerate(nodes)
    ]
    for t in threads:
        t.start()
    try:
        running = len(threads)
        while running:
            item = out.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, _Failure):
                raise item.error
            else:
                yield item
    finally:
        stop.set()
        for t in threads:
            t.join()
