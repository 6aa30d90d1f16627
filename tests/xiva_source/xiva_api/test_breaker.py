"""RedisBreaker: skip Redis for 30 s after a failure, one warning per outage (no Redis needed)."""

from __future__ import annotations

import logging

import pytest
import redis

from xiva_source.xiva_api.breaker import REDIS_RETRY_SECONDS, RedisBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _down() -> int:
    raise redis.ConnectionError("refused")


def test_a_failure_skips_redis_for_the_retry_period_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = RedisBreaker("Redis gone (%s); skipped for %.0f s", clock=clock)
    calls: list[str] = []

    def action() -> str:
        calls.append("redis")
        raise redis.ConnectionError("refused")

    with caplog.at_level(logging.WARNING, logger="xiva_source.xiva_api.client"):
        assert breaker.call(action, fallback=lambda: "local") == "local"
        assert breaker.is_open and "open" in repr(breaker)
        clock.now += REDIS_RETRY_SECONDS - 1
        assert breaker.call(action, fallback=lambda: "local") == "local"
        assert calls == ["redis"]  # Redis left alone while open
        clock.now += 2
        assert breaker.call(action, fallback=lambda: "local") == "local"  # tried again, failed
    assert calls == ["redis", "redis"]
    assert caplog.messages == [
        f"Redis gone (ConnectionError); skipped for {REDIS_RETRY_SECONDS:.0f} s"
    ]


def test_recovery_closes_the_breaker_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker = RedisBreaker("down (%s) %.0f", recovered="back", retry_seconds=5, clock=clock)
    with caplog.at_level(logging.WARNING, logger="xiva_source.xiva_api.client"):
        assert breaker.call(lambda: 1, fallback=lambda: 0) == 1
        breaker.call(_down, fallback=lambda: 0)
        clock.now += 6
        assert breaker.call(lambda: 2, fallback=lambda: 0) == 2
        assert not breaker.is_open
        assert breaker.call(lambda: 3, fallback=lambda: 0) == 3
        breaker.call(_down, fallback=lambda: 0)  # a new outage warns again
    assert caplog.messages == ["down (ConnectionError) 5", "back", "down (ConnectionError) 5"]


def test_other_errors_are_not_swallowed() -> None:
    breaker = RedisBreaker("down (%s) %.0f")

    def bug() -> int:
        raise KeyError("not a Redis failure")

    with pytest.raises(KeyError):
        breaker.call(bug, fallback=lambda: 0)
    assert not breaker.is_open
