"""The job's Redis parts on a real 3-primary Redis Cluster: the lock (acquire, heartbeat,
take-over of a dead owner), the run state (watermarks hash and marker), the expiry extension and
the key scan over every primary."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis.cluster import RedisCluster

from tests.redis_cluster import RedisClusterNodes
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.redis_scan import scan_entity_keys
from xiva_source.jobs.expiry import extend_online_expiry
from xiva_source.jobs.locks import LockHolder, RedisMaterializationLock, redis_lock_name
from xiva_source.jobs.state import RedisRunState
from xiva_source.redis_client import connect_redis


@pytest.fixture
def cluster(redis_cluster: RedisClusterNodes) -> Iterator[RedisCluster]:
    client = connect_redis(redis_cluster.url, redis_type="redis_cluster")
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_lock_is_taken_renewed_and_released(cluster: RedisCluster, cluster_ns: str) -> None:
    name = redis_lock_name(cluster_ns)
    lock = RedisMaterializationLock(cluster, name, ttl=0.6)
    assert lock.acquire() is None
    try:
        other = RedisMaterializationLock(cluster, name)
        holder = other.acquire()
        assert holder is not None and holder.describe().startswith("pid ")
        time.sleep(1.5)  # more than twice the TTL: only the heartbeat keeps it
        assert lock.owned()
    finally:
        lock.release()
    assert cluster.get(name) is None
    assert RedisMaterializationLock(cluster, name).acquire() is None  # free again


def test_a_dead_owner_s_lock_is_taken_over(cluster: RedisCluster, cluster_ns: str) -> None:
    name = redis_lock_name(cluster_ns)
    dead = dataclasses.replace(LockHolder.me(), pid=_dead_pid())
    cluster.set(name, dead.dumps(), px=600_000)
    lock = RedisMaterializationLock(cluster, name)
    assert lock.acquire() is None
    try:
        assert lock.took_over == dataclasses.replace(dead, token="")
        assert lock.owned()
        assert 0 < int(cluster.pttl(name)) <= 10_000  # type: ignore[arg-type]
    finally:
        lock.release()
    assert cluster.get(name) is None


def test_the_run_state_lives_on_the_cluster(cluster: RedisCluster, cluster_ns: str) -> None:
    state = RedisRunState(cluster, cluster_ns)
    mark = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    state.save_view("customer_profile", {"xiva": mark, "dwh": None}, "auto")
    state.save_run({"status": "ok"}, {"customer_profile": {"rows": 3}})
    state.set_marker(60)
    fields = state.load()
    assert RedisRunState.watermark(fields, "customer_profile", "xiva") == mark
    assert RedisRunState.mode(fields, "customer_profile") == "auto"
    assert RedisRunState.last_run(fields) == {"status": "ok"}
    assert state.marker() is not None
    state.forget_view("customer_profile")
    assert RedisRunState.watermark(state.load(), "customer_profile", "xiva") is None


def test_every_primary_is_scanned_and_every_key_gets_the_expiry(
    cluster: RedisCluster, cluster_ns: str
) -> None:
    project = f"p_{cluster_ns.replace('-', '_')}"
    layout = RedisLayout(project, ("customer_id",))
    other = RedisLayout(f"x{project}", ("customer_id",))  # a project ending with ours: untouched
    ids = [f"C{i:04d}" for i in range(300)]
    pipe = cluster.pipeline(transaction=False)
    for cid in ids:
        pipe.hset(layout.key(cid), "f", "1")
        pipe.hset(other.key(cid), "f", "1")
    pipe.execute()
    by_node = {cluster.get_node_from_key(layout.key(cid)).name for cid in ids}
    assert len(by_node) == 3  # the keys are spread over every primary

    found = list(scan_entity_keys(cluster, layout, count=50))
    assert sorted(str(layout.entity_id(k)) for k in found) == ids

    assert extend_online_expiry(cluster, layout, 120) == len(ids)
    ttls = {int(cluster.ttl(layout.key(cid))) for cid in ids}  # type: ignore[arg-type]
    assert all(0 < t <= 120 for t in ttls)
    assert int(cluster.ttl(other.key(ids[0]))) == -1  # type: ignore[arg-type]
    cluster.delete(*[other.key(cid) for cid in ids])
    cluster.delete(*[layout.key(cid) for cid in ids])
