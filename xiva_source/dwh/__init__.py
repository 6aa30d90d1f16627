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

from xiva_source import lazy

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

__all__ = lazy.attach(__name__, __file__)
