"""The feature catalogue: the one place the project's feature facts live.

- the entity and event-timestamp column names every table carries;
- the contract's standard features (Xiva and the DWH both serve them) and their types;
- the DWH-only features (not in Xiva) and their Arrow types.

Custom Xiva features are added with :func:`xiva_source.features.extractor.custom_feature`; the
full list is :func:`xiva_source.features.extractor.feature_schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pyarrow as pa

__all__ = [
    "DWH_ONLY_FEATURES",
    "ENTITY",
    "EVENT_TIMESTAMP",
    "STANDARD_FEATURES",
    "FeatureType",
]

ENTITY = "customer_id"
"""The entity key column (a UUID string) in every table and online row."""
EVENT_TIMESTAMP = "event_timestamp"
"""The event-timestamp column of pulled tables (UTC)."""

FeatureType = Literal["string", "float", "int"]
"""Feast type names a feature can have (``String``, ``Float64``, ``Int64`` in Feast)."""

STANDARD_FEATURES: Mapping[str, FeatureType] = {
    "customer_status": "string",
    "total_revenue": "float",
    "transaction_count": "int",
    "last_purchase_days_ago": "int",
    "customer_tier": "string",
    "city": "string",
    "age": "int",
}
"""The contract's standard features and their types, in order (see docs/xiva-api.md)."""

DWH_ONLY_FEATURES: Mapping[str, pa.DataType] = {
    "avg_transaction_value": pa.float64(),
    "lifetime_value": pa.float64(),
    "churn_score": pa.float64(),
}
"""The DWH's own features (not in Xiva): DECIMAL columns, read as float64."""
