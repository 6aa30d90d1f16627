"""The custom Feast sources (proto round trip, validation) and the Redis online store config."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from feast.data_source import DataSource
from feast.repo_config import RepoConfig

from xiva_source.feast_plugin.online_store import LoyaltyRedisOnlineStoreConfig, redis_url_to_feast
from xiva_source.feast_plugin.sources import (
    CustomerSource,
    DwhSource,
    XivaSource,
    feature_arrow_types,
)


def _sources() -> tuple[XivaSource, DwhSource, CustomerSource]:
    xiva = XivaSource("xiva_customers", tags={"team": "loyalty"})
    dwh = DwhSource("dwh_customer_features", table="customer_features_view")
    return xiva, dwh, CustomerSource("customer_source", xiva=xiva, dwh=dwh, owner="a@b.test")


def test_every_source_survives_the_registry_proto_round_trip() -> None:
    for source in _sources():
        proto = source.to_proto()
        assert proto.type == proto.CUSTOM_SOURCE
        assert (
            proto.data_source_class_type
            == f"xiva_source.feast_plugin.sources.{type(source).__name__}"
        )
        loaded = DataSource.from_proto(proto)
        assert type(loaded) is type(source)
        assert loaded == source
        assert loaded.timestamp_field == source.timestamp_field
    customer = DataSource.from_proto(_sources()[2].to_proto())
    assert isinstance(customer, CustomerSource)
    assert customer.dwh.table == "customer_features_view"
    assert customer.dwh.timestamp_field == "updated_at"
    assert customer.xiva.name == "xiva_customers"


def test_query_source_round_trips_and_options_are_json() -> None:
    source = DwhSource("q", query="SELECT * FROM t", dwh_url="sqlite:///x.db")
    options = json.loads(source.to_proto().custom_options.configuration)
    assert options == {"table": None, "query": "SELECT * FROM t", "dwh_url": "sqlite:///x.db"}
    assert DataSource.from_proto(source.to_proto()) == source


def test_dwh_source_refuses_a_password_in_the_registry_and_ambiguous_options() -> None:
    with pytest.raises(ValueError, match="DWH_URL"):
        DwhSource("d", table="t", dwh_url="postgresql://u:secret@h/db")
    with pytest.raises(ValueError, match="exactly one of table= or query="):
        DwhSource("d", table="t", query="SELECT 1")
    with pytest.raises(ValueError, match="exactly one of table= or query="):
        DwhSource("d")


def test_xiva_columns_come_from_the_extractor_schema() -> None:
    config = RepoConfig.model_construct()
    columns = dict(_sources()[0].get_table_column_names_and_types(config))
    assert columns["customer_id"] == "STRING"
    assert columns["total_revenue"] == "DOUBLE"
    assert columns["age"] == "INT64"
    assert columns["event_timestamp"] == "TIMESTAMP"
    assert set(feature_arrow_types()) >= {"customer_status", "churn_score"}
    assert "churn_score" not in columns  # a DWH-only feature


def test_redis_url_translation() -> None:
    assert redis_url_to_feast("redis://127.0.0.1:6379") == "127.0.0.1:6379"
    assert redis_url_to_feast("redis://:p%40ss@cache:6380/2") == "cache:6380,db=2,password=p@ss"
    assert (
        redis_url_to_feast("rediss://bob:pw@h/0") == "h:6379,db=0,username=bob,password=pw,ssl=true"
    )
    with pytest.raises(ValueError, match="redis://"):
        redis_url_to_feast("http://h:6379")
    with pytest.raises(ValueError, match="contains ','") as info:
        redis_url_to_feast("redis://:a,b@h:1")
    assert "a,b" not in str(info.value)


def test_online_store_config_from_environment_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@10.0.0.5:6390/3")
    monkeypatch.setenv("ONLINE_TTL_SECONDS", "600")
    config = LoyaltyRedisOnlineStoreConfig()
    assert config.connection_string == "10.0.0.5:6390,db=3,password=hunter2"
    assert config.key_ttl_seconds == 600
    assert "hunter2" not in repr(config)
    explicit = LoyaltyRedisOnlineStoreConfig(connection_string="h:1", key_ttl_seconds=5)
    assert (explicit.connection_string, explicit.key_ttl_seconds) == ("h:1", 5)
    monkeypatch.delenv("REDIS_URL")
    assert LoyaltyRedisOnlineStoreConfig().connection_string == "127.0.0.1:6379"


def test_the_applied_repository_holds_the_documented_objects(applied_feast_repo: Path) -> None:
    from feast import FeatureStore

    from xiva_source.features.extractor import feature_schema

    store = FeatureStore(repo_path=str(applied_feast_repo))
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == {"customer_features", "customer_dwh_features"}
    customer = views["customer_features"]
    assert [f.name for f in customer.features] == list(feature_schema())
    assert customer.ttl == timedelta(days=3650)
    assert isinstance(customer.batch_source, CustomerSource)
    dwh_view = views["customer_dwh_features"]
    assert [f.name for f in dwh_view.features] == [
        "avg_transaction_value",
        "lifetime_value",
        "churn_score",
    ]
    assert isinstance(dwh_view.batch_source, DwhSource)
    assert dwh_view.batch_source.dwh_url is None  # resolved from DWH_URL at run time
    assert store.get_entity("customer").join_key == "customer_id"
    services = {s.name: s for s in store.list_feature_services()}
    assert [p.name for p in services["segmentation_features"].feature_view_projections] == [
        "customer_features"
    ]
    assert {p.name for p in services["ml_features"].feature_view_projections} == set(views)
    assert store.config.materialization_config.online_write_batch_size == 10_000
    assert type(store.config.online_store).__name__ == "LoyaltyRedisOnlineStoreConfig"
