"""The ``/_sim/`` control endpoints: the simulator's Python controls over HTTP (JSON, no auth)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .config import FaultConfig
from .data import parse_timestamp
from .errors import ControlRequestError, UnknownCustomerError
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .simulator import XivaSimulator

__all__ = ["ControlEndpoints"]

_Handler = Callable[[dict[str, Any]], Any]


class ControlEndpoints:
    """Routes ``/_sim/<name>`` requests to a simulator's control methods.

    ========  ======================  ====================================================
    method    path                    body -> answer
    ========  ======================  ====================================================
    GET       /_sim/counters          -> ``sim.counters()``
    GET       /_sim/log               -> ``{"requests": [{at, endpoint, status, user}]}``
    GET       /_sim/customers         -> ``{"ids": sim.customer_ids()}``
    POST      /_sim/reset             -> ``sim.reset()``
    POST      /_sim/reset-counters    -> ``sim.reset_counters()``
    POST      /_sim/faults            FaultConfig fields -> ``sim.set_faults(...)``
    DELETE    /_sim/faults            -> ``sim.clear_faults()``
    POST      /_sim/rate-limit        ``{"per_second", "burst"}``
    POST      /_sim/update            ``{"ids", "count", "at"}`` -> ``{"ids": [...]}``
    POST      /_sim/tokens            ``{"access", "refresh", "revoke_refresh"}``
    POST      /_sim/users             ``{"username", "password"}``
    POST      /_sim/list-shape        ``{"shape": "array" | "drf"}``
    POST      /_sim/clock             ``{"skew_seconds": -1800}`` -> ``{"skew_seconds", "now"}``
    ========  ======================  ====================================================
    """

    def __init__(self, sim: XivaSimulator) -> None:
        self._sim = sim
        self._routes: dict[tuple[str, str], _Handler] = {
            ("GET", "counters"): lambda _: sim.counters(),
            ("GET", "log"): lambda _: {"requests": [r._asdict() for r in sim.request_log()]},
            ("GET", "customers"): lambda _: {"ids": sim.customer_ids()},
            ("POST", "reset"): lambda _: sim.reset(),
            ("POST", "reset-counters"): lambda _: sim.reset_counters(),
            ("POST", "faults"): self._faults,
            ("DELETE", "faults"): lambda _: sim.clear_faults(),
            ("POST", "rate-limit"): self._rate_limit,
            ("POST", "update"): self._update,
            ("POST", "tokens"): self._tokens,
            ("POST", "users"): self._users,
            ("POST", "list-shape"): self._list_shape,
            ("POST", "clock"): self._clock,
        }

    def __call__(self, request: Request) -> Response:
        """Answer one control request."""
        name = request.path.removeprefix("/_sim").strip("/")
        handler = self._routes.get((request.method, name))
        if handler is None:
            known = sorted(f"{method} /_sim/{path}" for method, path in self._routes)
            detail = f"No control endpoint {request.method} {request.path}; known: {known}"
            return json_response(404, {"detail": detail})
        try:
            body = request.json()
            if not isinstance(body, dict):
                raise ControlRequestError(name, "the body is not a JSON object", "Send {...}.")
            result = handler(body)
        except ValueError as e:  # JSONDecodeError, pydantic ValidationError, bad values
            return json_response(400, {"detail": f"Bad control request to /_sim/{name}: {e}"})
        except (ControlRequestError, UnknownCustomerError) as e:
            return json_response(400, {"detail": str(e)})
        return json_response(200, {"ok": True} if result is None else result)

    def _faults(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            config = FaultConfig.model_validate(body)
        except ValidationError as e:
            raise ControlRequestError(
                "/_sim/faults",
                f"invalid fault configuration ({e.error_count()} errors: {e})",
                'Send FaultConfig fields, e.g. {"rate": 1.0, "kinds": ["429"], "count": 1}.',
            ) from e
        self._sim.set_faults(config)
        return {"faults": config.model_dump(mode="json")}

    def _rate_limit(self, body: dict[str, Any]) -> None:
        per_second, burst = body.get("per_second"), body.get("burst")
        if per_second is not None and not isinstance(per_second, int | float):
            raise ControlRequestError(
                "/_sim/rate-limit", "per_second is not a number", "Send a number or null."
            )
        if burst is not None and not isinstance(burst, int):
            raise ControlRequestError(
                "/_sim/rate-limit", "burst is not an integer", "Send an integer or null."
            )
        self._sim.set_rate_limit(per_second, burst)

    def _update(self, body: dict[str, Any]) -> dict[str, list[str]]:
        at_text = body.get("at")
        at: datetime | None = None
        if at_text is not None:
            at = parse_timestamp(str(at_text))
        ids = body.get("ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise ControlRequestError("/_sim/update", "ids is not a list of strings", "Send [..].")
        return {"ids": self._sim.update_customers(ids=ids, count=body.get("count"), at=at)}

    def _tokens(self, body: dict[str, Any]) -> None:
        access, refresh = body.get("access"), body.get("refresh")
        for name, value in (("access", access), ("refresh", refresh)):
            if value is not None and not isinstance(value, int | float):
                raise ControlRequestError(
                    "/_sim/tokens", f"{name} is not a number of seconds", "Send a number or null."
                )
        if access is not None or refresh is not None:
            self._sim.set_token_lifetimes(access=access, refresh=refresh)
        if body.get("revoke_refresh"):
            self._sim.revoke_refresh_tokens()

    def _users(self, body: dict[str, Any]) -> dict[str, list[str]]:
        name = body.get("username", body.get("name"))
        password = body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise ControlRequestError(
                "/_sim/users",
                "username and password must both be strings",
                'Send {"username": "...", "password": "..."}.',
            )
        self._sim.add_user(name, password)
        return {"users": self._sim.user_names()}

    def _clock(self, body: dict[str, Any]) -> dict[str, Any]:
        skew = body.get("skew_seconds")
        if isinstance(skew, bool) or not isinstance(skew, int | float):
            raise ControlRequestError(
                "/_sim/clock",
                "skew_seconds is not a number",
                "Send {\"skew_seconds\": -1800} (Xiva's clock 30 minutes behind this host's).",
            )
        self._sim.set_clock_skew(skew)
        return {"skew_seconds": self._sim.clock_skew, "now": self._sim.now().isoformat()}

    def _list_shape(self, body: dict[str, Any]) -> None:
        shape = body.get("shape")
        if shape not in ("array", "drf"):
            raise ControlRequestError(
                "/_sim/list-shape", f"unknown shape {shape!r}", 'Send {"shape": "array"|"drf"}.'
            )
        self._sim.set_list_shape(shape)
