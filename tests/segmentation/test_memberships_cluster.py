"""Membership generations on a real 3-primary Redis Cluster: every key of a project shares one
hash tag, so the generation switch (``MULTI``/``EXEC`` over several keys) works there; a single
Redis keeps the key names it always had."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from segmentation.events import read_events
from segmentation.memberships import MembershipStore, membership_prefix
from tests.support.redis_cluster import RedisClusterNodes
from xiva_source.redis_client import connect_redis


def _ids(start: int, stop: int) -> list[str]:
    return [f"C{i:05d}" for i in range(start, stop)]


@pytest.fixture
def cluster(redis_cluster: RedisClusterNodes) -> Iterator[RedisCluster]:
    client = connect_redis(redis_cluster.url, redis_type="redis_cluster")
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def test_the_prefix_is_a_hash_tag_only_on_a_cluster() -> None:
    assert membership_prefix("shop") == "segmentation:shop"  # single Redis: names unchanged
    assert membership_prefix("shop", cluster=True) == "segmentation:{shop}"


def test_generations_switch_on_the_cluster(cluster: RedisCluster, cluster_ns: str) -> None:
    store = MembershipStore(cluster, cluster_ns, history_limit=2)
    assert store.prefix == f"segmentation:{{{cluster_ns}}}"
    old = {"alpha": _ids(0, 300), "beta": _ids(0, 100)}
    new = {"alpha": _ids(100, 400), "beta": []}
    store.store_many(old)
    result = store.store_many(new)
    assert store.members("alpha") == _ids(100, 400) and store.size("beta") == 0
    assert result["alpha"].joined == store.joined("alpha") == _ids(300, 400)
    assert result["alpha"].left == store.left("alpha") == _ids(0, 100)
    assert store.is_member("alpha", "C00150") and not store.is_member("alpha", "C00050")
    assert [h.size for h in store.history("alpha")] == [300, 300]
    gen = store.generation("alpha")
    assert gen is not None
    keys = [
        store.lock_key,
        store.events_key(),
        store.key("history", "alpha"),
        store.generation_key(gen, "members", "alpha"),
        f"{store.prefix}:current",
        store.pending_key(),
        store.generation_key(gen, "pending-joined", "alpha"),
    ]
    assert len({cluster.keyslot(k) for k in keys}) == 1  # one slot: one MULTI/EXEC may span them
    assert not cluster.exists(store.lock_key)
    events = read_events(cluster, store.events_key())  # published in batches after the switch
    assert len(events) == 300 + 100 + 100 + 100 + 100 and not cluster.exists(store.pending_key())
    store.delete("alpha")
    assert store.generation("alpha") is None and store.members("alpha") == []


def test_a_single_redis_keeps_its_key_names(redis_url: str, redis_ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = MembershipStore(client, redis_ns)
    assert store.prefix == f"segmentation:{redis_ns}"
    client.sadd(store.key("members", "alpha"), *_ids(0, 5))  # written by an earlier version
    assert store.members("alpha") == _ids(0, 5)
    client.close()
