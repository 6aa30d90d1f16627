"""The unit tier: which tests need no service, decided from the fixtures they use.

The rule (applied by ``tests/conftest.py`` at collection, so ``pytest -m unit`` selects on it):

- A *service fixture* is one decorated with :func:`service` (under ``@pytest.fixture``): it
  reaches or starts Redis, PostgreSQL, an HTTP server (the simulator, a stub server), Ray,
  Chromium or a subprocess.
- A test is ``unit`` exactly when no fixture it uses, directly or through other fixtures, is a
  service fixture. Nobody writes ``@pytest.mark.unit``: a test that reaches a service does it
  through a service fixture (a fixture of its own when none fits), never from its body alone.

:func:`unit_guard` keeps the rule true: while a unit test is set up and runs, starting a
subprocess, listening on a socket, or connecting to a live TCP service or PostgreSQL raises
:class:`UnitTierError` (the test broke the rule: give it a service fixture). A dead endpoint's
refusal goes through: a test of how the code fails against one is a unit test. ``make test-unit``
also points ``TEST_REDIS_URL`` / ``TEST_PG_URL`` at dead ports.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import pytest

__all__ = ["SERVICE_KINDS", "ServiceKind", "UnitTierError", "service", "services_of", "unit_guard"]

ServiceKind = Literal["redis", "postgresql", "http", "ray", "chromium", "subprocess"]
SERVICE_KINDS: tuple[ServiceKind, ...] = (
    "redis",
    "postgresql",
    "http",
    "ray",
    "chromium",
    "subprocess",
)
"""What a service fixture may need; ``unit`` means none of them."""

_KIND = "test_service_kind"
F = TypeVar("F", bound=Callable[..., Any])


class UnitTierError(AssertionError):
    """A unit test reached a service: it uses no service fixture but needs one."""


def service(kind: ServiceKind) -> Callable[[F], F]:
    """Mark a fixture function as a service fixture (put it under ``@pytest.fixture``).

    Args:
        kind: What it reaches or starts (one of :data:`SERVICE_KINDS`).

    Returns:
        A decorator returning the function unchanged, marked.
    """
    if kind not in SERVICE_KINDS:
        raise ValueError(f"unknown service kind {kind!r}; use one of {SERVICE_KINDS}")

    def mark(func: F) -> F:
        setattr(func, _KIND, kind)
        return func

    return mark


def services_of(item: pytest.Item) -> set[str]:
    """The service kinds of every fixture ``item`` uses, directly or through other fixtures.

    Args:
        item: A collected test.

    Returns:
        The kinds (empty: the test is ``unit``).
    """
    info = getattr(item, "_fixtureinfo", None)
    if not isinstance(item, pytest.Function) or info is None:  # no fixtures (none here)
        return set()
    kinds: set[str] = set()
    for name in item.fixturenames:  # the closure: fixtures of fixtures included
        definitions = info.name2fixturedefs.get(name, ())
        # The closest definition wins; one requesting its own name also uses the one it overrides.
        for fixturedef in reversed(definitions):
            kind = getattr(fixturedef.func, _KIND, None)
            if kind is not None:
                kinds.add(kind)
            if name not in fixturedef.argnames:
                break
    return kinds


@contextmanager
def unit_guard(nodeid: str) -> Iterator[None]:
    """Fail a unit test that starts a subprocess or a server, or reaches a live service.

    Args:
        nodeid: The test's id (named in the error).

    Yields:
        Inside, the checks are on; they are undone on exit.
    """

    def refuse(what: str) -> UnitTierError:
        return UnitTierError(
            f"{nodeid} is in the unit tier (it uses no service fixture) but {what}. Fix: reach "
            "the service through a service fixture (tests/support/tiers.py), so the test leaves "
            "the unit tier"
        )

    def popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        raise refuse(f"started a subprocess ({str(args)[:80]})")

    def listen(self: socket.socket, *args: Any) -> None:
        raise refuse(f"listened on {self.getsockname()} (a server)")

    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def live(sock: socket.socket) -> bool:
        return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM

    def connect(self: socket.socket, address: Any) -> None:
        original_connect(self, address)  # a dead endpoint raises here: that is allowed
        if live(self):
            self.close()
            raise refuse(f"connected to a live service at {address}")

    def connect_ex(self: socket.socket, address: Any) -> int:
        code = original_connect_ex(self, address)
        if code == 0 and live(self):
            self.close()
            raise refuse(f"connected to a live service at {address}")
        return code

    import adbc_driver_postgresql.dbapi
    import psycopg

    def pg_refused(original: Callable[..., Any]) -> Callable[..., Any]:
        def connect(*args: Any, **kw: Any) -> Any:
            connection = original(*args, **kw)  # a dead server raises here: that is allowed
            connection.close()
            raise refuse("connected to a live PostgreSQL")

        return connect

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", popen_init)
        mp.setattr(socket.socket, "listen", listen)
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        # libpq connects below Python's sockets: watch the drivers' entry points themselves.
        mp.setattr(psycopg, "connect", pg_refused(psycopg.connect))
        mp.setattr(
            adbc_driver_postgresql.dbapi,
            "connect",
            pg_refused(adbc_driver_postgresql.dbapi.connect),
        )
        yield
