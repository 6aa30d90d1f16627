"""The shared request rate and the usage counters on a real 3-primary Redis Cluster
(``REDIS_TYPE=redis_cluster``): every worker shares one GCRA schedule and one set of counters."""

from __future__ import annotations

import time

import pytest
from redis.cluster import RedisCluster

from tests.support.redis_cluster import RedisClusterNodes
from xiva_source.redis_client import connect_redis
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.ratelimit import RedisRateLimiter
from xiva_source.xiva_api.usage import RedisUsageStore, UsageCounts, hour_bucket


def test_limiters_share_one_rate_on_the_cluster(
    redis_cluster: RedisClusterNodes, cluster_ns: str
) -> None:
    client = connect_redis(redis_cluster.url, redis_type="redis_cluster", fail_fast=True)
    assert isinstance(client, RedisCluster)
    first = RedisRateLimiter(client, f"{cluster_ns}:rate", 50.0)
    second = RedisRateLimiter(client, f"{cluster_ns}:rate", 50.0)
    started = time.monotonic()
    waits = [limiter.acquire() for _ in range(5) for limiter in (first, second)]
    assert time.monotonic() - started >= 9 / 50 - 0.01
    assert waits[0] == 0.0 and all(w > 0 for w in waits[1:])
    first.hold(0.3)  # another worker got "Retry-After"
    assert second.acquire() == pytest.approx(0.3, abs=0.05)
    assert int(client.pttl(f"{cluster_ns}:rate")) > 0  # type: ignore[arg-type]
    client.close()


def test_the_client_counts_and_paces_through_the_cluster(
    xiva_env: XivaSimulator,
    redis_cluster: RedisClusterNodes,
    cluster_ns: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("REDIS_TYPE", "redis_cluster")
    monkeypatch.setenv("XIVA_REDIS_PREFIX", cluster_ns)
    monkeypatch.setenv("XIVA_REQUESTS_PER_SECOND", "100")
    ids = xiva_env.customer_ids()
    with XivaClient() as first, XivaClient() as second:
        first.get_customer(ids[0])
        second.get_customer(ids[1])
        second.get_customer(ids[2])
        report = first.usage()  # the deployment's numbers, whichever client asks
        assert report.by_endpoint["customer_detail"] == UsageCounts(requests=3)
        assert report.by_endpoint["auth_create"] == UsageCounts(requests=2)
    cluster = redis_cluster.client()
    try:
        assert cluster.exists(first.rate_key) == 1  # the shared schedule lives on the cluster
        store = RedisUsageStore(cluster, f"{cluster_ns}:usage")
        assert store.report(1).totals.requests == 5
        key = f"{cluster_ns}:usage:{hour_bucket()}"
        assert cluster.hget(key, "customer_detail:requests") == b"3"
    finally:
        cluster.close()
