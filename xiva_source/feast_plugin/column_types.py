"""Column type names of the project's sources, and their Feast value types.

Feast infers a feature view's schema from ``(column, type name)`` pairs a source reports
(``get_table_column_names_and_types``) and maps each name to a ``ValueType`` with the source's
``source_datatype_to_feast_value_type``. The names come from Arrow types (Xiva's features), from
SQLAlchemy reflection (a DWH table) or from a sample row (a DWH query).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from feast.value_type import ValueType

__all__ = ["arrow_type_name", "python_type_name", "sql_type_name", "value_type"]

_ARROW_TO_NAME = {
    pa.string(): "STRING",
    pa.large_string(): "STRING",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.int64(): "INT64",
    pa.int32(): "INT32",
    pa.bool_(): "BOOL",
}
_NAME_TO_VALUE_TYPE = {
    "STRING": ValueType.STRING,
    "VARCHAR": ValueType.STRING,
    "TEXT": ValueType.STRING,
    "UUID": ValueType.STRING,
    "DOUBLE": ValueType.DOUBLE,
    "FLOAT": ValueType.FLOAT,
    "NUMERIC": ValueType.DOUBLE,
    "DECIMAL": ValueType.DOUBLE,
    "INT64": ValueType.INT64,
    "BIGINT": ValueType.INT64,
    "INT32": ValueType.INT32,
    "INTEGER": ValueType.INT64,
    "SMALLINT": ValueType.INT32,
    "BOOL": ValueType.BOOL,
    "BOOLEAN": ValueType.BOOL,
    "TIMESTAMP": ValueType.UNIX_TIMESTAMP,
    "DATETIME": ValueType.UNIX_TIMESTAMP,
    "DATE": ValueType.UNIX_TIMESTAMP,
}


def arrow_type_name(dtype: pa.DataType) -> str:
    """The type name of an Arrow type (``DOUBLE``, ``INT64``, ``STRING``...)."""
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "TIMESTAMP"
    return _ARROW_TO_NAME.get(dtype, str(dtype).upper())


def sql_type_name(sql_type: Any) -> str:
    """The type name of a reflected SQLAlchemy column type."""
    import sqlalchemy as sa

    if isinstance(sql_type, sa.Boolean):
        return "BOOL"
    if isinstance(sql_type, sa.Integer):
        return "INT64"
    if isinstance(sql_type, (sa.Numeric, sa.Float)):
        return "DOUBLE"
    if isinstance(sql_type, (sa.DateTime, sa.Date)):
        return "TIMESTAMP"
    return "STRING"


def python_type_name(value: Any) -> str:
    """The type name of a value of a query's sample row (``None`` reads as ``STRING``)."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float) or type(value).__name__ == "Decimal":
        return "DOUBLE"
    if hasattr(value, "isoformat"):
        return "TIMESTAMP"
    return "STRING"


def value_type(name: str) -> ValueType:
    """Feast's ``ValueType`` of a type name (``NUMERIC(12,2)`` reads as ``NUMERIC``).

    Raises:
        ValueError: The type has no Feast value type (the message says how to cast it).
    """
    base = name.upper().split("(")[0].strip()
    try:
        return _NAME_TO_VALUE_TYPE[base]
    except KeyError as e:
        raise ValueError(
            f"column type {name!r} has no Feast value type; cast the column to text, integer, "
            "numeric, boolean or timestamp in the DWH query"
        ) from e
