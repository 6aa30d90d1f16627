"""Configuration of the simulator (:class:`SimulatorConfig`) and its faults."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "FAULT_KINDS",
    "FaultConfig",
    "FaultKind",
    "ListShape",
    "RetryAfterStyle",
    "SimulatorConfig",
]

ListShape = Literal["array", "drf"]
RetryAfterStyle = Literal["seconds", "http_date", "zero", "missing"]
FaultKind = Literal[
    "429", "500", "503", "502_html", "504_html", "slow", "drop", "swapped", "login_echo"
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
"""Every fault kind, from the one list (``FaultKind``): ``--fault-kinds`` validates against it
and its help lists it; docs/simulator.md's table must name each (tests/xiva_source/
test_simulator.py)."""


def _default_users() -> dict[str, SecretStr | str]:
    return {"demo": SecretStr("demo-pass")}


class SimulatorConfig(BaseModel):
    """How one ``XivaSimulator`` starts (and what ``reset()`` restores)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customers: int = Field(default=1000, ge=0)
    """Number of synthetic customers; generated lazily, so 100,000 starts in about a second."""
    seed: int = 42
    """Seed of the synthetic population and of the fault dice: same seed, same data."""
    users: dict[str, SecretStr | str] = Field(default_factory=_default_users)
    """Accounts that may log in, name -> password (kept as SecretStr: a repr never shows them)."""
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    """Per-user throttle rate (token bucket refill per second); None disables throttling."""
    rate_limit_burst: int | None = Field(default=None, ge=1)
    """Per-user bucket size; None means ceil(rate_limit_per_second)."""
    access_token_lifetime: float = Field(default=300.0, gt=0)
    """Seconds an access token lives (its ``exp`` is rounded up to a whole second)."""
    refresh_token_lifetime: float = Field(default=86400.0, gt=0)
    """Seconds a refresh token lives."""
    rotate_refresh_tokens: bool = False
    """A refresh also returns a new refresh token and kills the old one (SimpleJWT rotation)."""
    list_shape: ListShape = "array"
    """Customer list body: bare array + X-Total-Count headers, or DRF ``{count,next,...}``."""
    host: str = "127.0.0.1"
    """Interface the HTTP server binds to."""
    port: int = Field(default=0, ge=0, le=65535)
    """TCP port; 0 picks a free one (read it back from ``sim.base_url``)."""
    base_path: str = "/api"
    """Path prefix of the API (the part of ``XIVA_API_BASE_URL`` after the host)."""
    default_page_size: int = Field(default=20, ge=1)
    """Page size of the customer list when the request gives no ``limit``."""
    max_page_size: int = Field(default=50, ge=1)
    """Largest page the customer list returns; bigger ``limit`` values are clamped to it."""
    reference_time: datetime | None = None
    """The "now" the population is generated against (UTC); None means the start of this hour."""
    clock_skew_seconds: float = 0.0
    """How far the simulated Xiva's clock runs ahead of this host's (negative: behind): the
    ``lastUpdate`` of changes (``update_customers`` without ``at``), the ``Date`` header, token
    ``iat``/``exp`` and ``Retry-After`` dates follow it, as a Xiva server without NTP would."""
    jwt_secret: SecretStr | None = None
    """HMAC key that signs tokens; None draws a random one per simulator."""
    log_requests: bool = False
    """Log every request to stderr (off by default: it costs throughput)."""
    request_log_size: int = Field(default=100_000, ge=0)
    """How many recent requests ``sim.request_log()`` keeps."""

    @field_validator("users")
    @classmethod
    def _hide_passwords(cls, value: dict[str, SecretStr | str]) -> dict[str, SecretStr | str]:
        return {
            name: SecretStr(str(pw)) if isinstance(pw, str) else pw for name, pw in value.items()
        }

    def passwords(self) -> dict[str, str]:
        """The configured ``users`` with their passwords in clear (for the server only)."""
        return {
            name: pw.get_secret_value() if isinstance(pw, SecretStr) else pw
            for name, pw in self.users.items()
        }

    @field_validator("base_path")
    @classmethod
    def _normalise_base_path(cls, value: str) -> str:
        value = "/" + value.strip("/")
        return "" if value == "/" else value

    @model_validator(mode="after")
    def _page_sizes(self) -> SimulatorConfig:
        if self.default_page_size > self.max_page_size:
            raise ValueError(
                f"default_page_size ({self.default_page_size}) is larger than max_page_size "
                f"({self.max_page_size}); lower default_page_size or raise max_page_size"
            )
        return self


class FaultConfig(BaseModel):
    """Which requests fail and how. Control calls under ``/_sim/`` are never faulted.

    Example:
        ``FaultConfig(kinds=("429",), count=1)`` makes the next API request a 429 and the
        following ones succeed; ``FaultConfig(rate=0.2, kinds=("503", "drop"))`` fails a fifth
        of the requests at random (reproducibly: the dice are seeded).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Probability that a matching request fails (1.0: every one)."""
    kinds: tuple[FaultKind, ...] = Field(default=("503",), min_length=1)
    """Failure kinds, picked at random per failing request."""
    retry_after: RetryAfterStyle = "seconds"
    """Retry-After header of 429/503: whole seconds, an HTTP date, "0", or no header."""
    retry_after_seconds: int = Field(default=1, ge=0)
    """The wait that Retry-After announces (seconds or date styles)."""
    slow_seconds: float = Field(default=2.0, ge=0.0)
    """How long a "slow" fault sleeps before answering normally."""
    paths: AbstractSet[str] | Sequence[str] | None = None
    """Only fault these endpoints: names (``customer_list``) or path prefixes; None: all."""
    count: int | None = Field(default=None, ge=0)
    """Fail only the next ``count`` matching requests (each still subject to ``rate``)."""
    seed: int = 0
    """Seed of the fault dice (rate and kind choice)."""

    @field_validator("paths")
    @classmethod
    def _paths_as_set(cls, value: AbstractSet[str] | Sequence[str] | None) -> frozenset[str] | None:
        if isinstance(value, str):
            raise ValueError(
                f"paths must be a collection of endpoint names or path prefixes, got the string "
                f"{value!r}; wrap it: paths={{{value!r}}}"
            )
        return None if value is None else frozenset(value)
