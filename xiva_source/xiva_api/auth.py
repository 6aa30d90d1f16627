"""JWT handling for the Xiva client: credentials, the token pair, and when to refresh or log in.

The HTTP calls themselves go through the client's one ``_request`` choke point; this module only
decides *which* call is needed and keeps the tokens, under a lock so several threads sharing a
client refresh once, not once each.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import SecretStr

from xiva_source.redaction import register_secret
from xiva_source.xiva_api.errors import XivaAuthenticationError, XivaBadResponseError
from xiva_source.xiva_api.logs import logger

__all__ = ["Credentials", "TokenManager", "TokenPair", "decode_jwt_claims", "token_expiry"]

MAX_REFRESH_LEEWAY = 30.0
"""Refresh at most this many seconds before the access token expires..."""
LEEWAY_FRACTION = 0.2
"""...or earlier than ``20 %`` of its lifetime before, so short-lived tokens are not refreshed on
every request."""


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without checking its signature (Xiva checks it, not us).

    Returns:
        The claims, or ``{}`` when the token is not a decodable JWT (the client then relies on
        ``401`` responses to know when to refresh).
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_expiry(token: str) -> tuple[float | None, float | None]:
    """``(exp, iat)`` of a JWT as UNIX timestamps; ``None`` for a claim that is absent."""
    claims = decode_jwt_claims(token)

    def number(name: str) -> float | None:
        value = claims.get(name)
        return float(value) if isinstance(value, int | float) else None

    return number("exp"), number("iat")


@dataclass(frozen=True)
class Credentials:
    """A Xiva user name (or e-mail) and password."""

    username: str
    password: SecretStr = field(repr=False)

    def __post_init__(self) -> None:
        register_secret(self.password.get_secret_value())  # masked by value wherever echoed

    def login_body(self) -> dict[str, str]:
        """The body of ``POST /auth/jwt/create/``: ``email`` instead of ``username`` for e-mails."""
        key = "email" if "@" in self.username else "username"
        return {key: self.username, "password": self.password.get_secret_value()}


@dataclass(frozen=True)
class TokenPair:
    """An access token, the refresh token and when the access token should be renewed."""

    access: str = field(repr=False)
    refresh: str | None = field(repr=False)
    refresh_at: float | None
    """UNIX time after which the access token is refreshed; ``None``: only on a 401."""
    refresh_expires: float | None
    """UNIX time the refresh token expires (``None`` when unknown)."""

    def __post_init__(self) -> None:
        # Tokens as they are issued: masked by value from now on (the last 16 kept).
        register_secret(self.access, transient=True)
        register_secret(self.refresh, transient=True)

    @classmethod
    def from_tokens(
        cls, access: str, refresh: str | None, received: float | None = None
    ) -> TokenPair:
        """Build a pair, reading ``exp``/``iat`` from the tokens to plan the next refresh.

        Args:
            access: The access token.
            refresh: The refresh token, if any.
            received: When the tokens arrived, on this host's clock (UNIX time). With it, a
                token whose ``iat`` is far from then (Xiva's clock behind or ahead of ours) is
                timed by its lifetime from then (``exp - iat``), not by its ``exp`` read on
                this host's clock: one running behind (or ahead) would otherwise make every
                call refresh (or use a token Xiva already rejects).
        """
        exp, iat = token_expiry(access)
        refresh_at = None
        if exp is not None:
            lifetime = exp - iat if iat is not None and exp > iat else MAX_REFRESH_LEEWAY * 10
            refresh_at = _local(exp, iat, received) - min(
                MAX_REFRESH_LEEWAY, LEEWAY_FRACTION * lifetime
            )
        refresh_exp = None
        if refresh:
            exp, iat = token_expiry(refresh)
            refresh_exp = None if exp is None else _local(exp, iat, received)
        return cls(
            access=access, refresh=refresh, refresh_at=refresh_at, refresh_expires=refresh_exp
        )


CLOCKS_AGREE = 2.0
"""Seconds between a token's ``iat`` and its arrival within which Xiva's clock is taken to be
ours (``iat`` has whole seconds; the answer took some time): its times are used as they are."""


def _local(moment: float, iat: float | None, received: float | None) -> float:
    """A token's ``moment`` (on Xiva's clock) on this host's clock.

    When the token's ``iat`` is more than :data:`CLOCKS_AGREE` away from when it arrived, the
    clocks disagree: ``moment`` is moved by that offset, one second early (``iat`` drops the
    fraction of its second, so the token may be up to that much older than it says).
    """
    if iat is None or received is None or abs(received - iat) <= CLOCKS_AGREE:
        return moment
    return moment + (received - iat) - 1.0


LoginCall = Callable[[dict[str, str]], dict[str, Any]]
RefreshCall = Callable[[str], dict[str, Any]]


class TokenManager:
    """Holds the token pair and renews it: refresh when due, log in again when refresh is dead.

    Args:
        credentials: The user's credentials.
        login: Sends ``POST /auth/jwt/create/`` with the given body; returns the JSON answer.
        refresh: Sends ``POST /auth/jwt/refresh/`` with the refresh token; returns the JSON
            answer; raises :class:`XivaAuthenticationError` when the refresh token is rejected.
        clock: Wall-clock time (``exp`` is wall-clock), injectable for tests.
    """

    def __init__(
        self,
        credentials: Credentials,
        login: LoginCall,
        refresh: RefreshCall,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._login = login
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.RLock()
        self._pair: TokenPair | None = None

    def __repr__(self) -> str:
        state = "no token" if self._pair is None else "token held"
        return f"TokenManager(username={self._credentials.username!r}, {state})"

    def access_token(self) -> str:
        """A valid access token: the current one, or a refreshed or new one when it is due.

        Raises:
            XivaAuthenticationError: Xiva rejected the credentials.
            XivaError: The auth call failed otherwise (after the client's retries).
        """
        with self._lock:
            pair = self._pair
            if pair is None:
                return self._log_in().access
            if pair.refresh_at is not None and self._clock() >= pair.refresh_at:
                logger.info("Xiva access token expires soon; refreshing it")
                return self._renew(pair).access
            return pair.access

    def invalidate(self, rejected_access: str) -> None:
        """Xiva answered 401 to ``rejected_access``: renew it on the next :meth:`access_token`.

        A thread whose token was already replaced by another thread's renewal changes nothing,
        so N threads hitting one expiry refresh once.
        """
        with self._lock:
            if self._pair is not None and self._pair.access == rejected_access:
                logger.info("Xiva rejected the access token (401); renewing it")
                self._pair = TokenPair(
                    access=self._pair.access,
                    refresh=self._pair.refresh,
                    refresh_at=0.0,
                    refresh_expires=self._pair.refresh_expires,
                )

    def _renew(self, pair: TokenPair) -> TokenPair:
        dead = pair.refresh is None or (
            pair.refresh_expires is not None and self._clock() >= pair.refresh_expires
        )
        if not dead and pair.refresh is not None:
            try:
                answer = self._refresh(pair.refresh)
            except XivaAuthenticationError:
                logger.info("Xiva refresh token rejected; logging in again")
            else:
                access = _token_field(answer, "access", "auth_refresh")
                refresh = answer.get("refresh")
                if refresh:
                    self._pair = TokenPair.from_tokens(access, refresh, self._clock())
                else:  # the refresh token kept: its expiry stays as planned when it came
                    self._pair = replace(
                        TokenPair.from_tokens(access, None, self._clock()),
                        refresh=pair.refresh,
                        refresh_expires=pair.refresh_expires,
                    )
                return self._pair
        return self._log_in()

    def _log_in(self) -> TokenPair:
        logger.info("Logging in to Xiva as %r", self._credentials.username)
        answer = self._login(self._credentials.login_body())
        access = _token_field(answer, "access", "auth_create")
        refresh = answer.get("refresh")
        self._pair = TokenPair.from_tokens(
            access, refresh if isinstance(refresh, str) else None, self._clock()
        )
        return self._pair


def _token_field(answer: dict[str, Any], name: str, endpoint: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise XivaBadResponseError(
            f"Xiva's {endpoint} answer has no {name!r} token; check that XIVA_API_BASE_URL points "
            "at the Xiva API (ending in /api)."
        )
    return value
