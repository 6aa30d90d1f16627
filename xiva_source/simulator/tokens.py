"""JWTs as djoser / SimpleJWT issue them: HS256, with ``exp``, ``sub``, ``type`` and ``jti``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from .errors import TokenRejectedError

__all__ = ["TokenIssuer", "TokenType"]

TokenType = Literal["access", "refresh"]

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and verifies the simulator's tokens. Thread-safe.

    Access tokens are stateless (signature + ``exp``); refresh tokens are also checked against a
    revocation list, so ``revoke_all_refresh`` kills every refresh token issued so far.

    Args:
        secret: HMAC-SHA256 key.
        access_lifetime: Seconds an access token lives.
        refresh_lifetime: Seconds a refresh token lives.
        rotate: Refreshing returns a new refresh token and revokes the presented one.
        clock: The simulated Xiva's wall clock (UNIX time): ``iat``, ``exp`` and their checks.
    """

    def __init__(
        self,
        secret: bytes,
        access_lifetime: float,
        refresh_lifetime: float,
        rotate: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._secret = secret
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.rotate = rotate
        self._lock = threading.Lock()
        self._live_refresh: set[str] = set()
        self._revoked: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"TokenIssuer(access_lifetime={self.access_lifetime}, "
            f"refresh_lifetime={self.refresh_lifetime}, rotate={self.rotate})"
        )

    def _encode(self, user: str, token_type: TokenType, lifetime: float) -> tuple[str, str]:
        now = self._clock()
        jti = uuid.uuid4().hex
        payload = {
            "token_type": token_type,
            "type": token_type,
            "exp": math.ceil(now + lifetime),
            "iat": int(now),
            "jti": jti,
            "sub": user,
            "user_id": user,
        }
        body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{_HEADER}.{body}".encode()
        signature = hmac.new(self._secret, signing_input, hashlib.sha256).digest()
        return f"{_HEADER}.{body}.{_b64encode(signature)}", jti

    def issue_pair(self, user: str) -> dict[str, str]:
        """A new ``{"access", "refresh"}`` pair for ``user``."""
        refresh, jti = self._encode(user, "refresh", self.refresh_lifetime)
        with self._lock:
            self._live_refresh.add(jti)
        return {"access": self._encode(user, "access", self.access_lifetime)[0], "refresh": refresh}

    def decode(self, token: str, expected: TokenType) -> dict[str, Any]:
        """Verify a token's signature, expiry, type (and revocation, for refresh tokens).

        Returns:
            The payload.

        Raises:
            TokenRejectedError: the token is malformed, forged, expired, revoked or of another type.
        """
        try:
            header, body, signature = token.split(".")
            expected_signature = hmac.new(
                self._secret, f"{header}.{body}".encode(), hashlib.sha256
            ).digest()
            signature_ok = hmac.compare_digest(_b64decode(signature), expected_signature)
            payload: dict[str, Any] = json.loads(_b64decode(body))
        except (ValueError, UnicodeDecodeError) as e:  # binascii.Error is a ValueError
            raise TokenRejectedError("malformed token") from e
        if not signature_ok or not isinstance(payload, dict):
            raise TokenRejectedError("bad signature")
        if payload.get("type") != expected:
            raise TokenRejectedError(f"not an {expected} token")
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or self._clock() >= exp:
            raise TokenRejectedError("token expired")
        if expected == "refresh":
            with self._lock:
                if payload.get("jti") in self._revoked:
                    raise TokenRejectedError("token revoked")
        return payload

    def refresh(self, token: str) -> dict[str, str]:
        """Exchange a refresh token for a new access token (and a new refresh token if rotating).

        Raises:
            TokenRejectedError: the refresh token is not valid.
        """
        payload = self.decode(token, "refresh")
        user = str(payload["sub"])
        if not self.rotate:
            return {"access": self._encode(user, "access", self.access_lifetime)[0]}
        with self._lock:
            self._revoked.add(str(payload["jti"]))
            self._live_refresh.discard(str(payload["jti"]))
        return self.issue_pair(user)

    def revoke_all_refresh(self) -> None:
        """Kill every refresh token issued so far (a password change, a logout everywhere)."""
        with self._lock:
            self._revoked |= self._live_refresh
            self._live_refresh = set()

    def forget_revocations(self) -> None:
        """Drop the revocation list (part of ``sim.reset()``)."""
        with self._lock:
            self._revoked = set()
