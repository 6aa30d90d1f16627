"""A TCP proxy a test cuts and restores: a service "going down" without touching the shared one.

The shared PostgreSQL and Redis must never be stopped or reconfigured, so a test that needs one
to vanish points its client (``DWH_URL``: the ``dwh_proxy`` fixture of the fault tests; a Redis
client: the lock's cut-off test) at a :class:`TcpProxy` in front of it instead.
:meth:`TcpProxy.cut` is what a crashed server or a lost network looks like to the client: every
open connection is reset at once and new ones are refused (nothing listens on the port);
:meth:`TcpProxy.restore` listens again on the same port. Used only from tests with a service
fixture (a proxy listens on a socket: never in the unit tier).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

__all__ = ["TcpProxy", "running_proxy"]

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, as a crash does


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``, one thread pair per connection.

    Args:
        upstream: ``(host, port)`` of the real service.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.connections = 0
        """Connections accepted so far (a test waits for the job to reach the service)."""

    def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and reset every open connection (the service is gone)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.close()

    def restore(self) -> None:
        """Listen again on the same port (the service is back)."""
        if self._listener is None:
            self.start()

    @property
    def up(self) -> bool:
        """Whether the proxy listens."""
        return self._listener is not None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
                self.connections += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        """Copy bytes from ``source`` to ``target`` until either side closes, then close both."""
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.difference_update((source, target))
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@contextlib.contextmanager
def running_proxy(upstream: tuple[str, int]) -> Iterator[TcpProxy]:
    """A started :class:`TcpProxy`, cut when the block ends."""
    proxy = TcpProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.cut()
