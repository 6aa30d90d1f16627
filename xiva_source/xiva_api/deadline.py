"""A whole-request deadline: a response that trickles in is cut, not waited for byte by byte.

``requests``' timeout bounds each socket read, so a server sending one byte every few seconds
never trips it. :class:`RequestDeadline` bounds the whole request (send, headers and body): the
client enters one around each HTTP attempt; the connection classes of
:class:`~xiva_source.xiva_api.session.PooledSession` arm it when they send, and when the deadline
passes a timer shuts the socket down, so the blocked read ends at once. The client then sees
:attr:`RequestDeadline.expired` and reports a connection failure (retried like one).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = [
    "DeadlineHTTPConnection",
    "DeadlineHTTPConnectionPool",
    "DeadlineHTTPSConnection",
    "DeadlineHTTPSConnectionPool",
    "RequestDeadline",
]

_current = threading.local()


class RequestDeadline:
    """The deadline of the HTTP attempt running on this thread (a context manager).

    Args:
        seconds: How long the whole attempt may take.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._ends = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RequestDeadline:
        self._ends = time.monotonic() + self.seconds
        _current.deadline = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.deadline = None
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    @property
    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self._ends - time.monotonic())

    def arm(self, conn: HTTPConnection) -> None:
        """Shut ``conn``'s socket down when the deadline passes (called as the request is sent)."""
        timer = threading.Timer(self.remaining, self._expire, args=(conn,))
        timer.daemon = True
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = timer
        timer.start()

    def _expire(self, conn: HTTPConnection) -> None:
        self.expired = True
        sock = conn.sock
        if sock is None:
            return
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _arm(conn: HTTPConnection) -> None:
    deadline: RequestDeadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.arm(conn)


class DeadlineHTTPConnection(HTTPConnection):
    """An HTTP connection that arms the thread's :class:`RequestDeadline` when it sends."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        _arm(self)
        super().request(*args, **kwargs)


class DeadlineHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that arms the thread's :class:`RequestDeadline` when it sends."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        _arm(self)
        super().request(*args, **kwargs)


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    """A pool of :class:`DeadlineHTTPConnection`."""

    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of :class:`DeadlineHTTPSConnection`."""

    ConnectionCls = DeadlineHTTPSConnection
