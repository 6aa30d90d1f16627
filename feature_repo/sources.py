"""Data sources: Xiva, the DWH, and the mode switch between them (see docs/feature-repo.md)."""

from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource

xiva_customers = XivaSource(
    name="xiva_customers",
    timestamp_field="event_timestamp",
    description="Customer 360 views from the Xiva BSS API, through xiva_source.features.",
)

# dwh_url=None: the URL (and its password) comes from DWH_URL at run time, not the registry.
dwh_customer_features = DwhSource(
    name="dwh_customer_features",
    table="customer_features_view",
    timestamp_field="updated_at",
    description="Current customer features in the data warehouse.",
)

customer_source = CustomerSource(
    name="customer_source",
    xiva=xiva_customers,
    dwh=dwh_customer_features,
    description="Xiva, the DWH or both merged, per FEATURE_STORE_DATA_SOURCE / _MERGE_STRATEGY.",
)
