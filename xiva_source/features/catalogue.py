"""The feature catalogue: the one place the project's feature facts live.

- the entity and event-timestamp column names every table carries;
- the contract's standard features (Xiva and the DWH both serve them) and their types;
- the DWH-only features (not in Xiva) and their Arrow types.

Custom Xiva features are added with :func:`xiva_source.features.extractor.custom_feature`; the
full list is :func:`xiva_source.features.extractor.feature_schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DWH_ONLY_FEATURES",
    "DWH_ONLY_FEATURE_TYPES",
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

DWH_ONLY_FEATURE_TYPES: Mapping[str, FeatureType] = {
    "avg_transaction_value": "float",
    "lifetime_value": "float",
    "churn_score": "float",
}
"""The DWH's own features (not in Xiva) and their Feast type names: DECIMAL columns, as floats."""

if TYPE_CHECKING:
    DWH_ONLY_FEATURES: Mapping[str, pa.DataType]
    """The DWH-only features and their Arrow types (``float64``), in order."""

_ARROW_TYPE_NAMES: Mapping[FeatureType, str] = {
    "string": "string",
    "float": "float64",
    "int": "int64",
}


def __getattr__(name: str) -> Any:
    # DWH_ONLY_FEATURES holds Arrow types; it is built on first use so that importing the
    # catalogue (and so the extractor and the light client path) does not import pyarrow.
    if name == "DWH_ONLY_FEATURES":
        import pyarrow as pa

        value = {n: getattr(pa, _ARROW_TYPE_NAMES[t])() for n, t in DWH_ONLY_FEATURE_TYPES.items()}
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
