"""CircuitBreaker: opens after consecutive connection failures, half-opens after a cool-down
(injected clock, no network)."""

from __future__ import annotations

import pytest

from xiva_source.xiva_api.circuit import CircuitBreaker
from xiva_source.xiva_api.errors import XivaCircuitOpenError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_failures_in_a_row_and_fails_calls_at_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 30.0, name="http://xiva/api", clock=clock)
    for _ in range(2):
        breaker.before_call("customer_360")
        breaker.record_failure("ConnectionError")
    breaker.before_call("customer_360")
    breaker.record_success()  # an answer resets the count
    for _ in range(3):
        assert breaker.state == "closed"
        breaker.before_call("customer_360")
        breaker.record_failure("ConnectionError")
    assert breaker.state == "open" and "open" in repr(breaker)
    with pytest.raises(XivaCircuitOpenError) as info:
        breaker.before_call("customer_360")
    message = str(info.value)
    assert "http://xiva/api gave no response to 3 calls in a row" in message
    assert "ConnectionError" in message and "30 s more" in message
    assert "XIVA_BREAKER_FAILURES" in message  # the fix, once


def test_half_open_lets_one_probe_through_and_its_answer_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.record_failure("ConnectionError")
    clock.now += 9.9
    assert breaker.state == "open"
    clock.now += 0.2
    assert breaker.state == "half-open"
    breaker.before_call("auth_create")  # the probe
    with pytest.raises(XivaCircuitOpenError):
        breaker.before_call("customer_360")  # others still fail while the probe is out
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call("customer_360")


def test_a_failed_probe_opens_it_for_a_new_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    breaker.record_failure("ConnectionError")
    breaker.record_failure("ConnectionError")
    clock.now += 11
    breaker.before_call("customer_list")
    breaker.record_failure("ConnectTimeout")
    assert breaker.state == "open"
    clock.now += 9
    with pytest.raises(XivaCircuitOpenError, match="ConnectTimeout"):
        breaker.before_call("customer_list")
    clock.now += 2
    breaker.before_call("customer_list")  # the next probe


def test_an_abandoned_probe_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    breaker.record_failure("ConnectionError")
    clock.now += 2
    breaker.before_call("customer_list")
    breaker.abandon()
    breaker.before_call("customer_list")  # another probe may go


def test_failures_of_calls_already_in_flight_do_not_extend_the_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.record_failure("ConnectionError")
    clock.now += 8
    breaker.record_failure("ConnectionError")  # sent before the breaker opened
    clock.now += 3
    assert breaker.state == "half-open"
