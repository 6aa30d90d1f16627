"""The HTTP transport: a threaded HTTP/1.1 (keep-alive) server in front of ``SimulatorApp``."""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .app import SimulatorApp
from .wire import Request, Response, tmf_error

__all__ = ["SimulatorHTTPServer", "serve_in_thread"]

logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms stalls
    server_version = "XivaSimulator/1.0"
    sys_version = ""
    timeout = 60.0  # an idle keep-alive connection gives its thread back after this
    server: SimulatorHTTPServer

    def _serve(self) -> None:
        arrived = time.monotonic()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(tmf_error(400, "Invalid Content-Length header."))
            return
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        port = self.server.server_port
        request = Request(
            method=self.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            host=self.headers.get("Host") or f"{self.server.server_name}:{port}",
            arrived=arrived,
        )
        try:
            response = self.server.app.handle(request)
        except Exception:  # a simulator bug must not kill the connection thread silently
            logger.exception("Simulator error on %s %s", self.command, split.path)
            response = tmf_error(500, "Internal simulator error.")
        if response.drop:
            self.close_connection = True
            return
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the simulated Xiva's clock (``clock_skew_seconds`` applied)."""
        return super().date_time_string(self.server.app.time() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.config.log_requests:
            logger.info("%s " + format, self.address_string(), *args)


class SimulatorHTTPServer(ThreadingHTTPServer):
    """A thread per connection; daemon threads so idle keep-alive clients never block shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SimulatorApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host.decode() if isinstance(host, bytes) else str(host)
        self.server_port = int(port)


def serve_in_thread(server: SimulatorHTTPServer) -> threading.Thread:
    """Run ``server.serve_forever`` in a daemon thread and return the thread."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"xiva-simulator:{server.server_port}",
        daemon=True,
    )
    thread.start()
    return thread
