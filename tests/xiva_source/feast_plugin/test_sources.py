"""The custom Feast sources: registry proto round trip, validation, columns (pure)."""

from __future__ import annotations

import json

import pytest
from feast.data_source import DataSource
from feast.repo_config import RepoConfig

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
    assert columns["birth_date"] == "TIMESTAMP"  # a fact; age is derived when read
    assert "age" not in columns
    assert columns["event_timestamp"] == "TIMESTAMP"
    assert set(feature_arrow_types()) >= {"customer_status", "churn_score"}
    assert "churn_score" not in columns  # a DWH-only feature


def test_sources_satisfy_the_pipeline_specs_and_take_settings() -> None:
    from xiva_source.pipeline.sources import source_kind
    from xiva_source.settings import load_settings

    xiva, dwh, customer = _sources()
    assert [source_kind(s) for s in (xiva, dwh, customer)] == ["xiva", "dwh", "customer"]
    settings = load_settings(env_file=None, dwh_url="sqlite:///settings.db")
    assert dwh.url(settings) == "sqlite:///settings.db"
    own = DwhSource("d", table="t", dwh_url="sqlite:///own.db")
    assert own.url(settings) == "sqlite:///own.db"
    assert customer.dwh.spec.table == "customer_features_view"
