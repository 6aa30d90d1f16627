"""XivaClient against the simulator over HTTP: retries, Retry-After, errors, 360 views."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.errors import ConfigurationError
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import (
    XivaConnectionError,
    XivaError,
    XivaNotFoundError,
    XivaRateLimitError,
    XivaRetryBudgetError,
    XivaServerError,
)


def _client(sim: XivaSimulator, **kwargs: object) -> XivaClient:
    return XivaClient(sim.base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0, **kwargs)  # type: ignore[arg-type]


def _detail_log(sim: XivaSimulator) -> list[tuple[float, object]]:
    return [(r.at, r.status) for r in sim.request_log() if r.endpoint == "customer_detail"]


@pytest.fixture
def logged_in(sim: XivaSimulator) -> XivaClient:
    """A client that has already logged in (so the log holds only the calls under test)."""
    client = _client(sim)
    client.get_customer(sim.customer_ids()[0])
    sim.reset_counters()
    return client


@pytest.mark.parametrize("style", ["seconds", "http_date"])
def test_retry_after_is_honoured_and_never_undercut(
    sim: XivaSimulator, logged_in: XivaClient, style: Any
) -> None:
    sim.set_faults(FaultConfig(kinds=("429",), count=1, retry_after=style, retry_after_seconds=1))
    cid = sim.customer_ids()[5]
    assert logged_in.get_customer(cid)["id"] == cid
    (t429, s429), (t_ok, s_ok) = _detail_log(sim)
    assert (s429, s_ok) == (429, 200)
    assert t_ok - t429 >= 1.0  # no request before Retry-After passed
    assert t_ok - t429 < 2.5
    usage = logged_in.usage().by_endpoint["customer_detail"]
    assert (usage.throttled, usage.retries) == (1, 1)


@pytest.mark.parametrize("style", ["zero", "missing"])
def test_retry_after_zero_or_missing_backs_off_with_jitter(
    sim: XivaSimulator, logged_in: XivaClient, style: Any
) -> None:
    sim.set_faults(FaultConfig(kinds=("503",), count=2, retry_after=style))
    cid = sim.customer_ids()[6]
    assert logged_in.get_customer(cid)["id"] == cid
    log = _detail_log(sim)
    assert [s for _, s in log] == [503, 503, 200]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(log)]
    assert all(g < 1.5 for g in gaps)  # backoff ceilings 0.5 s then 1 s, not a fixed second


def test_retry_after_above_the_maximum_fails_fast(
    sim: XivaSimulator, logged_in: XivaClient
) -> None:
    client = _client(sim, max_retry_after=5)
    sim.set_faults(FaultConfig(kinds=("429",), retry_after_seconds=3600, paths={"customer_detail"}))
    started = time.monotonic()
    with pytest.raises(XivaRateLimitError) as info:
        client.get_customer(sim.customer_ids()[0])
    # One request and no wait for the announced hour (a bound a loaded machine cannot break).
    assert time.monotonic() - started < 60.0
    assert info.value.retry_after == 3600 and info.value.status == 429
    assert "exceeds XIVA_MAX_RETRY_AFTER=5" in str(info.value)
    assert "XIVA_REQUESTS_PER_SECOND" in str(info.value)
    assert [s for _, s in _detail_log(sim)] == [429]


def test_exhausted_budget_fails_fast_with_the_last_error(
    sim: XivaSimulator, logged_in: XivaClient
) -> None:
    # Retry-After 3 s against a 5.9 s budget: one wait fits (whatever the first answer's latency
    # up to 2.9 s on a loaded machine), a second never does (6 s of waits alone).
    client = _client(sim, retry_budget=5.9)
    sim.set_faults(FaultConfig(kinds=("503",), retry_after_seconds=3, paths={"customer_detail"}))
    with pytest.raises(XivaRetryBudgetError) as info:
        client.get_customer(sim.customer_ids()[0])
    # Waited once (Retry-After 3 s, counted from the answer's whole-second Date: 2-3 s between
    # the two requests, as the simulator saw them), then saw the next wait would overrun: two
    # requests, not three.
    log = _detail_log(sim)
    assert [s for _, s in log] == [503, 503]
    assert log[1][0] - log[0][0] >= 2.0
    assert isinstance(info.value.last_error, XivaServerError)
    assert info.value.status == 503 and "XIVA_RETRY_BUDGET=5.9" in str(info.value)
    assert client.usage().by_endpoint["customer_detail"].errors == 1


def test_html_gateway_error_is_retried_then_reported_with_a_short_excerpt(
    sim: XivaSimulator, logged_in: XivaClient
) -> None:
    sim.set_faults(FaultConfig(kinds=("502_html",), count=1))
    cid = sim.customer_ids()[1]
    assert logged_in.get_customer(cid)["id"] == cid  # one 502 page, then success

    client = _client(sim, max_attempts=2)
    sim.set_faults(FaultConfig(kinds=("502_html",), paths={"customer_detail"}))
    with pytest.raises(XivaRetryBudgetError) as info:
        client.get_customer(cid)
    last = info.value.last_error
    assert isinstance(last, XivaServerError) and last.status == 502
    assert "HTML error page" in str(last)
    assert last.body is not None and len(last.body) <= 200 and "<" not in last.body


def test_dropped_connection_and_slow_response_are_retried(
    sim: XivaSimulator, logged_in: XivaClient
) -> None:
    cid = sim.customer_ids()[2]
    sim.set_faults(FaultConfig(kinds=("drop",), count=1))
    assert logged_in.get_customer(cid)["id"] == cid
    assert [s for _, s in _detail_log(sim)] == ["drop", 200]

    sim.reset_counters()
    client = _client(sim, timeout=0.3)
    client.get_customer(cid)  # log in first, so the fault hits customer_detail
    sim.set_faults(FaultConfig(kinds=("slow",), count=1, slow_seconds=1.0))
    assert client.get_customer(cid)["id"] == cid
    assert client.usage().by_endpoint["customer_detail"].retries == 1


def test_unreachable_server_is_a_connection_error(sim: XivaSimulator) -> None:
    client = XivaClient(
        "http://127.0.0.1:9/api", SIM_USER, SIM_PASSWORD, retry_budget=0.5, max_attempts=2
    )
    with pytest.raises(XivaRetryBudgetError) as info:
        client.get_customer("x")
    assert isinstance(info.value.last_error, XivaConnectionError)
    assert "check XIVA_API_BASE_URL" in str(info.value)


def test_unknown_customer_is_not_found(sim: XivaSimulator, logged_in: XivaClient) -> None:
    with pytest.raises(XivaNotFoundError) as info:
        logged_in.get_customer("no-such-customer")
    assert info.value.status == 404 and "no-such-customer" in (info.value.url or "")
    with pytest.raises(XivaNotFoundError):
        logged_in.get_customer_360("no-such-customer")
    assert [s for _, s in _detail_log(sim)] == [404]  # not retried


def test_get_customer_and_360_match_the_simulator(
    sim: XivaSimulator, logged_in: XivaClient
) -> None:
    cid = sim.customer_ids()[42]
    assert logged_in.get_customer(cid) == sim.customer(cid)
    assert logged_in.get_customer_360(cid) == sim.view_360(cid)
    assert logged_in.get_customer_360_part(cid, "financial") == sim.view_360(cid)["financial"]
    with pytest.raises(ValueError, match="unknown 360 part"):
        logged_in.get_customer_360_part(cid, "secrets")


def test_iter_customers_360_fetches_concurrently_through_faults(
    sim: XivaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A drop (1 call in 15 here) gets no response at all: with the default 3 attempts one of
    # the 120 customers loses all three about once in 30 runs, and which calls draw the faults
    # depends on the threads' order. Eight attempts (and a breaker that needs 20 silent calls in
    # a row) make that about once in 100,000 runs; what is checked stays the same.
    monkeypatch.setenv("XIVA_CONNECT_ATTEMPTS", "8")
    monkeypatch.setenv("XIVA_BREAKER_FAILURES", "20")
    ids = sim.customer_ids()[:120]
    client = _client(sim, max_workers=6)
    client.get_customer(ids[0])
    sim.set_faults(FaultConfig(rate=0.2, kinds=("429", "503", "drop"), retry_after="zero", seed=3))
    results = dict(client.iter_customers_360(iter([*ids, "missing-id"])))
    sim.clear_faults()
    assert set(results) == {*ids, "missing-id"}
    assert isinstance(results["missing-id"], XivaNotFoundError)
    views = {k: v for k, v in results.items() if k != "missing-id"}
    assert all(isinstance(v, dict) and v == sim.view_360(k) for k, v in views.items())
    assert client.usage().by_endpoint["customer_360"].retries > 0


def test_closed_client_refuses_calls(sim: XivaSimulator) -> None:
    with _client(sim) as client:
        pass
    with pytest.raises(XivaError, match="closed"):
        client.get_customer("x")
    client.close()  # idempotent


def test_wrong_base_url_says_so(sim: XivaSimulator) -> None:
    client = XivaClient(sim.root_url, SIM_USER, SIM_PASSWORD, requests_per_second=0)
    with pytest.raises(XivaNotFoundError) as info:
        client.get_customer("x")  # the API lives under /api
    assert info.value.status == 404
    assert "XIVA_API_BASE_URL must be the API root" in str(info.value)


def test_retry_after_pauses_every_thread_of_the_client(sim: XivaSimulator) -> None:
    ids = sim.customer_ids()[:40]
    client = _client(sim, max_workers=4)
    client.get_customer(ids[0])
    sim.reset_counters()
    sim.set_faults(FaultConfig(kinds=("429",), count=1, retry_after_seconds=1))
    results = dict(client.iter_customers_360(ids))
    assert all(isinstance(v, dict) for v in results.values())
    log = sim.request_log()
    (t429,) = [r.at for r in log if r.status == 429]
    # Requests already in flight may land just after the 429; none is sent during the wait.
    assert not [r for r in log if t429 + 0.1 < r.at < t429 + 1.0]
    assert len(log) == 41


def test_settings_precedence_and_a_bad_redis_url(
    xiva_env: XivaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XIVA_TIMEOUT", "7")
    monkeypatch.setenv("XIVA_MAX_RETRY_AFTER", "9")
    client = XivaClient(timeout=3, requests_per_second=0)
    assert (client.timeout, client.retry_policy.max_retry_after) == (3, 9)  # kwarg > env
    assert client.base_url == xiva_env.base_url and client.username == SIM_USER
    with pytest.raises(ConfigurationError, match="is not a Redis URL") as info:
        XivaClient(redis_url="http://admin:hunter2@cache:6379")
    assert "hunter2" not in str(info.value)
    assert info.value.setting == "REDIS_URL" and info.value.exit_code == 2
