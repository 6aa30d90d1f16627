"""Feature services: what each consumer reads."""

from feast import FeatureService
from features import (
    customer_dwh_features,
    customer_features,
    customer_segments,
    customer_time_features,
)

segmentation_features = FeatureService(
    name="segmentation_features",
    features=[customer_features, customer_time_features],
    description="Everything JSONLogic segments may reference.",
)

ml_features = FeatureService(
    name="ml_features",
    features=[customer_features, customer_time_features, customer_dwh_features],
    description="Model inputs: customer features plus the DWH-only scores.",
)

campaign_features = FeatureService(
    name="campaign_features",
    features=[customer_features, customer_time_features, customer_segments],
    description="Online serving for campaigns: the customer features and the segments the "
    "customer is targeted in (online only: customer_segments has no offline source).",
)
