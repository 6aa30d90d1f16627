"""Database rows to Arrow and back: the one place the warehouse's type rules live.

``DECIMAL`` becomes ``float64``, integers stay nullable ``int64``, UUIDs become strings and
timestamps become UTC (a naive ``TIMESTAMP`` is read as UTC).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa

from xiva_source.dwh.tables import PULLED_AT
from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP

__all__ = ["latest_per_customer", "rows_to_arrow", "table_records"]


def rows_to_arrow(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    types: Mapping[str, pa.DataType] | None = None,
    timestamp_columns: Iterable[str] = (EVENT_TIMESTAMP,),
) -> pa.Table:
    """Rows from a DB-API cursor as an Arrow table with the project's type rules.

    Args:
        columns: Column names, in row order.
        rows: The rows.
        types: Known Arrow types per column (an all-null column takes this type, others are
            cast to it); columns not listed are inferred.
        timestamp_columns: Columns read as UTC timestamps (naive values are taken as UTC).

    Returns:
        The table; ``DECIMAL`` columns as ``float64``, UUIDs as strings.
    """
    types = types or {}
    ts_cols = set(timestamp_columns)
    arrays = []
    for i, name in enumerate(columns):
        values = [row[i] for row in rows]
        arrays.append(_to_array(values, types.get(name), is_timestamp=name in ts_cols))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _to_array(values: list[Any], dtype: pa.DataType | None, *, is_timestamp: bool) -> pa.Array:
    if is_timestamp or (dtype is not None and pa.types.is_timestamp(dtype)):
        stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="mixed")
        return pa.array(stamps, type=pa.timestamp("us", tz="UTC"))
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, Decimal):
        values = [None if v is None else float(v) for v in values]
        sample = 0.0
    elif isinstance(sample, uuid.UUID):
        values = [None if v is None else str(v) for v in values]
    if dtype is not None:
        if pa.types.is_floating(dtype) and isinstance(sample, (int, str)):
            values = [None if v is None else float(v) for v in values]
        elif pa.types.is_string(dtype) and sample is not None and not isinstance(sample, str):
            values = [None if v is None else str(v) for v in values]
        return pa.array(values, type=dtype)
    return pa.array(values)


def latest_per_customer(table: pa.Table, timestamp_field: str = EVENT_TIMESTAMP) -> pa.Table:
    """Keep each customer's row with the latest ``timestamp_field`` (then latest ``pulled_at``).

    Args:
        table: Rows with the entity column and ``timestamp_field`` (and perhaps ``pulled_at``).
        timestamp_field: The column ordering a customer's rows.

    Returns:
        One row per customer, sorted by customer id.
    """
    if table.num_rows == 0:
        return table
    sort = [(ENTITY, "ascending"), (timestamp_field, "descending")]
    if PULLED_AT in table.column_names:
        sort.append((PULLED_AT, "descending"))
    table = table.sort_by(sort)
    ids = table.column(ENTITY).to_pylist()
    keep = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    return table.take(pa.array(keep, type=pa.int64()))


def table_records(table: pa.Table) -> list[dict[str, Any]]:
    """``table``'s rows as dicts a DB-API driver accepts (pandas timestamps as ``datetime``)."""
    return [
        {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in rec.items()}
        for rec in table.to_pylist()
    ]
