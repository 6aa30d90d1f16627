"""Token logic without HTTP: JWT claims, refresh planning, the login body, renewal decisions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import SecretStr

from xiva_source.xiva_api.auth import (
    Credentials,
    TokenManager,
    TokenPair,
    decode_jwt_claims,
    token_expiry,
)
from xiva_source.xiva_api.errors import XivaAuthenticationError, XivaBadResponseError


def _jwt(claims: dict[str, object]) -> str:
    def enc(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'HS256'})}.{enc(claims)}.c2ln"


def test_decode_jwt_claims_without_signature_check() -> None:
    token = _jwt({"exp": 2000, "iat": 1000, "sub": "x"})
    assert decode_jwt_claims(token)["sub"] == "x"
    assert token_expiry(token) == (2000.0, 1000.0)
    assert decode_jwt_claims("not-a-jwt") == {}
    assert token_expiry("a.!!!.c") == (None, None)


def test_refresh_is_planned_shortly_before_expiry() -> None:
    long_lived = TokenPair.from_tokens(_jwt({"exp": 10_000, "iat": 10_000 - 3600}), None)
    assert long_lived.refresh_at == 10_000 - 30  # at most 30 s early
    short_lived = TokenPair.from_tokens(_jwt({"exp": 102, "iat": 100}), None)
    assert short_lived.refresh_at == pytest.approx(101.6)  # 20 % of a 2 s lifetime
    assert TokenPair.from_tokens("opaque", None).refresh_at is None  # rely on 401s
    assert "eyJ" not in repr(long_lived)


def test_tokens_are_timed_on_this_hosts_clock_whatever_xivas() -> None:
    # Xiva's clock 30 minutes behind ours: its tokens "expired" 25 minutes ago on our clock.
    now = 1_000_000.0
    access = _jwt({"exp": now - 1800 + 300, "iat": now - 1800})
    refresh = _jwt({"exp": now - 1800 + 86400, "iat": now - 1800})
    pair = TokenPair.from_tokens(access, refresh, received=now)
    # Refreshed near the end of its 5 minutes (one second early: iat drops its fraction).
    assert pair.refresh_at == now + 300 - 1 - 30
    assert pair.refresh_expires == now + 86400 - 1
    ahead = TokenPair.from_tokens(_jwt({"exp": now + 1800 + 300, "iat": now + 1800}), None, now)
    assert ahead.refresh_at == now + 300 - 1 - 30  # not 30 minutes after Xiva rejects it
    no_iat = TokenPair.from_tokens(_jwt({"exp": now + 300}), None, received=now)
    assert no_iat.refresh_at == now + 300 - 30  # only exp: taken as it is
    agreeing = TokenPair.from_tokens(_jwt({"exp": now + 301, "iat": now - 1}), None, now + 0.5)
    assert agreeing.refresh_at == now + 301 - 30  # the clocks agree: exp as it is


def test_login_body_uses_email_for_addresses() -> None:
    assert Credentials("jane", SecretStr("pw")).login_body() == {
        "username": "jane",
        "password": "pw",
    }
    assert Credentials("jane@x.test", SecretStr("pw")).login_body() == {
        "email": "jane@x.test",
        "password": "pw",
    }
    assert "pw" not in repr(Credentials("jane", SecretStr("pw")))


class FakeXiva:
    """The two auth calls as plain functions, with a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls: list[str] = []
        self.refresh_rejected = False
        self.serial = 0

    def pair(self) -> dict[str, Any]:
        self.serial += 1
        access = _jwt({"exp": self.now + 100, "iat": self.now, "n": self.serial})
        return {"access": access, "refresh": _jwt({"exp": self.now + 1000, "n": self.serial})}

    def login(self, body: dict[str, str]) -> dict[str, Any]:
        self.calls.append("login")
        return self.pair()

    def refresh(self, token: str) -> dict[str, Any]:
        self.calls.append("refresh")
        if self.refresh_rejected:
            raise XivaAuthenticationError("refresh token rejected", status=401)
        return {"access": self.pair()["access"]}

    def manager(self) -> TokenManager:
        creds = Credentials("jane", SecretStr("pw"))
        return TokenManager(creds, self.login, self.refresh, clock=lambda: self.now)


def test_the_token_is_refreshed_when_due_and_kept_until_then() -> None:
    xiva = FakeXiva()
    tokens = xiva.manager()
    first = tokens.access_token()
    assert tokens.access_token() == first and xiva.calls == ["login"]
    xiva.now += 100 - 20 + 0.1  # 20 % of a 100 s lifetime before exp
    assert tokens.access_token() != first
    assert xiva.calls == ["login", "refresh"]


def test_a_rejected_refresh_token_means_logging_in_again() -> None:
    xiva = FakeXiva()
    tokens = xiva.manager()
    tokens.access_token()
    xiva.refresh_rejected = True
    xiva.now += 95
    tokens.access_token()
    assert xiva.calls == ["login", "refresh", "login"]


def test_a_401_renews_once_however_many_threads_saw_it() -> None:
    xiva = FakeXiva()
    tokens = xiva.manager()
    rejected = tokens.access_token()
    tokens.invalidate(rejected)
    renewed = tokens.access_token()
    tokens.invalidate(rejected)  # another thread, same old token: already replaced
    assert tokens.access_token() == renewed
    assert xiva.calls == ["login", "refresh"]
    assert "eyJ" not in repr(tokens)


def test_an_answer_without_a_token_is_a_bad_response() -> None:
    creds = Credentials("jane", SecretStr("pw"))
    tokens = TokenManager(creds, lambda body: {"detail": "ok"}, lambda token: {})
    with pytest.raises(XivaBadResponseError, match="no 'access' token"):
        tokens.access_token()
