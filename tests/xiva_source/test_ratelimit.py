"""The client-side request rate: in-process and shared through the real Redis."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.ratelimit import (
    LocalRateLimiter,
    RedisRateLimiter,
    Unlimited,
    default_rate_key,
    make_rate_limiter,
)

ROOT = Path(__file__).resolve().parents[2]


def test_local_reservations_are_evenly_spaced() -> None:
    now = [10.0]
    limiter = LocalRateLimiter(4.0, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    now[0] += 5.0  # idle: the schedule does not bank unused slots beyond the burst
    assert [limiter.reserve() for _ in range(2)] == pytest.approx([0.0, 0.25])


def test_local_limiter_paces_threads_together() -> None:
    limiter = LocalRateLimiter(100.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert stamps[-1] - stamps[0] >= 19 / 100 - 0.005  # 20 slots at 100/s: >= 0.19 s


def test_redis_limiters_with_one_key_share_the_rate(redis_url: str, redis_ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first = RedisRateLimiter(client, f"{redis_ns}:rate", 50.0)
    second = RedisRateLimiter(client, f"{redis_ns}:rate", 50.0)
    started = time.monotonic()
    waits = [limiter.acquire() for _ in range(5) for limiter in (first, second)]
    assert time.monotonic() - started >= 9 / 50 - 0.01
    assert waits[0] == 0.0 and all(w > 0 for w in waits[1:])
    assert int(client.pttl(f"{redis_ns}:rate")) > 0  # type: ignore[arg-type]  # the key expires by itself
    client.close()


def test_hold_delays_every_sharer(redis_url: str, redis_ns: str) -> None:
    now = [10.0]
    local = LocalRateLimiter(100.0, clock=lambda: now[0])
    local.hold(2.0)
    assert local.reserve() == pytest.approx(2.0)

    client = redis.Redis.from_url(redis_url)
    first = RedisRateLimiter(client, f"{redis_ns}:rate", 100.0)
    second = RedisRateLimiter(client, f"{redis_ns}:rate", 100.0)
    first.hold(0.3)  # e.g. another worker got "Retry-After"
    assert second.acquire() == pytest.approx(0.3, abs=0.05)
    client.close()

    unlimited = Unlimited()
    unlimited.hold(0.1)
    assert unlimited.acquire() == pytest.approx(0.1, abs=0.05)
    assert unlimited.acquire() == 0.0


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


def test_factory_and_default_key() -> None:
    assert isinstance(make_rate_limiter(None), Unlimited)
    assert isinstance(make_rate_limiter(0), Unlimited)
    assert isinstance(make_rate_limiter(5.0), LocalRateLimiter)
    key = default_rate_key("https://x/api/", "u")
    assert key == default_rate_key("https://x/api", "u") != default_rate_key("https://x/api", "v")
    assert key.startswith("xiva:rate:") and len(key) == len("xiva:rate:") + 40
    with pytest.raises(ValueError, match="rate must be > 0"):
        LocalRateLimiter(0)


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
