"""The job's Redis parts on a real 3-primary Redis Cluster: the run state (watermarks hash and
marker), the expiry extension and the key scan over every primary. (The lock runs on the cluster
in ``tests/xiva_source/test_locking.py``.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.cluster import RedisCluster

from tests.support.redis_cluster import RedisClusterNodes
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.redis_scan import scan_entity_keys
from xiva_source.feast_plugin.run_state import RedisRunState
from xiva_source.jobs.expiry import extend_online_expiry, sweep_online_expiry
from xiva_source.redis_client import connect_redis


@pytest.fixture
def cluster(redis_cluster: RedisClusterNodes) -> Iterator[RedisCluster]:
    client = connect_redis(redis_cluster.url, redis_type="redis_cluster")
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def test_the_run_state_lives_on_the_cluster(cluster: RedisCluster, cluster_ns: str) -> None:
    state = RedisRunState(cluster, cluster_ns)
    mark = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    state.save_view("customer_profile", {"xiva": mark, "dwh": None}, "auto")
    state.save_run({"status": "ok"}, {"customer_profile": {"rows": 3}})
    state.set_marker(60)
    stored = state.load()
    assert stored.watermark("customer_profile", "xiva") == mark
    assert stored.mode("customer_profile") == "auto"
    assert stored.last_run() == {"status": "ok"}
    assert state.marker() is not None
    assert "redis-cli -c " in state.delete_command("mode:customer_profile")
    state.forget_view("customer_profile")
    assert state.load().watermark("customer_profile", "xiva") is None


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


def test_the_sweep_leaves_keys_not_written_since_the_full_reads_on_every_primary(
    cluster: RedisCluster, cluster_ns: str
) -> None:
    layout = RedisLayout(f"p_{cluster_ns.replace('-', '_')}", ("customer_id",))
    ids = [f"C{i:04d}" for i in range(60)]
    pipe = cluster.pipeline(transaction=False)
    for n, cid in enumerate(ids):
        pipe.hset(layout.key(cid), "f", "1")
        pipe.expire(layout.key(cid), 30 if n % 2 else 950)  # odd ones: written before the reads
    pipe.execute()
    now = datetime.now(UTC)

    result = sweep_online_expiry(
        cluster, layout, 1000, None, now=now, full_since=now - timedelta(seconds=100)
    )

    assert result.completed and result.extended == len(ids) // 2
    ttls = [int(cluster.ttl(layout.key(cid))) for cid in ids]  # type: ignore[arg-type]
    assert all(990 < t <= 1000 for t in ttls[0::2]) and all(0 < t <= 30 for t in ttls[1::2])
    cluster.delete(*[layout.key(cid) for cid in ids])
