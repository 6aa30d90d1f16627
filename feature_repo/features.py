"""Feature views of the loyalty repository."""

from datetime import timedelta
from typing import Any

from entities import customer
from feast import FeatureView, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String
from sources import customer_source, dwh_customer_features

from xiva_source.feast_plugin.sources import xiva_feature_fields

# A profile stays true until it changes: a customer unchanged for years is still a customer.
# The ttl is the point-in-time lookback of historical retrieval (and stock Feast's first
# materialize-incremental start), so it is long: 3650 days. Online expiry is Redis's
# key_ttl_seconds (ONLINE_TTL_SECONDS), a separate setting.
customer_features = FeatureView(
    name="customer_features",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=xiva_feature_fields(),
    source=customer_source,
    online=True,
    description="Standard + custom customer features as facts (dates, never day counts or "
    "ages); from Xiva, the DWH, or both (auto).",
)


# Features that age are derived when read, never stored: as of now online (get_online_features,
# feast serve), as of each label's timestamp in get_historical_features. The body runs from the
# registry's source text, so it imports what it needs; the one derivation is
# xiva_source.features.derived (the segmentation reader and live refresh call it too).
# mode="python": online, Feast hands it the features read as lists and it derives them in plain
# Python (microseconds; the pandas mode cost milliseconds per read: docs/feature-repo.md,
# "Serving"). Not singleton: one call serves 1 or 100 customers alike. In a training set the
# offline store hands it only its inputs (feast_plugin/on_demand.py).
@on_demand_feature_view(
    sources=[customer_features[["last_payment_date", "birth_date"]]],
    schema=[
        Field(name="last_purchase_days_ago", dtype=Int64),
        Field(name="age", dtype=Int64),
    ],
    mode="python",
    write_to_online_store=False,
    description="last_purchase_days_ago and age, as of the read (now, or the label's time).",
)
def customer_time_features(inputs: dict[str, Any]) -> dict[str, Any]:
    from xiva_source.features.derived import derive_columns

    return derive_columns(inputs)


customer_dwh_features = FeatureView(
    name="customer_dwh_features",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="avg_transaction_value", dtype=Float64),
        Field(name="lifetime_value", dtype=Float64),
        Field(name="churn_score", dtype=Float64),
    ],
    source=dwh_customer_features,
    online=True,
    description="Features only the DWH has.",
)


# Segment memberships served with the features (docs/segmentation.md, "Segments served with the
# features"): written into the online store by the segmentation refresh and by real-time updates
# (segmentation/served.py), never materialized. So the view has no source and online=False:
# `feast materialize`, the materialization job and the segmentation reader leave it out, while
# get_online_features(features=["customer_features:customer_tier",
# "customer_segments:segments"], ...) still reads it (one call for both).
customer_segments = FeatureView(
    name="customer_segments",
    entities=[customer],
    ttl=timedelta(days=0),
    schema=[
        Field(name="segments", dtype=Array(String)),
        Field(name="segment_groups", dtype=Array(String)),
    ],
    online=False,
    description="segments: the segments the customer is targeted in (not held out); "
    "segment_groups: 'segment:group' for every segment it is eligible for. Online only.",
)
