"""The feature catalogue: the one place the project's feature facts live.

- the entity and event-timestamp column names every table carries;
- the contract's standard features (Xiva and the DWH both serve them) and their types, as stored:
  facts (``last_payment_date``, ``birth_date``), never values that age;
- the derived features (``last_purchase_days_ago``, ``age``): computed from a fact as of the read
  (:mod:`xiva_source.features.derived`), never stored;
- the DWH-only features (not in Xiva) and their Arrow types.

Custom Xiva features are added with :func:`xiva_source.features.extractor.custom_feature`; the
full list is :func:`xiva_source.features.extractor.feature_schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CREATED_TIMESTAMP",
    "DERIVED_FEATURES",
    "DWH_ONLY_FEATURES",
    "DWH_ONLY_FEATURE_TYPES",
    "ENTITY",
    "EVENT_TIMESTAMP",
    "STANDARD_FEATURES",
    "DerivedFeature",
    "FeatureType",
]

ENTITY = "customer_id"
"""The entity key column (a UUID string) in every table and online row."""
EVENT_TIMESTAMP = "event_timestamp"
"""The event-timestamp column of pulled tables (UTC)."""
CREATED_TIMESTAMP = "created_timestamp"
"""A DWH row's creation time in pulled tables (UTC), when its source names a
``created_timestamp_column``: it decides a customer's rows tied on the event timestamp."""

FeatureType = Literal["string", "float", "int", "timestamp"]
"""Feast type names a feature can have (``String``, ``Float64``, ``Int64``, ``UnixTimestamp``).

``timestamp`` holds a date as 00:00 UTC of that day (Arrow ``timestamp[us, UTC]``), the one type
that round-trips through the snapshot table, the DWH and Feast's online store unchanged."""

STANDARD_FEATURES: Mapping[str, FeatureType] = {
    "customer_status": "string",
    "total_revenue": "float",
    "transaction_count": "int",
    "last_payment_date": "timestamp",
    "customer_tier": "string",
    "city": "string",
    "birth_date": "timestamp",
}
"""The contract's standard features as stored, in order (see docs/xiva-api.md).

Nothing here depends on when it was read: a value stays true until the customer changes."""


@dataclass(frozen=True)
class DerivedFeature:
    """A feature computed from a stored fact as of the moment it describes.

    Attributes:
        name: The feature's name (what users, segments and models read).
        fact: The stored date it is computed from.
        unit: ``"days"`` (whole days from the fact to the as-of date) or ``"years"`` (completed
            years, birthday rule: a 29 February birthday completes a year on 1 March in common
            years).
        dtype: Its Feast type name.
    """

    name: str
    fact: str
    unit: Literal["days", "years"]
    dtype: FeatureType = "int"


DERIVED_FEATURES: Mapping[str, DerivedFeature] = {
    "last_purchase_days_ago": DerivedFeature("last_purchase_days_ago", "last_payment_date", "days"),
    "age": DerivedFeature("age", "birth_date", "years"),
}
"""The features derived at read time (now online, the label's time in training sets), by name.

The DWH serves them as counts as of its row's ``updated_at``; its reads turn them into the facts
(:mod:`xiva_source.dwh.facts`)."""

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
