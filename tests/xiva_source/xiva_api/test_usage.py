"""Usage counters in the real Redis, shared by every client of a deployment."""

from __future__ import annotations

import logging

import pytest
import redis

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaNotFoundError
from xiva_source.xiva_api.usage import RedisUsageStore, UsageCounts, hour_bucket


def test_client_counts_in_redis_across_clients(
    sim: XivaSimulator, redis_url: str, redis_ns: str
) -> None:
    def client() -> XivaClient:
        return XivaClient(
            sim.base_url,
            SIM_USER,
            SIM_PASSWORD,
            requests_per_second=0,
            redis_url=redis_url,
            usage_prefix=f"{redis_ns}:usage",
        )

    ids = sim.customer_ids()
    first, second = client(), client()
    sim.set_faults(FaultConfig(kinds=("429",), count=1, paths={"customer_detail"}))
    first.get_customer(ids[0])  # login, 429, retry
    second.get_customer(ids[1])  # login
    with pytest.raises(XivaNotFoundError):
        second.get_customer_360("nobody")
    list(zip(range(60), second.iter_customers(), strict=False))  # two list pages

    report = first.usage()  # the deployment's numbers, whichever client asks
    assert report.by_endpoint["auth_create"] == UsageCounts(requests=2)
    assert report.by_endpoint["customer_detail"] == UsageCounts(requests=3, throttled=1, retries=1)
    assert report.by_endpoint["customer_360"] == UsageCounts(requests=1, errors=1)
    assert report.by_endpoint["customer_list"].requests == 2
    assert report.totals.requests == sim.counters()["total"] == 8
    r = redis.Redis.from_url(redis_url)
    key = f"{redis_ns}:usage:{hour_bucket()}"
    assert r.hget(key, "customer_detail:throttled") == b"1"
    ttl = int(r.ttl(key))  # type: ignore[arg-type]
    assert 7 * 86400 < ttl <= 8 * 86400
    r.close()


def test_redis_prefix_setting_namespaces_rate_and_usage_keys(
    xiva_env: XivaSimulator, redis_url: str, redis_ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("XIVA_REDIS_PREFIX", redis_ns)
    with XivaClient() as client:
        client.get_customer(xiva_env.customer_ids()[0])
        assert client.rate_key.startswith(f"{redis_ns}:rate:")
        assert client.usage().by_endpoint["customer_detail"].requests == 1
    r = redis.Redis.from_url(redis_url)
    try:
        assert list(r.scan_iter(match=f"{redis_ns}:usage:*")), "counters live under the prefix"
    finally:
        r.close()


def test_a_dead_redis_drops_counts_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1)
    store = RedisUsageStore(dead, "xiva:usage:test")
    with caplog.at_level(logging.WARNING, logger="xiva_source.xiva_api.client"):
        for _ in range(3):
            store.record("customer_list", requests=1)  # never raises
    assert caplog.text.count("Could not record Xiva usage in Redis") == 1
    dead.close()
