"""Authentication against the simulator: refresh before expiry, 401 renewal, re-login, threads.

The pure token logic (JWT decoding, refresh planning, the login body) is in test_tokens.py."""

from __future__ import annotations

import time

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import SimulatorConfig, XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaAuthenticationError, XivaNotConfiguredError


def _client(sim: XivaSimulator, **kwargs: object) -> XivaClient:
    return XivaClient(sim.base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0, **kwargs)  # type: ignore[arg-type]


def _auth_calls(sim: XivaSimulator, endpoint: str) -> dict[object, int]:
    return dict(sim.counters()["by_endpoint"].get(endpoint, {}))


def test_no_credentials_fails_with_the_exact_message_and_sends_nothing(
    sim: XivaSimulator,
) -> None:
    client = XivaClient(sim.base_url)  # the environment is cleared by the conftest
    with pytest.raises(XivaNotConfiguredError) as info:
        client.get_customer("anything")
    assert str(info.value) == (
        "Not authenticated. Please configure XIVA_API_USERNAME and XIVA_API_PASSWORD"
    )
    assert isinstance(info.value, XivaAuthenticationError)
    with pytest.raises(XivaNotConfiguredError):
        next(client.iter_customers())
    assert sim.counters()["total"] == 0


def test_wrong_password_is_a_clear_authentication_error(sim: XivaSimulator) -> None:
    client = XivaClient(sim.base_url, SIM_USER, "wrong-password", requests_per_second=0)
    with pytest.raises(XivaAuthenticationError) as info:
        client.get_customer(sim.customer_ids()[0])
    message = str(info.value)
    assert info.value.status == 401
    assert f"Xiva rejected the credentials of user {SIM_USER!r}" in message
    assert "XIVA_API_USERNAME and XIVA_API_PASSWORD" in message
    assert "No active account" in message  # Xiva's own reason, excerpted
    assert "wrong-password" not in message
    assert _auth_calls(sim, "auth_create") == {401: 1}  # not retried: retrying cannot help


def test_email_user_logs_in_with_the_email_field(sim: XivaSimulator) -> None:
    sim.add_user("ops@loyalty.test", "mail-Pa55")
    client = XivaClient(sim.base_url, "ops@loyalty.test", "mail-Pa55", requests_per_second=0)
    cid = sim.customer_ids()[0]
    assert client.get_customer(cid)["id"] == cid


def test_env_settings_configure_the_client(xiva_env: XivaSimulator) -> None:
    with XivaClient(requests_per_second=0) as client:
        cid = xiva_env.customer_ids()[3]
        assert client.get_customer(cid)["id"] == cid
        assert repr(client) == f"XivaClient(base_url={xiva_env.base_url!r}, username={SIM_USER!r})"


def test_token_expiring_mid_run_is_refreshed_before_expiry(sim: XivaSimulator) -> None:
    # 3 s tokens (3-4 s with rounding): a loaded machine's stalls stay well inside one.
    sim.set_token_lifetimes(access=3.0)
    ids = sim.customer_ids()
    client = _client(sim)
    deadline = time.monotonic() + 8.5  # outlives at least one access token
    while time.monotonic() < deadline:
        client.get_customer(ids[0])
        time.sleep(0.1)
    assert _auth_calls(sim, "auth_create") == {200: 1}
    assert _auth_calls(sim, "auth_refresh").get(200, 0) >= 1
    assert 401 not in _auth_calls(sim, "customer_detail")  # refreshed proactively from `exp`


def test_dead_refresh_token_means_logging_in_again(sim: XivaSimulator) -> None:
    sim.set_token_lifetimes(access=3.0)
    ids = sim.customer_ids()
    client = _client(sim)
    client.get_customer(ids[0])
    sim.revoke_refresh_tokens()
    deadline = time.monotonic() + 8.5  # the access token (3-4 s) expires meanwhile
    while time.monotonic() < deadline:
        assert client.get_customer(ids[1])["id"] == ids[1]
        time.sleep(0.1)
    assert _auth_calls(sim, "auth_refresh").get(401) == 1  # the revoked one; later ones are new
    assert _auth_calls(sim, "auth_create") == {200: 2}
    assert 401 not in _auth_calls(sim, "customer_detail")
    assert client.usage().by_endpoint["auth_refresh"].errors == 1


def test_rejected_access_token_is_renewed_once_then_retried(sim: XivaSimulator) -> None:
    """A server with a new signing key (restarted) rejects both tokens: 401, re-login, retry."""
    ids = sim.customer_ids()[:3]
    client = _client(sim)
    client.get_customer(ids[0])
    with XivaSimulator(
        SimulatorConfig(customers=3, seed=7, users={SIM_USER: SIM_PASSWORD})
    ) as other:
        client.base_url = other.base_url  # same user, but tokens signed by another key
        assert client.get_customer(other.customer_ids()[0])["id"] == other.customer_ids()[0]
        by_endpoint = other.counters()["by_endpoint"]
        assert by_endpoint["customer_detail"] == {401: 1, 200: 1}
        assert by_endpoint["auth_refresh"] == {401: 1}
        assert by_endpoint["auth_create"] == {200: 1}


def test_many_threads_share_one_refresh(sim: XivaSimulator) -> None:
    sim.set_token_lifetimes(access=1.0)
    ids = sim.customer_ids()[:60]
    client = _client(sim, max_workers=8)
    client.get_customer(ids[0])
    time.sleep(2.05)  # the access token (1-2 s) is due for refresh
    started = time.monotonic()
    results = dict(client.iter_customers_360(ids))
    lifetimes = time.monotonic() - started  # a loaded machine's fetches span several tokens
    assert all(isinstance(v, dict) for v in results.values()) and len(results) == 60
    # One login and about one refresh per expiry (the access token lives 1 s), not one per
    # thread (8) or per request (60).
    assert _auth_calls(sim, "auth_create") == {200: 1}
    assert sum(_auth_calls(sim, "auth_refresh").values()) <= 2 + int(lifetimes)
