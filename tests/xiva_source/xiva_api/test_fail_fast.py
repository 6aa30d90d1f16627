"""Failing fast where waiting cannot help: short connection retries, the circuit breaker, and the
whole-request deadline, against real sockets (a closed port, dropped connections from the
simulator, a loopback server that drips its answer)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from tests.support.tiers import service
from xiva_source.settings import load_settings
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.xiva_api.circuit import CircuitBreaker
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import (
    XivaCircuitOpenError,
    XivaConnectionError,
    XivaRetryBudgetError,
)
from xiva_source.xiva_api.retry import RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(base_url: str, **settings: Any) -> XivaClient:
    return XivaClient(
        settings=load_settings(
            xiva_api_base_url=base_url,
            xiva_api_username=SIM_USER,
            xiva_api_password=SIM_PASSWORD,
            xiva_requests_per_second=0,
            **settings,
        )
    )


def test_connection_failures_get_a_few_quick_attempts_throttling_keeps_its_budget() -> None:
    state = RetryPolicy(connect_attempts=3).start()
    refused = XivaConnectionError("refused")
    waits = [state.next_wait(refused, None) for _ in range(2)]
    assert all(0.0 <= w <= 1.0 for w in waits)
    with pytest.raises(XivaRetryBudgetError, match="XIVA_CONNECT_ATTEMPTS=3") as info:
        state.next_wait(refused, None)
    assert info.value.last_error is refused and "XIVA_API_BASE_URL" in str(info.value)


def test_a_closed_port_fails_in_seconds_not_a_minute() -> None:
    client = _client(f"http://127.0.0.1:{_closed_port()}/api")
    started = time.monotonic()
    with pytest.raises(XivaRetryBudgetError) as info:
        client.get_customer("x")
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed  # three attempts over about a second (was ten, up to a minute)
    assert info.value.attempts == 3 and isinstance(info.value.last_error, XivaConnectionError)
    assert "check XIVA_API_BASE_URL" in str(info.value)


def test_the_breaker_opens_after_failed_connections_and_later_calls_fail_at_once() -> None:
    client = _client(f"http://127.0.0.1:{_closed_port()}/api", xiva_breaker_failures=3)
    with pytest.raises(XivaRetryBudgetError):
        client.get_customer("a")
    assert client.breaker.state == "open"
    started = time.monotonic()
    for cid in ("b", "c", "d"):
        with pytest.raises(XivaCircuitOpenError, match="circuit breaker"):
            client.get_customer_360(cid)
    assert time.monotonic() - started < 0.5
    assert client.counts.requests == 3  # nothing sent while open


def test_the_breaker_half_opens_and_a_probe_that_gets_an_answer_closes_it(
    sim: XivaSimulator,
) -> None:
    clock = FakeClock()
    client = XivaClient(
        sim.base_url,
        SIM_USER,
        SIM_PASSWORD,
        requests_per_second=0,
        breaker=CircuitBreaker(2, 30.0, clock=clock),
    )
    cid = sim.customer_ids()[3]
    assert client.get_customer(cid)["id"] == cid  # logged in
    sim.set_faults(FaultConfig(kinds=("drop",)))  # every connection dropped
    with pytest.raises(XivaConnectionError):
        client.get_customer(cid)
    assert client.breaker.state == "open"
    sim.set_faults(FaultConfig(rate=0.0))
    with pytest.raises(XivaCircuitOpenError):
        client.get_customer(cid)  # Xiva is back, but the cool-down is not over
    clock.now += 31
    assert client.breaker.state == "half-open"
    assert client.get_customer(cid)["id"] == cid  # the probe
    assert client.breaker.state == "closed"


class DripServer:
    """A loopback HTTP server that answers every request one byte at a time."""

    def __init__(self, *, headers_too: bool, interval: float = 0.5) -> None:
        self.headers_too, self.interval = headers_too, interval
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        body = b'{"access": "' + b"x" * 500 + b'"}'
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        with conn:
            conn.recv(65536)
            if not self.headers_too:
                conn.sendall(head)
            for byte in (head if self.headers_too else b"") + body:
                if self.stop.wait(self.interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client hung up: the deadline worked

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture(params=["body", "headers"])
@service("http")
def drip(request: pytest.FixtureRequest) -> Iterator[DripServer]:
    server = DripServer(headers_too=request.param == "headers")
    yield server
    server.close()


def test_a_dripped_answer_is_cut_by_the_whole_request_deadline(drip: DripServer) -> None:
    # Each byte comes well within XIVA_TIMEOUT, so only a whole-request deadline ends it.
    client = _client(
        f"http://127.0.0.1:{drip.port}/api",
        xiva_timeout=5,
        xiva_request_deadline_seconds=1.5,
        xiva_connect_attempts=2,
    )
    started = time.monotonic()
    with pytest.raises(XivaRetryBudgetError) as info:
        client.get_customer("x")
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 6.0, elapsed  # two attempts of 1.5 s, a short backoff between
    assert "XIVA_REQUEST_DEADLINE_SECONDS=1.5" in str(info.value)
    assert drip.connections == 2
    assert client.breaker.failures == 5 and client.breaker.state == "closed"  # 2 < 5
