"""Streamed reads of a warehouse table or query, id lookups, and appends (offline writes).

Reads are streamed, so memory stays flat however many rows a table has. Two paths, one result:

- PostgreSQL bulk reads (:func:`stream_rows`) go through ADBC (``adbc-driver-postgresql``: the
  server's binary ``COPY`` decoded into Arrow in C, no Python object per value), re-chunked to
  ``chunk_size`` rows and conformed by :func:`~xiva_source.dwh.arrow.conform_arrow`. Measured
  2-3x the row path (``bench/dwh_read.py``, docs/dwh.md).
- Everything else (SQLite, id lookups, a column type ADBC's rules do not cover) uses SQLAlchemy
  with a server-side cursor (``yield_per``), each chunk converted by
  :func:`~xiva_source.dwh.arrow.rows_to_arrow`.

Both give the same tables (values, types, nulls); ``tests/xiva_source/dwh/test_fast_reads.py``
compares them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xiva_source.dwh.arrow import (
    UnsupportedColumnError,
    conform_arrow,
    latest_per_customer,
    rows_to_arrow,
    table_records,
)
from xiva_source.dwh.engine import (
    bind_timestamp,
    get_engine,
    session_settings,
    sql_error_text,
    timeout_text,
)
from xiva_source.dwh.errors import DwhError
from xiva_source.features.catalogue import ENTITY
from xiva_source.redaction import redact_url

__all__ = [
    "ID_LOOKUP_BATCH",
    "CustomerRange",
    "ReadPath",
    "TableSpec",
    "customer_boundaries",
    "customer_range_condition",
    "lookup_rows",
    "stream_rows",
    "stream_statement",
    "window_counts",
    "write_rows",
    "xid_horizon",
]

ID_LOOKUP_BATCH = 1000
"""Ids per ``IN (...)`` query: well under every backend's bound-parameter limit."""

CustomerRange = tuple[str | None, str | None]
"""``(lower, upper)``: the customers ``lower <= id < upper`` (ids as text; a ``None`` bound is
open, and an open lower bound includes rows without an id) (:func:`customer_range_condition`)."""

ReadPath = Literal["auto", "adbc", "rows"]
"""How a read reaches Arrow: ``auto`` (ADBC on PostgreSQL, else rows), ``adbc``
(PostgreSQL only; a column type without a rule still falls back to rows), ``rows`` (SQLAlchemy
cursor + :func:`~xiva_source.dwh.arrow.rows_to_arrow`)."""

logger = logging.getLogger(__name__)

# ADBC's COPY reader returns record batches of about this many bytes (its default is 16 MB):
# smaller keeps a chunk's peak memory near the row path's.
_ADBC_BATCH_BYTES = 4 * 1024 * 1024

_TIE_RANK = "_xiva_tie_rank"
_READ_HINT = (
    "Check DWH_URL, that the DWH is reachable and that the table/query and its columns exist "
    "(see docs/feature-repo.md)."
)


@dataclass(frozen=True)
class TableSpec:
    """Where rows come from: a table (``schema.table`` allowed) or a SQL query, exactly one.

    Attributes:
        table: Table or view name.
        query: A ``SELECT`` whose result has the entity, feature and timestamp columns.
        created_timestamp_column: The row-creation column deciding rows tied on the event
            timestamp (Feast's ``created_timestamp_column``); empty: none.

    Raises:
        ValueError: Neither or both of ``table`` and ``query`` given.
    """

    table: str | None = None
    query: str | None = None
    created_timestamp_column: str = ""

    def __post_init__(self) -> None:
        if bool(self.table) == bool(self.query):
            raise ValueError(
                "give exactly one of table= or query= (a DWH table/view name, or a SELECT "
                "returning customer_id, the features and the timestamp column)"
            )

    def from_clause(self, columns: Sequence[str], timestamp_field: str) -> sa.FromClause:
        """A selectable exposing ``columns``; the timestamp column is typed ``DateTime``.

        With a :attr:`created_timestamp_column`, a customer's rows tied on ``timestamp_field``
        are one row, the latest created (a row without a created timestamp loses a tie; which
        of rows tied on both is kept is unspecified), as Feast's stores decide a tie. Every read
        (streams, customer ranges, lookups, historical retrieval) sees that one row. A filter on
        the customer or the timestamp still reaches the table: both are partition keys, so
        PostgreSQL pushes it below the window.
        """
        created = self.created_timestamp_column
        wanted = list(columns)
        if created:
            wanted = list(dict.fromkeys([*wanted, ENTITY, timestamp_field, created]))
        cols = [
            sa.column(c, sa.DateTime()) if c in (timestamp_field, created) else sa.column(c)
            for c in wanted
        ]
        src: sa.FromClause
        if self.table:
            schema, _, name = self.table.rpartition(".")
            src = sa.table(name, *cols, schema=schema or None)
        else:
            assert self.query is not None
            src = sa.text(self.query).columns(*cols).subquery("dwh_source")
        if not created:
            return src
        rank = sa.func.row_number().over(
            partition_by=[src.c[ENTITY], src.c[timestamp_field]],
            order_by=src.c[created].desc().nulls_last(),
        )
        ranked = sa.select(*src.c, rank.label(_TIE_RANK)).subquery("dwh_ranked")
        return (
            sa.select(*(ranked.c[c] for c in columns))
            .where(ranked.c[_TIE_RANK] == 1)
            .subquery("dwh_latest")
        )


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
    customer_range: CustomerRange | None = None,
    path: ReadPath = "auto",
    also: Sequence[tuple[datetime, datetime]] | None = None,
    written_since: tuple[datetime, XidHorizon] | None = None,
) -> Iterator[pa.Table]:
    """Stream the rows of a table or query whose timestamp is in ``[start_date, end_date]``.

    Args:
        url: SQLAlchemy URL of the DWH.
        spec: The table or query (its ties on the timestamp decided: :meth:`TableSpec.from_clause`).
        columns: Columns to read (the timestamp column, and the spec's created timestamp column
            if it names one, are added if missing).
        timestamp_field: The event-timestamp column.
        start_date: Inclusive lower bound, or ``None`` for no lower bound.
        end_date: Inclusive upper bound, or ``None`` for no upper bound.
        chunk_size: Rows per yielded table (and per server-side fetch).
        types: Known Arrow types per column (see :func:`~xiva_source.dwh.arrow.rows_to_arrow`).
        order_by_timestamp: Oldest rows first (a customer's latest row comes last, so a writer
            that lets the last write win keeps it).
        customer_range: Only customers ``lower <= id < upper`` (as text; ``None`` bounds are
            open, and an open lower bound includes rows without an id): a part of a read
            split over workers (:func:`customer_boundaries`).
        path: How rows reach Arrow (:data:`ReadPath`); the result is the same either way.
        also: Intervals ``(lo, hi]`` before ``start_date`` whose rows are read too (the job's
            lookback where rows arrived late).
        written_since: ``(lo, horizon)``: also the rows stamped from ``lo`` on that a snapshot
            taken at ``horizon`` could not see (:func:`xid_horizon`; PostgreSQL tables only):
            the rows committed since an earlier read, whatever their timestamp.

    Yields:
        Arrow tables of at most ``chunk_size`` rows, ``timestamp_field`` (and the created
        timestamp column) as UTC timestamps.

    Raises:
        DwhError: Connection or SQL failure (the message names the URL without its password).
    """
    stamps = tuple(c for c in (timestamp_field, spec.created_timestamp_column) if c)
    cols = list(dict.fromkeys([*columns, *stamps]))
    engine = get_engine(url)
    src = spec.from_clause(cols, timestamp_field)
    ts = src.c[timestamp_field]
    stmt = sa.select(*(src.c[c] for c in cols))
    if start_date is not None:
        since = ts >= bind_timestamp(engine, start_date)
        parts = [
            sa.and_(ts > bind_timestamp(engine, lo), ts <= bind_timestamp(engine, hi))
            for lo, hi in also or ()
        ]
        if written_since is not None:
            lo, xid = written_since
            parts.append(sa.and_(ts >= bind_timestamp(engine, lo), _written_since(xid)))
        stmt = stmt.where(sa.or_(since, *parts) if parts else since)
    if end_date is not None:
        stmt = stmt.where(ts <= bind_timestamp(engine, end_date))
    if customer_range is not None:
        lower, upper = customer_range
        key = sa.cast(src.c[ENTITY], sa.String)
        stmt = stmt.where(customer_range_condition(key, lower=lower, upper=upper))
    if order_by_timestamp:
        stmt = stmt.order_by(ts)
    yield from stream_statement(engine, url, stmt, cols, chunk_size, types, stamps, path=path)


def window_counts(
    url: str, spec: TableSpec, timestamp_field: str, edges: Sequence[datetime]
) -> list[int]:
    """How many rows have their timestamp in each interval ``(edges[i], edges[i + 1]]``.

    One query, one ``SUM(CASE ...)`` per interval (portable to every backend): the database
    counts the window's rows, none is sent. The job's DWH lookback compares these counts between
    runs to find where late rows landed (:mod:`xiva_source.jobs.lookback`).

    Args:
        url: SQLAlchemy URL of the DWH.
        spec: The table or query.
        timestamp_field: The event-timestamp column.
        edges: Increasing moments (at least two).

    Returns:
        ``len(edges) - 1`` counts.

    Raises:
        DwhError: Connection or SQL failure.
    """
    if len(edges) < 2:
        return []
    engine = get_engine(url)
    src = spec.from_clause([ENTITY, timestamp_field], timestamp_field)
    ts = src.c[timestamp_field]
    bounds = [bind_timestamp(engine, e) for e in edges]
    sums = [
        sa.func.sum(sa.case((sa.and_(ts > lo, ts <= hi), 1), else_=0)).label(f"n{i}")
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]
    stmt = sa.select(*sums).where(ts > bounds[0], ts <= bounds[-1])
    try:
        with engine.connect() as conn:
            row = conn.execute(stmt).one()
    except sa.exc.SQLAlchemyError as e:
        raise _read_failed(url, sql_error_text(e)) from e
    return [int(n or 0) for n in row]


_XID_SPACE = 2**32

XidHorizon = tuple[int, tuple[int, ...]]
"""A PostgreSQL snapshot's ``(xmax, xip)``: the transactions it cannot see are those from
``xmax`` on and those in ``xip`` (in progress when it was taken)."""


def xid_horizon(url: str, spec: TableSpec) -> XidHorizon | None:
    """What a snapshot taken now cannot see (PostgreSQL tables only): its ``(xmax, xip)``.

    Every row a later read does not know was written by a transaction from ``xmax`` on or in
    ``xip``, so ``written_since`` (:func:`stream_rows`) finds the rows committed since, whatever
    their timestamp: the job's lookback reads again only those (:mod:`xiva_source.jobs.lookback`).
    (Not the snapshot's ``xmin``: one long transaction anywhere on the server would hold it back.)

    Returns:
        The 64-bit ids; ``None`` for another backend, a query, or a table whose ties are decided
        by a created timestamp (its rows are a window's, without ``xmin``).

    Raises:
        DwhError: Connection or SQL failure.
    """
    engine = get_engine(url)
    if engine.dialect.name != "postgresql" or not spec.table or spec.created_timestamp_column:
        return None
    try:
        with engine.connect() as conn:
            xmax, xip = conn.execute(
                sa.text(
                    "SELECT pg_snapshot_xmax(s)::text::bigint, "
                    "array(SELECT x::text::bigint FROM pg_snapshot_xip(s) x) "
                    "FROM (SELECT pg_current_snapshot() AS s) q"
                )
            ).one()
    except sa.exc.SQLAlchemyError as e:
        raise _read_failed(
            url, sql_error_text(e), hint="Check DWH_URL and that the DWH is reachable."
        ) from e
    return int(xmax), tuple(int(x) for x in xip or ())


def _written_since(horizon: XidHorizon) -> sa.ColumnElement[bool]:
    """Rows whose ``xmin`` a snapshot at ``horizon`` could not see (32-bit ids compared modulo
    2^32; frozen rows, ``xmin`` 2, are older)."""
    xmax, xip = horizon
    xmin: sa.ColumnElement[int] = sa.literal_column("xmin::text::bigint", sa.BigInteger())
    later = sa.and_(xmin >= 3, ((xmin - xmax % _XID_SPACE + _XID_SPACE) % _XID_SPACE) < 2**31)
    if not xip:
        return later
    return sa.or_(later, xmin.in_([x % _XID_SPACE for x in xip]))


def customer_range_condition(
    key: sa.ColumnElement[str], *, lower: str | None, upper: str | None
) -> sa.ColumnElement[bool]:
    """``lower <= key < upper``: a customer range (see :func:`stream_rows`'s ``customer_range``).

    Ranges cut at :func:`customer_boundaries` cover every row exactly once: ids compare as text
    on every backend (``key`` is the id cast to text), and a row without a customer id belongs to
    the first range (``lower`` ``None``).

    Args:
        key: The customer id as text.
        lower: Inclusive lower bound; ``None``: from the start, NULL ids included.
        upper: Exclusive upper bound, ``None`` for none.

    Returns:
        The condition.
    """
    if lower is None:
        return sa.true() if upper is None else sa.or_(key.is_(None), key < upper)
    condition = key >= lower
    return condition if upper is None else sa.and_(condition, key < upper)


def customer_boundaries(
    url: str,
    spec: TableSpec,
    timestamp_field: str,
    *,
    start_date: datetime | None,
    end_date: datetime | None,
    parts: int,
) -> list[str]:
    """Customer ids cutting the rows in the window into ``parts`` ranges of about equal size.

    One query: ``ntile(parts)`` over the ids (as text, the order the range conditions use),
    each tile's first id. Ranges are ``[None, b1), [b1, b2), ..., [bn, None)``: they cover every
    id whatever changed since (the boundaries only balance the work).

    Args:
        url: SQLAlchemy URL of the DWH.
        spec: The table or query.
        timestamp_field: The event-timestamp column (the window's).
        start_date: Inclusive lower bound of the window, ``None`` for none.
        end_date: Inclusive upper bound, ``None`` for none.
        parts: How many ranges are wanted (fewer come back when there are fewer ids).

    Returns:
        The sorted, distinct inner boundaries (at most ``parts - 1``).

    Raises:
        DwhError: Connection or SQL failure.
    """
    if parts <= 1:
        return []
    engine = get_engine(url)
    src = spec.from_clause([ENTITY, timestamp_field], timestamp_field)
    key = sa.cast(src.c[ENTITY], sa.String)
    ts = src.c[timestamp_field]
    inner = sa.select(key.label("k"), sa.func.ntile(parts).over(order_by=key).label("tile")).where(
        key.is_not(None)
    )
    if start_date is not None:
        inner = inner.where(ts >= bind_timestamp(engine, start_date))
    if end_date is not None:
        inner = inner.where(ts <= bind_timestamp(engine, end_date))
    tiles = inner.subquery("tiles")
    stmt = sa.select(sa.func.min(tiles.c.k)).group_by(tiles.c.tile).order_by(tiles.c.tile)
    try:
        with engine.connect() as conn:
            firsts = [row[0] for row in conn.execute(stmt)]
    except sa.exc.SQLAlchemyError as e:
        raise _read_failed(url, sql_error_text(e)) from e
    # Tile minima are sorted in the database's order already; distinct, the first dropped.
    bounds: list[str] = []
    for first in firsts[1:]:
        if first is not None and (not bounds or first != bounds[-1]):
            bounds.append(first)
    return bounds


def stream_statement(
    engine: Engine,
    url: str,
    stmt: sa.Executable,
    columns: Sequence[str],
    chunk_size: int,
    types: Mapping[str, pa.DataType] | None,
    timestamp_columns: Sequence[str],
    *,
    path: ReadPath = "rows",
) -> Iterator[pa.Table]:
    """Run ``stmt`` streamed and yield its rows as Arrow tables.

    Args:
        engine: The engine of ``url`` (:func:`~xiva_source.dwh.engine.get_engine`).
        url: The URL, for the error message (printed without its password).
        stmt: A ``SELECT`` of ``columns``, in that order.
        columns: The result's column names.
        chunk_size: Rows per yielded table.
        types: Known Arrow types per column.
        timestamp_columns: Columns read as UTC timestamps.
        path: How rows reach Arrow (:data:`ReadPath`; default ``rows``: lookups are small and
            use the pooled connection).

    Yields:
        Arrow tables of at most ``chunk_size`` rows.

    Raises:
        DwhError: Connection or SQL failure.
    """
    if path != "rows" and engine.dialect.name == "postgresql":
        fast = _stream_adbc(url, stmt, chunk_size, types, timestamp_columns)
        try:
            first = next(fast)
        except StopIteration:
            return
        except UnsupportedColumnError as e:
            logger.info("ADBC read falls back to rows: %s", e)
        else:
            yield first
            yield from fast
            return
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
            for part in result.partitions(chunk_size):
                yield rows_to_arrow(columns, part, types=types, timestamp_columns=timestamp_columns)
    except sa.exc.SQLAlchemyError as e:
        raise _read_failed(url, sql_error_text(e)) from e


def _stream_adbc(
    url: str,
    stmt: sa.Executable,
    chunk_size: int,
    types: Mapping[str, pa.DataType] | None,
    timestamp_columns: Sequence[str],
) -> Iterator[pa.Table]:
    """``stmt`` read through ADBC (binary ``COPY`` into Arrow), in chunks of ``chunk_size`` rows.

    Raises:
        UnsupportedColumnError: Before the first chunk, when a column has no Arrow rule.
        DwhError: Connection or SQL failure.
    """
    import adbc_driver_postgresql.dbapi as adbc

    sql = _postgres_sql(stmt)
    pending: pa.Table | None = None
    try:
        with adbc.connect(_libpq_uri(url)) as conn, conn.cursor() as cursor:
            # As get_engine's sessions: expressions of the query see UTC, a lock wait is bounded
            # (the COPY itself lasts as long as its rows take to consume: not bounded).
            for statement in session_settings(statement_timeout=False):
                cursor.execute(statement)
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_ADBC_BATCH_BYTES)}
            )
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                table = conform_arrow(batch, types=types, timestamp_columns=timestamp_columns)
                pending = table if pending is None else pa.concat_tables([pending, table])
                while pending.num_rows >= chunk_size:
                    yield pending.slice(0, chunk_size).combine_chunks()
                    pending = pending.slice(chunk_size)
            if pending is not None and pending.num_rows:
                yield pending.combine_chunks()
    except (UnsupportedColumnError, DwhError):
        raise
    except adbc.Error as e:
        raise _read_failed(url, _adbc_error_text(e)) from e


def _postgres_sql(stmt: sa.Executable) -> str:
    """``stmt`` as PostgreSQL text with its values inline (COPY takes no parameters).

    The values are the read's own bounds (timestamps, customer ids), rendered by SQLAlchemy's
    literal processors (quotes escaped); ``%`` is left alone (no pyformat paramstyle).
    """
    from sqlalchemy.dialects.postgresql import psycopg

    dialect = psycopg.dialect(paramstyle="numeric_dollar")
    assert isinstance(stmt, sa.ClauseElement)
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _libpq_uri(url: str) -> str:
    """The SQLAlchemy URL as the libpq URI ADBC takes (``postgresql+psycopg`` -> ``postgresql``)."""
    parsed = sa.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _adbc_error_text(error: Any) -> str:
    text = str(error).strip()
    lines = text.splitlines()
    return timeout_text(text) or f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


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


def _read_failed(url: str, error: str, *, hint: str = _READ_HINT) -> DwhError:
    """The one wording of a failed DWH read (the URL without its password)."""
    return DwhError(f"reading {redact_url(url)!r} failed: {error}", hint=hint)
