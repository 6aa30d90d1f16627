"""Names of the warehouse's tables and of the columns this package adds (no I/O, no imports).

The DWH contract (``docs/dwh.md``; its tables in :mod:`xiva_source.dwh.schema`) names the
current-features view and the history tables; the snapshot table is ours: every Xiva pull is
appended to it, with the time of the pull. The entity and event-timestamp column names are the
feature catalogue's (:mod:`xiva_source.features.catalogue`).
"""

from __future__ import annotations

__all__ = ["CUSTOMER_FEATURES_TABLE", "HISTORY_TABLES", "PULLED_AT", "SNAPSHOT_TABLE"]

CUSTOMER_FEATURES_TABLE = "customer_features_view"
"""Default table (or view) of current customer features in the DWH."""

HISTORY_TABLES = (
    "customer_transaction_history",
    "customer_churn_history",
    "customer_offer_history",
)
"""History tables of the DWH contract (labels and past snapshots for training)."""

SNAPSHOT_TABLE = "xiva_customer_snapshots"
"""Default table every Xiva pull is appended to."""

PULLED_AT = "pulled_at"
"""The snapshot table's column holding when the pull ran (UTC); it breaks ties between pulls."""
