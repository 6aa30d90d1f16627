"""Streamed reads of a warehouse table or query, id lookups, and appends (offline writes).

Reads are streamed (server-side cursor on PostgreSQL, ``yield_per``), so memory stays flat however
many rows a table has; each chunk is converted to Arrow by
:func:`~xiva_source.dwh.arrow.rows_to_arrow`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xiva_source.dwh.arrow import latest_per_customer, rows_to_arrow, table_records
from xiva_source.dwh.engine import bind_timestamp, get_engine, sql_error_text
from xiva_source.dwh.errors import DwhError
from xiva_source.features.catalogue import ENTITY
from xiva_source.redaction import redact_url

__all__ = [
    "ID_LOOKUP_BATCH",
    "TableSpec",
    "lookup_rows",
    "stream_rows",
    "stream_statement",
    "write_rows",
]

ID_LOOKUP_BATCH = 1000
"""Ids per ``IN (...)`` query: well under every backend's bound-parameter limit."""


@dataclass(frozen=True)
class TableSpec:
    """Where rows come from: a table (``schema.table`` allowed) or a SQL query, exactly one.

    Attributes:
        table: Table or view name.
        query: A ``SELECT`` whose result has the entity, feature and timestamp columns.

    Raises:
        ValueError: Neither or both of ``table`` and ``query`` given.
    """

    table: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        if bool(self.table) == bool(self.query):
            raise ValueError(
                "give exactly one of table= or query= (a DWH table/view name, or a SELECT "
                "returning customer_id, the features and the timestamp column)"
            )

    def from_clause(self, columns: Sequence[str], timestamp_field: str) -> sa.FromClause:
        """A selectable exposing ``columns``; the timestamp column is typed ``DateTime``."""
        cols = [
            sa.column(c, sa.DateTime()) if c == timestamp_field else sa.column(c) for c in columns
        ]
        if self.table:
            schema, _, name = self.table.rpartition(".")
            return sa.table(name, *cols, schema=schema or None)
        assert self.query is not None
        return sa.text(self.query).columns(*cols).subquery("dwh_source")


def stream_rows(
    url: str,
    spec: TableSpec,
    *,
    columns: Sequence[str],
    timestamp_field: str,
    start_date: datetime | None,
    end_date: datetime | None,
    chunk_size: int = 10_000,
    types: Mapping[str, pa.DataType] | None = None,
    order_by_timestamp: bool = False,
) -> Iterator[pa.Table]:
    """Stream the rows of a table or query whose timestamp is in ``[start_date, end_date]``.

    Args:
        url: SQLAlchemy URL of the DWH.
        spec: The table or query.
        columns: Columns to read (the timestamp column is added if missing).
        timestamp_field: The event-timestamp column.
        start_date: Inclusive lower bound, or ``None`` for no lower bound.
        end_date: Inclusive upper bound, or ``None`` for no upper bound.
        chunk_size: Rows per yielded table (and per server-side fetch).
        types: Known Arrow types per column (see :func:`~xiva_source.dwh.arrow.rows_to_arrow`).
        order_by_timestamp: Oldest rows first (a customer's latest row comes last, so a writer
            that lets the last write win keeps it).

    Yields:
        Arrow tables of at most ``chunk_size`` rows, ``timestamp_field`` as UTC timestamps.

    Raises:
        DwhError: Connection or SQL failure (the message names the URL without its password).
    """
    cols = list(dict.fromkeys([*columns, timestamp_field]))
    engine = get_engine(url)
    src = spec.from_clause(cols, timestamp_field)
    ts = src.c[timestamp_field]
    stmt = sa.select(*(src.c[c] for c in cols))
    if start_date is not None:
        stmt = stmt.where(ts >= bind_timestamp(engine, start_date))
    if end_date is not None:
        stmt = stmt.where(ts <= bind_timestamp(engine, end_date))
    if order_by_timestamp:
        stmt = stmt.order_by(ts)
    yield from stream_statement(engine, url, stmt, cols, chunk_size, types, (timestamp_field,))


def stream_statement(
    engine: Engine,
    url: str,
    stmt: sa.Executable,
    columns: Sequence[str],
    chunk_size: int,
    types: Mapping[str, pa.DataType] | None,
    timestamp_columns: Sequence[str],
) -> Iterator[pa.Table]:
    """Run ``stmt`` with a streaming cursor and yield its rows as Arrow tables.

    Args:
        engine: The engine of ``url`` (:func:`~xiva_source.dwh.engine.get_engine`).
        url: The URL, for the error message (printed without its password).
        stmt: A ``SELECT`` of ``columns``, in that order.
        columns: The result's column names.
        chunk_size: Rows per yielded table.
        types: Known Arrow types per column.
        timestamp_columns: Columns read as UTC timestamps.

    Yields:
        Arrow tables of at most ``chunk_size`` rows.

    Raises:
        DwhError: Connection or SQL failure.
    """
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
            for part in result.partitions(chunk_size):
                yield rows_to_arrow(columns, part, types=types, timestamp_columns=timestamp_columns)
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"reading {redact_url(url)!r} failed: {sql_error_text(e)}",
            hint="Check DWH_URL, that the DWH is reachable and that the table/query and its "
            "columns exist (see docs/feature-repo.md).",
        ) from e


def lookup_rows(
    url: str,
    spec: TableSpec,
    ids: Sequence[str],
    *,
    columns: Sequence[str],
    timestamp_field: str,
    end_date: datetime | None = None,
    types: Mapping[str, pa.DataType] | None = None,
) -> pa.Table:
    """The latest row (timestamp <= ``end_date``) of each of ``ids``, read in batches of 1,000.

    Args:
        url: SQLAlchemy URL of the DWH.
        spec: The table or query.
        ids: Customer ids to look up.
        columns: Columns to read (the entity and timestamp columns are added if missing).
        timestamp_field: The event-timestamp column.
        end_date: Ignore rows after this moment (``None``: no bound).
        types: Known Arrow types per column.

    Returns:
        One row per id found; ids not in the source are simply absent.

    Raises:
        DwhError: Connection or SQL failure.
    """
    cols = list(dict.fromkeys([ENTITY, *columns, timestamp_field]))
    engine = get_engine(url)
    src = spec.from_clause(cols, timestamp_field)
    # A PostgreSQL UUID column does not compare with text parameters; compare as text.
    key = sa.cast(src.c[ENTITY], sa.String)
    tables: list[pa.Table] = []
    for start in range(0, len(ids), ID_LOOKUP_BATCH):
        batch = list(ids[start : start + ID_LOOKUP_BATCH])
        stmt = sa.select(*(src.c[c] for c in cols)).where(key.in_(batch))
        if end_date is not None:
            stmt = stmt.where(src.c[timestamp_field] <= bind_timestamp(engine, end_date))
        tables.extend(
            stream_statement(engine, url, stmt, cols, ID_LOOKUP_BATCH, types, (timestamp_field,))
        )
    if not tables:
        return rows_to_arrow(cols, [], types=types, timestamp_columns=(timestamp_field,))
    return latest_per_customer(pa.concat_tables(tables, promote_options="default"), timestamp_field)


def write_rows(url: str, table_name: str, table: pa.Table) -> int:
    """Append ``table``'s rows to an existing DWH table (``offline_write_batch``).

    Args:
        url: SQLAlchemy URL of the DWH.
        table_name: The table (``schema.table`` allowed); it must exist.
        table: The rows; its column names are the table's.

    Returns:
        The number of rows written.

    Raises:
        DwhError: The table does not exist or the insert failed.
    """
    engine = get_engine(url)
    schema, _, name = table_name.rpartition(".")
    target = sa.table(name, *(sa.column(c) for c in table.column_names), schema=schema or None)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(target), table_records(table))
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"writing to {table_name!r} failed: {sql_error_text(e)}",
            hint="Offline writes append rows: the table must exist, accept every pushed column "
            "and allow the rows (a primary key on customer_id rejects a second row per customer).",
        ) from e
    return table.num_rows
