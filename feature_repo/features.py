"""Feature views of the loyalty repository."""

from datetime import timedelta

from entities import customer
from feast import FeatureView, Field
from feast.types import Float64
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
    description="Standard + custom customer features; from Xiva, the DWH, or both (auto).",
)

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
