"""The one breaker (``xiva_source.breaker``), with an injected clock, and its two uses: the Xiva
client's circuit (raises when open) and the Redis users' breaker (falls back when open).

Redis really going down and coming back is in tests/xiva_source/faults/test_redis_down.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
import redis

from xiva_source.breaker import Breaker
from xiva_source.xiva_api.breaker import REDIS_RETRY_SECONDS, RedisBreaker
from xiva_source.xiva_api.circuit import CircuitBreaker
from xiva_source.xiva_api.errors import XivaCircuitOpenError

CLIENT_LOGGER = "xiva_source.xiva_api.client"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: FakeClock, failures: int = 3, cooldown: float = 10.0) -> Breaker:
    return Breaker(
        failures,
        cooldown,
        name="dwh",
        opened="%(name)s down after %(count)d (%(reason)s); %(cooldown).0f s",
        probing="probing %(name)s with %(call)s",
        closed="%(name)s back",
        clock=clock,
    )


def _raises(error: BaseException) -> Callable[[], int]:
    def action() -> int:
        raise error

    return action


# -- the state machine ------------------------------------------------------------------------


def test_closed_until_n_failures_in_a_row_then_refused_without_calling() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    for _ in range(2):
        assert breaker.admit()
        breaker.record_failure("OSError")
    breaker.record_success()  # an answer resets the count
    for _ in range(3):
        assert breaker.state == "closed"
        assert breaker.admit()
        breaker.record_failure("OSError")
    assert breaker.state == "open" and "open" in repr(breaker)
    assert not breaker.admit()
    assert breaker.retry_in() == pytest.approx(10.0)
    calls: list[str] = []

    def action() -> int:
        calls.append("x")
        return 1

    assert breaker.call(action, fallback=lambda: 0) == 0
    assert calls == []  # refused: the action never ran


def test_half_open_admits_one_probe_and_its_success_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1)
    with caplog.at_level(logging.WARNING, logger="xiva_source.breaker"):
        breaker.record_failure("ConnectionError")
        clock.now += 9.9
        assert breaker.state == "open" and not breaker.admit()
        clock.now += 0.2
        assert breaker.state == "half-open" and breaker.retry_in() == 0.0
        assert breaker.admit("read 1")  # the probe
        assert not breaker.admit("read 2")  # the others are refused while it is out
        breaker.record_success()
        assert breaker.state == "closed"
        assert breaker.admit() and breaker.admit()
    assert caplog.messages == [
        "dwh down after 1 (ConnectionError); 10 s",
        "probing dwh with read 1",
        "dwh back",
    ]


def test_a_failed_probe_reopens_for_a_new_cool_down_without_a_second_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=2)
    with caplog.at_level(logging.WARNING, logger="xiva_source.breaker"):
        breaker.record_failure("ConnectionError")
        breaker.record_failure("ConnectionError")
        clock.now += 11
        assert breaker.admit("probe")
        breaker.record_failure("TimeoutError")
        assert breaker.state == "open" and breaker.last_error == "TimeoutError"
        clock.now += 9
        assert not breaker.admit()
        clock.now += 2
        assert breaker.admit("probe")  # the next probe
    assert [m for m in caplog.messages if "down" in m] == [
        "dwh down after 2 (ConnectionError); 10 s"
    ]


def test_one_warning_per_outage_and_a_new_outage_warns_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = Breaker(
        1, 5.0, name="redis", opened="down (%(reason)s) %(cooldown).0f", closed="back", clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="xiva_source.breaker"):
        assert breaker.call(lambda: 1, fallback=lambda: 0) == 1
        for _ in range(5):  # refused or failing: still the same outage
            assert breaker.call(_raises(redis.ConnectionError("refused")), fallback=lambda: 0) == 0
        clock.now += 6
        assert breaker.call(lambda: 2, fallback=lambda: 0) == 2  # the probe answers
        assert breaker.state == "closed"
        breaker.call(_raises(redis.ConnectionError("refused")), fallback=lambda: 0)
    assert caplog.messages == ["down (ConnectionError) 5", "back", "down (ConnectionError) 5"]


def test_failures_of_calls_let_through_before_it_opened_do_not_extend_the_cool_down() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1, cooldown=10.0)
    breaker.record_failure("ConnectionError")
    clock.now += 8
    breaker.record_failure("ConnectionError")  # sent before the breaker opened
    clock.now += 3
    assert breaker.state == "half-open"


def test_an_abandoned_probe_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1, cooldown=1.0)
    breaker.record_failure("ConnectionError")
    clock.now += 2
    assert breaker.admit()
    breaker.abandon()
    assert breaker.admit()  # another probe may go


def test_call_lets_other_errors_through_and_frees_the_probe() -> None:
    clock = FakeClock()
    breaker = Breaker(1, 1.0, clock=clock, counts_as_failure=lambda e: isinstance(e, OSError))
    with pytest.raises(KeyError):
        breaker.call(_raises(KeyError("a bug")), fallback=lambda: 0)
    assert breaker.state == "closed"
    assert breaker.call(_raises(OSError("down")), fallback=lambda: 0) == 0
    clock.now += 2
    with pytest.raises(KeyError):
        breaker.call(_raises(KeyError("a bug")), fallback=lambda: 0)  # the probe
    assert breaker.state == "half-open"
    assert breaker.call(lambda: 5, fallback=lambda: 0) == 5  # a new probe went


def test_a_call_let_through_before_it_opened_does_not_free_a_later_probe() -> None:
    clock = FakeClock()
    breaker = Breaker(1, 1.0, clock=clock, counts_as_failure=lambda e: isinstance(e, OSError))

    def slow_call_that_ends_in_a_bug() -> int:
        breaker.record_failure("OSError")  # meanwhile another call failed: open
        clock.now += 2
        assert breaker.admit()  # and another thread's probe went out
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        breaker.call(slow_call_that_ends_in_a_bug, fallback=lambda: 0)
    assert not breaker.admit()  # that probe is still the only one


def test_threads_share_one_breaker_one_probe_one_warning_no_lost_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = Breaker(4000, 10.0, opened="open after %(count)d", clock=clock)
    start = threading.Barrier(8)

    def fail() -> None:
        start.wait()
        for _ in range(500):
            breaker.record_failure("OSError")

    with caplog.at_level(logging.WARNING, logger="xiva_source.breaker"):
        threads = [threading.Thread(target=fail) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert breaker.state == "open" and "failures=4000/4000" in repr(breaker)
    assert caplog.messages == ["open after 4000"]

    clock.now += 11
    admitted: list[bool] = []
    lock = threading.Lock()

    def probe() -> None:
        start.wait()
        ok = breaker.admit()
        with lock:
            admitted.append(ok)

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(admitted) == [False] * 7 + [True]  # exactly one probe


# -- use 1: the Redis users' breaker (fallback while open) --------------------------------------


def test_redis_a_failure_skips_redis_for_the_retry_period_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = RedisBreaker("Redis gone (%(reason)s); skipped for %(cooldown).0f s", clock=clock)
    calls: list[str] = []

    def action() -> str:
        calls.append("redis")
        raise redis.ConnectionError("refused")

    with caplog.at_level(logging.WARNING, logger=CLIENT_LOGGER):
        assert breaker.call(action, fallback=lambda: "local") == "local"
        assert breaker.state == "open" and "open" in repr(breaker)
        clock.now += REDIS_RETRY_SECONDS - 1
        assert breaker.call(action, fallback=lambda: "local") == "local"
        assert calls == ["redis"]  # Redis left alone while open
        clock.now += 2
        assert breaker.call(action, fallback=lambda: "local") == "local"  # tried again, failed
    assert calls == ["redis", "redis"]
    assert caplog.messages == [
        f"Redis gone (ConnectionError); skipped for {REDIS_RETRY_SECONDS:.0f} s"
    ]


def test_redis_recovery_closes_the_breaker_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker = RedisBreaker(
        "down (%(reason)s) %(cooldown).0f", recovered="back", retry_seconds=5, clock=clock
    )
    with caplog.at_level(logging.WARNING, logger=CLIENT_LOGGER):
        assert breaker.call(lambda: 1, fallback=lambda: 0) == 1
        breaker.call(_raises(redis.ConnectionError("refused")), fallback=lambda: 0)
        clock.now += 6
        assert breaker.call(lambda: 2, fallback=lambda: 0) == 2
        assert breaker.state == "closed"
        assert breaker.call(lambda: 3, fallback=lambda: 0) == 3
        breaker.call(_raises(redis.ConnectionError("refused")), fallback=lambda: 0)  # warns again
    assert caplog.messages == ["down (ConnectionError) 5", "back", "down (ConnectionError) 5"]


def test_redis_other_errors_are_not_swallowed() -> None:
    breaker = RedisBreaker("down (%(reason)s) %(cooldown).0f")
    with pytest.raises(KeyError):
        breaker.call(_raises(KeyError("not a Redis failure")), fallback=lambda: 0)
    assert breaker.state == "closed"


# -- use 2: the Xiva client's circuit (raises while open) ---------------------------------------


def test_circuit_opens_after_n_failures_in_a_row_and_fails_calls_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 30.0, name="http://xiva/api", clock=clock)
    with caplog.at_level(logging.INFO, logger=CLIENT_LOGGER):
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
    assert caplog.messages == [
        "Xiva circuit open: http://xiva/api gave no response to 3 calls in a row "
        "(ConnectionError); calls fail at once for 30 s"
    ]
    with pytest.raises(XivaCircuitOpenError) as info:
        breaker.before_call("customer_360")
    message = str(info.value)
    assert "http://xiva/api gave no response to 3 calls in a row" in message
    assert "ConnectionError" in message and "30 s more" in message
    assert "XIVA_BREAKER_FAILURES" in message  # the fix, once


def test_circuit_half_open_lets_one_probe_through_and_its_answer_closes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.record_failure("ConnectionError")
    clock.now += 9.9
    assert breaker.state == "open"
    clock.now += 0.2
    assert breaker.state == "half-open"
    with caplog.at_level(logging.INFO, logger=CLIENT_LOGGER):
        breaker.before_call("auth_create")  # the probe
        with pytest.raises(XivaCircuitOpenError):
            breaker.before_call("customer_360")  # others still fail while the probe is out
        breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call("customer_360")
    assert caplog.messages == [
        "Xiva circuit half-open: probing Xiva with auth_create",
        "Xiva circuit closed: Xiva answers again",
    ]


def test_circuit_a_failed_probe_opens_it_for_a_new_cool_down() -> None:
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
