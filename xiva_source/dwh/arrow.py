"""Database rows to Arrow and back: the one place the warehouse's type rules live.

``DECIMAL`` becomes ``float64``, integers stay nullable ``int64``, UUIDs become strings and
timestamps become UTC (a naive ``TIMESTAMP`` is read as UTC).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from xiva_source.dwh.tables import PULLED_AT
from xiva_source.features.catalogue import CREATED_TIMESTAMP, ENTITY, EVENT_TIMESTAMP

__all__ = [
    "UnsupportedColumnError",
    "conform_arrow",
    "latest_per_customer",
    "rows_to_arrow",
    "table_records",
]


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


class UnsupportedColumnError(ValueError):
    """An Arrow column whose database type :func:`conform_arrow` has no rule for.

    The caller reads with the row path instead (:func:`rows_to_arrow` knows every type the
    driver returns), so this never reaches a user.
    """

    def __init__(self, column: str, dtype: pa.DataType) -> None:
        super().__init__(f"column {column!r}: no Arrow rule for {dtype}")
        self.column = column


def conform_arrow(
    table: pa.Table | pa.RecordBatch,
    *,
    types: Mapping[str, pa.DataType] | None = None,
    timestamp_columns: Iterable[str] = (EVENT_TIMESTAMP,),
) -> pa.Table:
    """A table a columnar driver (ADBC) returned, with exactly :func:`rows_to_arrow`'s types.

    The rules, column at a time (no Python object per value): ``NUMERIC`` (the driver's
    string-backed extension) and ``REAL`` -> ``float64``; ``SMALLINT``/``INTEGER`` -> ``int64``;
    ``UUID`` -> its canonical lower-case text; timestamps in ``timestamp_columns`` (or typed
    timestamp in ``types``) -> ``timestamp[us, UTC]`` (a naive ``TIMESTAMP`` is UTC); then a
    column listed in ``types`` is cast to it. Field metadata is dropped.

    Args:
        table: The driver's table or record batch.
        types: Known Arrow types per column (as :func:`rows_to_arrow`).
        timestamp_columns: Columns read as UTC timestamps.

    Returns:
        The table, equal (values, types, nulls) to what :func:`rows_to_arrow` builds from the
        same rows.

    Raises:
        UnsupportedColumnError: A column's type has no rule here (read it with the row path).
    """
    types = types or {}
    ts_cols = set(timestamp_columns)
    arrays = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        arrays.append(_conform_column(name, column, types.get(name), is_timestamp=name in ts_cols))
    return pa.Table.from_arrays(arrays, names=list(table.column_names))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _conform_column(
    name: str,
    column: pa.Array | pa.ChunkedArray,
    dtype: pa.DataType | None,
    *,
    is_timestamp: bool,
) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if isinstance(kind, pa.BaseExtensionType):
        storage = array.storage
        if kind.extension_name == "arrow.uuid":
            array = _uuid_text(storage)
        elif getattr(kind, "type_name", None) == "numeric" and pa.types.is_string(storage.type):
            array = pc.cast(storage, pa.float64())
        else:
            raise UnsupportedColumnError(name, kind)
    elif pa.types.is_integer(kind):
        array = pc.cast(array, pa.int64())
    elif pa.types.is_float32(kind):
        # PostgreSQL prints a REAL as its shortest decimal and the row path parses that text:
        # the same digits, not the float32's exact binary value widened.
        array = pc.cast(pc.cast(array, pa.string()), pa.float64())
    elif pa.types.is_floating(kind):
        array = pc.cast(array, pa.float64())
    elif pa.types.is_large_string(kind):
        array = pc.cast(array, pa.string())
    elif not (
        pa.types.is_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_date32(kind)
        or pa.types.is_timestamp(kind)
    ):
        raise UnsupportedColumnError(name, kind)
    if is_timestamp or (dtype is not None and pa.types.is_timestamp(dtype)):
        return _utc_timestamps(name, array)
    if dtype is not None and array.type != dtype:
        return pc.cast(array, dtype)
    return array


def _utc_timestamps(name: str, array: pa.Array) -> pa.Array:
    utc = pa.timestamp("us", tz="UTC")
    kind = array.type
    if pa.types.is_date32(kind):
        return pc.cast(pc.cast(array, pa.timestamp("us")), utc)
    if not pa.types.is_timestamp(kind):
        raise UnsupportedColumnError(name, kind)
    if kind.tz is None:
        # A naive TIMESTAMP holds UTC (the warehouse's rule): attach the zone, keep the value.
        return pc.cast(pc.cast(array, pa.timestamp("us")), utc)
    return pc.cast(array, utc)


def _uuid_text(storage: pa.FixedSizeBinaryArray) -> pa.Array:
    """16-byte UUIDs as ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` (what ``str(uuid.UUID)`` gives)."""
    n = len(storage)
    data = storage.buffers()[1]
    raw = np.frombuffer(data, dtype=np.uint8)[storage.offset * 16 : (storage.offset + n) * 16]
    raw = raw.reshape(n, 16)
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, 0:8] = hexed[:, 0:8]
    text[:, 9:13] = hexed[:, 8:12]
    text[:, 14:18] = hexed[:, 12:16]
    text[:, 19:23] = hexed[:, 16:20]
    text[:, 24:36] = hexed[:, 20:32]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    if storage.null_count == 0:
        return strings
    return pc.if_else(storage.is_valid(), strings, pa.scalar(None, pa.string()))


def latest_per_customer(
    table: pa.Table,
    timestamp_field: str = EVENT_TIMESTAMP,
    created_timestamp_column: str = CREATED_TIMESTAMP,
) -> pa.Table:
    """Keep each customer's latest row: latest ``timestamp_field``, then latest created.

    A tie on ``timestamp_field`` goes to the latest ``created_timestamp_column`` (a row without
    one loses), then to the latest ``pulled_at`` (Xiva snapshots), as a DWH read decides it
    (:meth:`~xiva_source.dwh.reads.TableSpec.from_clause`).

    Args:
        table: Rows with the entity column and ``timestamp_field`` (and perhaps the created
            timestamp column, ``pulled_at``).
        timestamp_field: The column ordering a customer's rows.
        created_timestamp_column: The column deciding ties, when the table has it.

    Returns:
        One row per customer, sorted by customer id.
    """
    if table.num_rows == 0:
        return table
    sort = [(ENTITY, "ascending"), (timestamp_field, "descending")]
    for tie_breaker in (created_timestamp_column, PULLED_AT):
        if tie_breaker and tie_breaker in table.column_names:
            sort.append((tie_breaker, "descending"))  # nulls sort last: they lose
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
