"""Feast's Redis store bound to ``REDIS_TYPE``: stock ``materialize`` and ``get_online_features``
on the real Redis Cluster, the sentinel's primary, and the connection string never printed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType
from redis.cluster import RedisCluster

from tests.support.feast import FeastEnv
from tests.support.redis_cluster import RedisClusterNodes, RedisSentinelNodes
from xiva_source.feast_plugin.online_store import (
    LoyaltyRedisOnlineStoreConfig,
    online_redis_client,
    redis_url_to_feast,
)
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.redis_scan import scan_entity_keys
from xiva_source.settings import RedisType as SettingsRedisType
from xiva_source.settings import Settings


def test_several_nodes_become_feast_s_connection_string() -> None:
    url = "rediss://app:Pw-1234@a:7000,b:7001,c:7002"
    assert redis_url_to_feast(url, "redis_cluster") == (
        "a:7000,b:7001,c:7002,username=app,password=Pw-1234,ssl=true,ssl_cert_reqs=required,"
        "ssl_check_hostname=true"
    )
    assert redis_url_to_feast("redis://:Pw-1234@s1:26379,s2:26379/2", "redis_sentinel") == (
        "s1:26379,s2:26379,db=2,password=Pw-1234"
    )
    config = LoyaltyRedisOnlineStoreConfig()
    config.bind(
        Settings(
            redis_url=url, redis_type=SettingsRedisType.REDIS_CLUSTER, redis_sentinel_master="m"
        )
    )
    assert config.redis_type == RedisType.redis_cluster and config.sentinel_master == "m"
    assert "Pw-1234" not in repr(config) and "Pw-1234" not in str(config)


def test_the_yaml_s_redis_type_wins_over_the_setting() -> None:
    config = LoyaltyRedisOnlineStoreConfig(
        redis_type=RedisType.redis_sentinel, sentinel_master="yaml"
    )
    config.bind(Settings(redis_url="redis://a:1,b:2", redis_type=SettingsRedisType.REDIS_CLUSTER))
    assert config.redis_type == RedisType.redis_sentinel and config.sentinel_master == "yaml"


def test_stock_materialize_and_reads_on_the_cluster(
    cluster_feast_repo: Path, feast_env: FeastEnv, redis_cluster: RedisClusterNodes
) -> None:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(cluster_feast_repo))
    store.materialize(
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime.now(UTC),
        feature_views=["customer_dwh_features"],
    )
    client = online_redis_client(store.config)
    assert isinstance(client, RedisCluster)
    layout = RedisLayout.of(store.config, ["customer_id"])
    ids = sorted(k for k in (layout.entity_id(k) for k in scan_entity_keys(client, layout)) if k)
    client.close()
    expected = sorted({*feast_env.dwh.shared_ids, *feast_env.dwh.dwh_only_ids})
    assert ids == expected
    rows: dict[str, list[Any]] = store.get_online_features(
        features=["customer_dwh_features:churn_score"],
        entity_rows=[{"customer_id": c} for c in expected],
    ).to_dict()
    assert sum(v is not None for v in rows["churn_score"]) > len(expected) // 2


def test_feast_s_client_and_ours_reach_the_sentinel_s_primary(
    redis_sentinel: RedisSentinelNodes,
) -> None:
    settings = Settings(
        redis_url=redis_sentinel.url,
        redis_type=SettingsRedisType.REDIS_SENTINEL,
        redis_sentinel_master=redis_sentinel.master,
    )
    config = LoyaltyRedisOnlineStoreConfig()
    config.bind(settings)
    feast_client = RedisOnlineStore()._get_client(config)
    feast_client.set("test-sentinel-feast", "1", ex=60)

    class _Repo:  # the part of a RepoConfig online_redis_client reads
        online_store = config

    ours = online_redis_client(_Repo(), settings)  # type: ignore[arg-type]
    assert isinstance(ours, redis.Redis)
    assert ours.get("test-sentinel-feast") == b"1"
    ours.delete("test-sentinel-feast")
    ours.close()
