"""The data warehouse: engines, Arrow conversion, streamed reads, the Xiva snapshot table.

=====================  ============================================================================
module                 concern
=====================  ============================================================================
``tables``             names of the contract's tables and of the snapshot table (no imports)
``engine``             one SQLAlchemy engine per URL, UTC sessions, short SQL error text
``arrow``              rows to Arrow with the type rules, latest row per customer
``reads``              :class:`TableSpec`, streamed reads, id lookups, offline writes
``snapshots``          the Xiva snapshot table: append, stream, read the latest
``schema``             the DWH contract's tables as SQLAlchemy metadata; ``init_dwh`` creates them
``errors``             :class:`~xiva_source.dwh.errors.DwhError` (light: no SQLAlchemy)
=====================  ============================================================================

Names load on first use (PEP 562), so importing :mod:`xiva_source.dwh.errors` or
:mod:`xiva_source.dwh.tables` stays light (no SQLAlchemy, pandas or Arrow). The demo data
generator lives in :mod:`xiva_source.demo.data`, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source.lazy import lazy_exports

if TYPE_CHECKING:
    from xiva_source.dwh.arrow import latest_per_customer, rows_to_arrow
    from xiva_source.dwh.engine import dispose_engines, get_engine, sql_error_text
    from xiva_source.dwh.errors import DwhError
    from xiva_source.dwh.reads import TableSpec, lookup_rows, stream_rows, write_rows
    from xiva_source.dwh.schema import CONTRACT_TABLES, contract_metadata, init_dwh
    from xiva_source.dwh.snapshots import (
        append_snapshots,
        read_latest_snapshots,
        stream_snapshots,
    )
    from xiva_source.dwh.tables import (
        CUSTOMER_FEATURES_TABLE,
        HISTORY_TABLES,
        PULLED_AT,
        SNAPSHOT_TABLE,
    )

__all__ = [
    "CONTRACT_TABLES",
    "CUSTOMER_FEATURES_TABLE",
    "HISTORY_TABLES",
    "PULLED_AT",
    "SNAPSHOT_TABLE",
    "DwhError",
    "TableSpec",
    "append_snapshots",
    "contract_metadata",
    "dispose_engines",
    "get_engine",
    "init_dwh",
    "latest_per_customer",
    "lookup_rows",
    "read_latest_snapshots",
    "rows_to_arrow",
    "sql_error_text",
    "stream_rows",
    "stream_snapshots",
    "write_rows",
]

_WHERE: dict[str, str] = {
    "CONTRACT_TABLES": "schema",
    "CUSTOMER_FEATURES_TABLE": "tables",
    "HISTORY_TABLES": "tables",
    "PULLED_AT": "tables",
    "SNAPSHOT_TABLE": "tables",
    "DwhError": "errors",
    "TableSpec": "reads",
    "append_snapshots": "snapshots",
    "contract_metadata": "schema",
    "dispose_engines": "engine",
    "get_engine": "engine",
    "init_dwh": "schema",
    "latest_per_customer": "arrow",
    "lookup_rows": "reads",
    "read_latest_snapshots": "snapshots",
    "rows_to_arrow": "arrow",
    "sql_error_text": "engine",
    "stream_rows": "reads",
    "stream_snapshots": "snapshots",
    "write_rows": "reads",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
