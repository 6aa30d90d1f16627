"""The Redis of the shared rate and usage counters stopped under a working Xiva client: the breaker
leaves it alone with one warning, the client keeps calling Xiva and counting its own calls, and
Redis is used again after the cool-down once it is back (a private ``redis-server`` killed and
restarted; the state machine itself is tested in tests/xiva_source/test_breaker.py)."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from tests.support.xiva_source.faults import PrivateRedis
from xiva_source.redis_client import connect_redis
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.breaker import REDIS_RETRY_SECONDS, RedisBreaker
from xiva_source.xiva_api.client import XivaClient

CLIENT_LOGGER = "xiva_source.xiva_api.client"


def test_a_stopped_redis_is_left_alone_then_used_again_after_the_cool_down(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]  # the breaker's monotonic clock, moved by the test
    client = connect_redis(private_redis.url, fail_fast=True)
    breaker = RedisBreaker(
        "counter down (%(reason)s) for %(cooldown).0f s",
        recovered="counter back",
        clock=lambda: now[0],
    )

    def count() -> int:
        return int(client.incr("n"))  # type: ignore[arg-type]

    def local() -> None:
        return None

    assert breaker.call(count, fallback=local) == 1
    private_redis.kill()
    with caplog.at_level(logging.WARNING, logger=CLIENT_LOGGER):
        started = time.monotonic()
        assert [breaker.call(count, fallback=local) for _ in range(20)] == [None] * 20
        assert time.monotonic() - started < 1.0  # one refused connection, then nothing
        assert breaker.state == "open"

        private_redis.start()  # back (empty), but the cool-down is not over
        assert breaker.call(count, fallback=local) is None
        now[0] += REDIS_RETRY_SECONDS + 1
        assert breaker.call(count, fallback=local) == 1  # the probe reached the new Redis
        assert breaker.state == "closed"
        assert breaker.call(count, fallback=local) == 2
    assert caplog.messages == [
        f"counter down (ConnectionError) for {REDIS_RETRY_SECONDS:.0f} s",
        "counter back",
    ]
    client.close()


def test_the_client_keeps_calling_and_counting_its_own_calls_when_its_redis_stops(
    sim: XivaSimulator, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    cid = sim.customer_ids()[0]
    with XivaClient(
        sim.base_url,
        SIM_USER,
        SIM_PASSWORD,
        requests_per_second=50,
        redis_url=private_redis.url,
        usage_prefix="test:usage",
    ) as client:
        assert client.get_customer(cid)["id"] == cid  # login + the call
        assert client.usage().totals.requests == 2  # counted in Redis
        private_redis.kill()
        with caplog.at_level(logging.WARNING, logger=CLIENT_LOGGER):
            started = time.monotonic()
            assert [client.get_customer(cid)["id"] for _ in range(5)] == [cid] * 5
            elapsed = time.monotonic() - started
        counts = client.counts

    assert elapsed < 2.0, elapsed  # Redis is not retried on every request
    assert caplog.text.count("Redis rate limiter unavailable") == 1
    assert caplog.text.count("Could not record Xiva usage in Redis") == 1
    # The run's own count never depended on Redis: every request this client sent.
    assert counts.requests == sim.counters()["total"] == 7
