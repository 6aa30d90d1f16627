"""The client-side request rate shared through the real Redis (the in-process schedule, which needs
no Redis, is in test_rate_schedule.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.ratelimit import RedisRateLimiter

ROOT = Path(__file__).resolve().parents[3]


def test_redis_limiters_with_one_key_share_the_rate(redis_url: str, redis_ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    # 10/s: a 100 ms spacing that a loaded machine's Redis round trips stay well under (each
    # later acquire waits); shared, 10 acquires take >= 0.9 s (unshared: 0.4 s).
    first = RedisRateLimiter(client, f"{redis_ns}:rate", 10.0)
    second = RedisRateLimiter(client, f"{redis_ns}:rate", 10.0)
    started = time.monotonic()
    waits = [limiter.acquire() for _ in range(5) for limiter in (first, second)]
    assert time.monotonic() - started >= 9 / 10 - 0.01
    assert waits[0] == 0.0 and all(w > 0 for w in waits[1:])
    assert int(client.pttl(f"{redis_ns}:rate")) > 0  # type: ignore[arg-type]  # the key expires by itself
    client.close()


def test_hold_delays_every_sharer(redis_url: str, redis_ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first = RedisRateLimiter(client, f"{redis_ns}:rate", 100.0)
    second = RedisRateLimiter(client, f"{redis_ns}:rate", 100.0)
    first.hold(0.3)  # e.g. another worker got "Retry-After"
    assert second.acquire() == pytest.approx(0.3, abs=0.05)
    client.close()


def test_redis_failure_falls_back_to_pacing_alone(caplog: pytest.LogCaptureFixture) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    limiter = RedisRateLimiter(dead, "xiva:rate:test", 20.0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="xiva_source.xiva_api.client"):
        waits = [limiter.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.05, 0.05], abs=0.02)  # paced locally at 20/s
    assert time.monotonic() - started < 1.0  # Redis is not retried on every request
    assert caplog.text.count("Redis rate limiter unavailable") == 1


def test_client_keeps_working_when_redis_is_down(
    sim: XivaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    from xiva_source.xiva_api.client import XivaClient

    client = XivaClient(
        sim.base_url,
        SIM_USER,
        SIM_PASSWORD,
        redis_url="redis://127.0.0.1:1/0",
        requests_per_second=50,
    )
    cid = sim.customer_ids()[0]
    with caplog.at_level(logging.WARNING, logger="xiva_source.xiva_api.client"):
        assert [client.get_customer(cid)["id"] for _ in range(3)] == [cid] * 3
    assert "Redis rate limiter unavailable" in caplog.text
    assert "Could not record Xiva usage in Redis" in caplog.text


_WORKER = textwrap.dedent(
    """
    import sys
    from xiva_source.xiva_api.client import XivaClient
    base_url, user, password, redis_url, key, cid = sys.argv[1:7]
    with XivaClient(base_url, user, password, requests_per_second=20, redis_url=redis_url,
                    rate_key=key, usage_prefix=key + ":usage") as client:
        for _ in range(20):
            client.get_customer(cid)
    """
)


def test_two_processes_share_the_configured_rate(
    sim: XivaSimulator, redis_url: str, redis_ns: str
) -> None:
    sim.add_user("worker2", "w2-Pa55word")
    cid = sim.customer_ids()[0]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                sim.base_url,
                user,
                pw,
                redis_url,
                f"{redis_ns}:rate",
                cid,
            ],
            cwd=ROOT,
        )
        for user, pw in ((SIM_USER, SIM_PASSWORD), ("worker2", "w2-Pa55word"))
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    log = sorted(sim.request_log())
    assert len(log) == 42  # 2 logins + 2 x 20 customers
    users = [r.user for r in log]
    first_switch = users.index("worker2") if users[0] == SIM_USER else users.index(SIM_USER)
    assert first_switch < len(users) - 21  # the processes overlapped: both drew from one rate
    # The busiest stretch of both together stays within the configured 20 requests/s.
    window = [r.at for r in log]
    rate = (len(window) - 1) / (window[-1] - window[0])
    assert rate <= 20 * 1.15
    overlap = [r.at for r in log[first_switch:]]
    assert (len(overlap) - 1) / (overlap[-1] - overlap[0]) <= 20 * 1.15
