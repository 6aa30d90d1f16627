"""`XivaSimulator`: the bundled Xiva simulator's Python face (start/stop and every control)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from .app import SimulatorApp
from .config import FaultConfig, ListShape, SimulatorConfig
from .controls import ControlEndpoints
from .errors import SimulatorNotRunningError
from .recorder import RequestRecord
from .server import SimulatorHTTPServer, serve_in_thread

__all__ = ["XivaSimulator"]


class XivaSimulator:
    """A real Xiva-like HTTP server on loopback, with controls for tests, demos and benchmarks.

    Args:
        config: How it starts; ``reset()`` goes back to it. Default: 1,000 customers, seed 42,
            user ``demo`` / ``demo-pass``.

    Example:
        >>> with XivaSimulator(SimulatorConfig(customers=100)) as sim:  # doctest: +SKIP
        ...     requests.post(f"{sim.base_url}/auth/jwt/create/",
        ...                   json={"username": "demo", "password": "demo-pass"})
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self._app = SimulatorApp(self.config)
        self._app.control = ControlEndpoints(self)
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def reference_time(self) -> datetime:
        """The "now" the population was generated against (the start of the hour it was built
        in, unless ``SimulatorConfig.reference_time`` set it): same seed and reference time,
        same data."""
        return self._app.store.reference_time

    def __repr__(self) -> str:
        where = self.root_url if self._server is not None else "stopped"
        return f"XivaSimulator(customers={self.config.customers}, seed={self.config.seed}, {where})"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> XivaSimulator:
        """Bind the port and serve in a background thread (no-op when already running).

        Raises:
            OSError: the port cannot be bound.
        """
        with self._lock:
            if self._server is None:
                self._server = SimulatorHTTPServer((self.config.host, self.config.port), self._app)
                self._thread = serve_in_thread(self._server)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (no-op when not running)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> XivaSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the HTTP server is up."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            SimulatorNotRunningError: not started.
        """
        server = self._server
        if server is None:
            raise SimulatorNotRunningError()
        return int(server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://host:port`` (the ``/_sim/`` controls live under it)."""
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL (what ``XIVA_API_BASE_URL`` takes), e.g. ``http://127.0.0.1:8765/api``."""
        return self.root_url + self.config.base_path

    # -- controls --------------------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Let ``name`` log in with ``password`` (until the next ``reset()``)."""
        self._app.add_user(name, password)

    def user_names(self) -> list[str]:
        """The accounts that may log in (never their passwords)."""
        return self._app.user_names()

    def set_rate_limit(self, per_second: float | None, burst: int | None = None) -> None:
        """Throttle each user to ``per_second`` (token bucket of ``burst``); None: no throttle.

        Throttled requests get 429, a whole-seconds ``Retry-After`` (>= 1) and DRF's body.
        Login and refresh are never throttled.
        """
        self._app.limiter.configure(per_second, burst)

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Inject faults into API requests (None: none). See :class:`FaultConfig`."""
        self._app.faults.configure(faults)

    def clear_faults(self) -> None:
        """Stop injecting faults."""
        self._app.faults.configure(None)

    def set_token_lifetimes(
        self, access: float | None = None, refresh: float | None = None
    ) -> None:
        """Lifetimes (seconds) of tokens issued from now on; None keeps the current one.

        Raises:
            ValueError: a lifetime is not positive.
        """
        for name, value in (("access", access), ("refresh", refresh)):
            if value is not None and value <= 0:
                raise ValueError(f"The {name} token lifetime must be positive seconds, got {value}")
        if access is not None:
            self._app.tokens.access_lifetime = float(access)
        if refresh is not None:
            self._app.tokens.refresh_lifetime = float(refresh)

    def revoke_refresh_tokens(self) -> None:
        """Kill every refresh token issued so far: the client must log in again."""
        self._app.tokens.revoke_all_refresh()

    def set_list_shape(self, shape: ListShape) -> None:
        """Serve the customer list as a bare ``"array"`` or DRF-style (``"drf"``).

        Raises:
            ValueError: unknown shape.
        """
        if shape not in ("array", "drf"):
            raise ValueError(f"Unknown list shape {shape!r}: use 'array' or 'drf'")
        self._app.list_shape = shape

    def update_customers(
        self,
        ids: Iterable[str] | None = None,
        count: int | None = None,
        at: datetime | None = None,
    ) -> list[str]:
        """Change customers: their ``lastUpdate`` moves to ``at`` and their 360 numbers change
        (``total_bills``, ``total_payments``, ``payment_count``, ``last_payment_date``, usage).

        Args:
            ids: These customers...
            count: ...or this many, picked deterministically.
            at: The new ``lastUpdate`` (UTC; default now on the simulator's clock:
                :meth:`set_clock_skew`).

        Returns:
            The ids changed.

        Raises:
            UnknownCustomerError: an id is not a customer (nothing changes).
            ValueError: neither ``ids`` nor ``count``.
        """
        return self._app.store.update(ids=ids, count=count, at=at or self._app.now())

    def set_clock_skew(self, seconds: float) -> None:
        """Run the simulated Xiva's clock ``seconds`` ahead of this host's (negative: behind).

        From now on the ``lastUpdate`` of changes (:meth:`update_customers` without ``at``),
        the ``Date`` header of every answer, token ``iat``/``exp`` (and their expiry checks) and
        ``Retry-After`` dates follow that clock, as a Xiva server without NTP would. ``reset()``
        restores ``SimulatorConfig.clock_skew_seconds``.
        """
        self._app.clock_skew = float(seconds)

    @property
    def clock_skew(self) -> float:
        """Seconds the simulated Xiva's clock runs ahead of this host's (negative: behind)."""
        return self._app.clock_skew

    def now(self) -> datetime:
        """The simulated Xiva's current time (UTC): this host's plus :attr:`clock_skew`."""
        return self._app.now()

    def corrupt_customer(self, customer_id: str, patch: Mapping[str, Any]) -> None:
        """Serve malformed data for one customer until :meth:`reset` (its place in the list stays).

        Args:
            customer_id: The customer.
            patch: Dotted paths in the 360 view -> the value served, e.g.
                ``{"customer.lastUpdate": "not a date"}`` or ``{"financial.payment_count": "x"}``;
                ``customer.*`` paths apply to the list and detail answers too.

        Raises:
            UnknownCustomerError: no such customer.
        """
        self._app.store.corrupt(customer_id, patch)

    def customer_ids(self) -> list[str]:
        """Every customer id, in ``(lastUpdate, id)`` order."""
        return self._app.store.ordered_ids()

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The Customer the API serves for this id.

        Raises:
            UnknownCustomerError: no such customer.
        """
        return self._app.store.customer(customer_id)

    def view_360(self, customer_id: str) -> dict[str, Any]:
        """The 360 view the API serves for this id.

        Raises:
            UnknownCustomerError: no such customer.
        """
        return self._app.store.view_360(customer_id)

    def counters(self) -> dict[str, Any]:
        """``{"total": n, "by_endpoint": {endpoint: {status: n}}, "by_user": {user: n}}``.

        ``status`` is the HTTP status (int), or ``"drop"``; ``/_sim/`` calls count under
        ``"control"`` only, never in ``total``.
        """
        return self._app.recorder.counters()

    def request_log(self) -> list[RequestRecord]:
        """Recent API requests as ``(at, endpoint, status, user)``, oldest first.

        ``at`` is ``time.monotonic()`` when the request arrived.
        """
        return self._app.recorder.log()

    def reset_counters(self) -> None:
        """Zero the counters and empty the request log."""
        self._app.recorder.reset()

    def reset(self) -> None:
        """Back to the initial state: customers, faults, rate limit, token lifetimes, list shape,
        revocations, counters, users and clock skew (those of the config). The port stays the
        same."""
        self._app.reset()
