"""The in-process request rate (GCRA reservations, hold, the factory): no Redis needed."""

from __future__ import annotations

import threading
import time

import pytest

from xiva_source.xiva_api.ratelimit import (
    LocalRateLimiter,
    Unlimited,
    default_rate_key,
    make_rate_limiter,
)


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


def test_factory_and_default_key() -> None:
    assert isinstance(make_rate_limiter(None), Unlimited)
    assert isinstance(make_rate_limiter(0), Unlimited)
    assert isinstance(make_rate_limiter(5.0), LocalRateLimiter)
    key = default_rate_key("https://x/api/", "u")
    assert key == default_rate_key("https://x/api", "u") != default_rate_key("https://x/api", "v")
    assert key.startswith("xiva:rate:") and len(key) == len("xiva:rate:") + 40
    with pytest.raises(ValueError, match="rate must be > 0"):
        LocalRateLimiter(0)


def test_hold_pushes_the_local_schedule() -> None:
    now = [10.0]
    local = LocalRateLimiter(100.0, clock=lambda: now[0])
    local.hold(2.0)
    assert local.reserve() == pytest.approx(2.0)

    unlimited = Unlimited()
    unlimited.hold(0.1)
    assert unlimited.acquire() == pytest.approx(0.1, abs=0.05)
    assert unlimited.acquire() == 0.0


def test_a_redis_limiter_needs_a_key() -> None:
    with pytest.raises(ValueError, match="needs a key"):
        make_rate_limiter(5.0, redis_client=object(), key=None)  # type: ignore[arg-type]
