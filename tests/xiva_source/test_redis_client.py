"""``connect_redis`` for the three deployment types, against real servers (single Redis, a
3-primary cluster, a sentinel and its primary), and the errors of a wrong ``REDIS_TYPE``."""

from __future__ import annotations

import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from tests.support.redis_cluster import RedisClusterNodes, RedisSentinelNodes
from xiva_source.errors import ConfigurationError
from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.feast_plugin.foreign_errors import project_error_for
from xiva_source.redaction import redact, redact_url, register_url_secret
from xiva_source.redis_client import connect_redis, is_cluster, parse_redis_nodes
from xiva_source.settings import RedisType


def test_a_url_names_several_nodes_sharing_the_first_credentials() -> None:
    nodes = parse_redis_nodes("rediss://app:p%40ss@a:7000,b:7001,[::1]:7002/0?socket_timeout=3")
    assert nodes.nodes == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert (nodes.scheme, nodes.username, nodes.password, nodes.db) == ("rediss", "app", "p@ss", 0)
    assert "p@ss" not in repr(nodes)
    assert nodes.node_url(1) == "rediss://app:p%40ss@b:7001/0?socket_timeout=3"
    assert parse_redis_nodes("redis://h").nodes == (("h", 6379),)


@pytest.mark.parametrize(
    ("url", "kind", "needle"),
    [
        ("http://:Secret-pw@a:1", "redis", "redis://"),
        ("redis://:Secret-pw@a:1,,b:2", "redis_cluster", "empty node"),
        ("redis://:Secret-pw@a:x", "redis_cluster", "bad port"),
        ("redis://:Secret-pw@a:1/zero", "redis", "database"),
        ("redis://:Secret-pw@a:1,b:2", "redis", "REDIS_TYPE=redis_cluster"),
        ("redis://:Secret-pw@a:1,b:2/3", "redis_cluster", "only database 0"),
        ("redis://:Secret-pw@a:1", "memcached", "REDIS_TYPE"),
    ],
)
def test_a_bad_url_or_type_is_a_configuration_error_without_the_password(
    url: str, kind: str, needle: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        connect_redis(url, redis_type=kind)
    text = f"{info.value.problem} {info.value.fix}"
    assert needle in text
    assert "Secret-pw" not in text
    assert info.value.exit_code == 2


def test_multi_node_urls_are_redacted_node_by_node() -> None:
    assert redact_url("redis://:pw12@a:1,b:2/0") == "redis://:***@a:1,b:2/0"
    assert redact_url("redis://u:pw12@a:1,u:pw34@b:2") == "redis://u:***@a:1,u:***@b:2"
    assert redact("REDIS_URL=redis://u:pw12@a:1,u:pw34@b:2 failed") == (
        "REDIS_URL=redis://u:***@a:1,u:***@b:2 failed"
    )
    secret = f"Node-{uuid.uuid4().hex[:8]}"
    register_url_secret(f"redis://a:1,u:{secret}@b:2")
    assert secret not in redact(f"the server said: {secret}")


def test_a_single_redis(redis_url: str, redis_ns: str) -> None:
    client = connect_redis(redis_url, redis_type=RedisType.REDIS)
    assert type(client) is redis.Redis and not is_cluster(client)
    client.set(f"{redis_ns}:k", "v")
    assert client.get(f"{redis_ns}:k") == b"v"
    client.close()


def test_a_cluster_from_several_nodes_or_one(
    redis_cluster: RedisClusterNodes, cluster_ns: str
) -> None:
    for url in (redis_cluster.url, f"redis://127.0.0.1:{redis_cluster.ports[1]}"):
        client = connect_redis(url, redis_type="redis_cluster", fail_fast=True)
        assert isinstance(client, RedisCluster) and is_cluster(client)
        assert len(client.get_primaries()) == 3
        keys = [f"{cluster_ns}:{i}" for i in range(30)]  # spread over every primary
        for key in keys:
            client.set(key, key)
        assert [client.get(k) for k in keys] == [k.encode() for k in keys]
        client.close()


def test_a_sentinel_gives_its_primary(redis_sentinel: RedisSentinelNodes) -> None:
    client = connect_redis(
        redis_sentinel.url, redis_type="redis_sentinel", sentinel_master=redis_sentinel.master
    )
    assert isinstance(client, redis.Redis)
    key = f"test-{uuid.uuid4().hex[:8]}"
    client.set(key, "v", ex=60)
    assert client.get(key) == b"v"
    direct = redis.Redis(
        host="127.0.0.1", port=redis_sentinel.primary_port, password=redis_sentinel.password
    )
    assert direct.get(key) == b"v"  # written on the primary the sentinel names
    client.delete(key)
    direct.close()
    client.close()


def test_a_plain_client_on_a_cluster_node_names_redis_type(
    redis_cluster: RedisClusterNodes, cluster_ns: str
) -> None:
    plain = connect_redis(f"redis://127.0.0.1:{redis_cluster.ports[0]}")
    errors = []
    for i in range(30):  # some of these keys live on another primary: MOVED
        try:
            plain.set(f"{cluster_ns}:{i}", "x")
        except redis.RedisError as e:
            errors.append(e)
    plain.close()
    assert errors
    mapped = project_error_for(errors[0])
    assert isinstance(mapped, OnlineStoreError)
    assert "REDIS_TYPE=redis_cluster" in mapped.fix
    assert "MOVED" in mapped.problem or "Moved" in mapped.problem


def test_a_cluster_type_on_a_plain_server_names_redis_type(redis_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        connect_redis(redis_url.rsplit("/", 1)[0], redis_type="redis_cluster")
    assert "REDIS_TYPE=redis" in info.value.fix


def test_an_unreachable_cluster_is_a_redis_connection_error() -> None:
    with pytest.raises(redis.ConnectionError) as info:
        connect_redis("redis://:Secret-pw@127.0.0.1:1", redis_type="redis_cluster", fail_fast=True)
    assert "Secret-pw" not in str(info.value)
    assert isinstance(project_error_for(info.value), OnlineStoreError)
