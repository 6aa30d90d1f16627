"""The applied feature repository: the documented objects, through the plugin's classes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from xiva_source.feast_plugin.sources import CustomerSource, DwhSource


def test_the_applied_repository_holds_the_documented_objects(applied_feast_repo: Path) -> None:
    from feast import FeatureStore

    from xiva_source.features.extractor import feature_schema

    store = FeatureStore(repo_path=str(applied_feast_repo))
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == {"customer_features", "customer_dwh_features", "customer_segments"}
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
        "customer_features",
        "customer_time_features",
    ]
    assert {p.name for p in services["ml_features"].feature_view_projections} == {
        "customer_features",
        "customer_dwh_features",
        "customer_time_features",
    }
    # Memberships served with the features: online only (no source, never materialized).
    segments_view = views["customer_segments"]
    assert [f.name for f in segments_view.features] == ["segments", "segment_groups"]
    assert segments_view.batch_source is None
    assert [p.name for p in services["campaign_features"].feature_view_projections] == [
        "customer_features",
        "customer_time_features",
        "customer_segments",
    ]
    # The features that age are derived when read (never stored, never materialized).
    (derived,) = store.list_on_demand_feature_views()
    assert derived.name == "customer_time_features"
    assert [f.name for f in derived.features] == ["last_purchase_days_ago", "age"]
    assert not derived.write_to_online_store
    assert [
        f.name for f in derived.source_feature_view_projections["customer_features"].features
    ] == [
        "last_payment_date",
        "birth_date",
    ]
    assert store.config.materialization_config.online_write_batch_size == 10_000
    assert type(store.config.online_store).__name__ == "LoyaltyRedisOnlineStoreConfig"
