"""Data-warehouse access through SQLAlchemy: engines, streamed reads, the Xiva snapshot table.

Every read of the DWH goes through this module so the type rules live in one place: ``DECIMAL``
becomes ``float64``, integers stay nullable ``int64``, UUIDs become strings and timestamps become
UTC (a naive ``TIMESTAMP`` is read as UTC). Reads are streamed (server-side cursor on PostgreSQL,
``yield_per``), so memory stays flat however many rows a table has.

The snapshot table (``xiva_customer_snapshots`` by default) keeps every Xiva pull: Xiva has no
history of its own, so this table is what point-in-time correct training data over Xiva features
is built from.

:func:`create_demo_dwh` creates and fills the tables of the DWH contract (``docs/feature-repo.md``)
deterministically; the demo, the benchmark and the tests use it.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from xiva_source.dwh.errors import DwhError
from xiva_source.redaction import redact_url

__all__ = [
    "CUSTOMER_FEATURES_TABLE",
    "ENTITY_COLUMN",
    "EVENT_TIMESTAMP",
    "HISTORY_TABLES",
    "PULLED_AT",
    "SNAPSHOT_TABLE",
    "DemoDwh",
    "TableSpec",
    "append_snapshots",
    "create_demo_dwh",
    "dispose_engines",
    "get_engine",
    "latest_per_customer",
    "lookup_rows",
    "read_latest_snapshots",
    "rows_to_arrow",
    "sql_error_text",
    "stream_rows",
    "stream_snapshots",
    "write_rows",
]

logger = logging.getLogger(__name__)

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

ENTITY_COLUMN = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"
PULLED_AT = "pulled_at"
_ID_LOOKUP_BATCH = 1000

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# Engines


def get_engine(url: str) -> Engine:
    """The process-wide SQLAlchemy engine for ``url`` (created once, then reused).

    PostgreSQL sessions are set to ``TIME ZONE 'UTC'`` so timestamp comparisons do not depend
    on the server's default zone; a SQLite file's directory is created if missing.

    Raises:
        DwhError: The URL does not parse or names a driver that is not installed.
    """
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            parsed = sa.make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (
                None,
                "",
                ":memory:",
            ):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        except Exception as e:  # ArgumentError, NoSuchModuleError, ImportError
            raise DwhError(
                f"cannot use DWH URL {redact_url(url)!r} ({type(e).__name__}: {e})",
                hint="Set DWH_URL to a SQLAlchemy URL such as "
                "postgresql+psycopg://user:pass@host:5432/dwh or sqlite:///data/dwh.sqlite.",
            ) from e
        if engine.dialect.name == "postgresql":
            sa.event.listen(engine, "connect", _set_utc)
        _engines[url] = engine
        return engine


def _set_utc(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.commit()


def dispose_engines() -> None:
    """Close every pooled connection (tests and short-lived processes call this at exit)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


# --------------------------------------------------------------------------------------------
# Type conversion


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


def _cast_to(table: pa.Table, types: Mapping[str, pa.DataType]) -> pa.Table:
    for i, name in enumerate(table.column_names):
        want = types.get(name)
        if want is not None and table.schema.field(i).type != want:
            table = table.set_column(i, name, table.column(i).cast(want))
    return table


# --------------------------------------------------------------------------------------------
# Reading a source table or query


@dataclass(frozen=True)
class TableSpec:
    """Where rows come from: a table (``schema.table`` allowed) or a SQL query, exactly one.

    Attributes:
        table: Table or view name.
        query: A ``SELECT`` whose result has the entity, feature and timestamp columns.
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


def _bind_ts(engine: Engine, value: datetime) -> datetime:
    """A timestamp bound the way the backend compares it: UTC, naive for SQLite."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


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
        types: Known Arrow types per column (see :func:`rows_to_arrow`).

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
        stmt = stmt.where(ts >= _bind_ts(engine, start_date))
    if end_date is not None:
        stmt = stmt.where(ts <= _bind_ts(engine, end_date))
    yield from _execute_stream(engine, url, stmt, cols, chunk_size, types, (timestamp_field,))


def _execute_stream(
    engine: Engine,
    url: str,
    stmt: sa.Executable,
    cols: Sequence[str],
    chunk_size: int,
    types: Mapping[str, pa.DataType] | None,
    timestamp_columns: Sequence[str],
) -> Iterator[pa.Table]:
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
            for part in result.partitions(chunk_size):
                yield rows_to_arrow(cols, part, types=types, timestamp_columns=timestamp_columns)
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"reading {redact_url(url)!r} failed: {sql_error_text(e)}",
            hint="Check DWH_URL, that the DWH is reachable and that the table/query and its "
            "columns exist (see docs/feature-repo.md).",
        ) from e


def sql_error_text(error: BaseException) -> str:
    """One short line naming a database error (SQLAlchemy's multi-line text cut to its cause)."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


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

    Returns:
        One row per id found; ids not in the source are simply absent.

    Raises:
        DwhError: Connection or SQL failure.
    """
    cols = list(dict.fromkeys([ENTITY_COLUMN, *columns, timestamp_field]))
    engine = get_engine(url)
    src = spec.from_clause(cols, timestamp_field)
    # A PostgreSQL UUID column does not compare with text parameters; compare as text.
    key = sa.cast(src.c[ENTITY_COLUMN], sa.String)
    tables: list[pa.Table] = []
    for start in range(0, len(ids), _ID_LOOKUP_BATCH):
        batch = list(ids[start : start + _ID_LOOKUP_BATCH])
        stmt = sa.select(*(src.c[c] for c in cols)).where(key.in_(batch))
        if end_date is not None:
            stmt = stmt.where(src.c[timestamp_field] <= _bind_ts(engine, end_date))
        tables.extend(
            _execute_stream(engine, url, stmt, cols, _ID_LOOKUP_BATCH, types, (timestamp_field,))
        )
    if not tables:
        return rows_to_arrow(cols, [], types=types, timestamp_columns=(timestamp_field,))
    return latest_per_customer(pa.concat_tables(tables, promote_options="default"), timestamp_field)


def latest_per_customer(table: pa.Table, timestamp_field: str = EVENT_TIMESTAMP) -> pa.Table:
    """Keep each customer's row with the latest ``timestamp_field`` (then latest ``pulled_at``)."""
    if table.num_rows == 0:
        return table
    sort = [(ENTITY_COLUMN, "ascending"), (timestamp_field, "descending")]
    if PULLED_AT in table.column_names:
        sort.append((PULLED_AT, "descending"))
    table = table.sort_by(sort)
    ids = table.column(ENTITY_COLUMN).to_pylist()
    keep = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    return table.take(pa.array(keep, type=pa.int64()))


def write_rows(url: str, table_name: str, table: pa.Table) -> int:
    """Append ``table``'s rows to an existing DWH table (``offline_write_batch``).

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
            conn.execute(sa.insert(target), _records(table))
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"writing to {table_name!r} failed: {sql_error_text(e)}",
            hint="Offline writes append rows: the table must exist, accept every pushed column "
            "and allow the rows (a primary key on customer_id rejects a second row per customer).",
        ) from e
    return table.num_rows


def _records(table: pa.Table) -> list[dict[str, Any]]:
    return [
        {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in rec.items()}
        for rec in table.to_pylist()
    ]


# --------------------------------------------------------------------------------------------
# The Xiva snapshot table


def _sql_type(dtype: pa.DataType) -> sa.types.TypeEngine[Any]:
    if pa.types.is_boolean(dtype):
        return sa.Boolean()
    if pa.types.is_integer(dtype):
        return sa.BigInteger()
    if pa.types.is_floating(dtype):
        return sa.Float()
    if pa.types.is_timestamp(dtype):
        return sa.DateTime()
    return sa.Text()


def _snapshot_table(name: str, feature_types: Mapping[str, pa.DataType]) -> sa.Table:
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        sa.MetaData(),
        sa.Column(ENTITY_COLUMN, sa.String(64), nullable=False),
        *(sa.Column(f, _sql_type(t)) for f, t in feature_types.items()),
        sa.Column(EVENT_TIMESTAMP, sa.DateTime(), nullable=False),
        sa.Column(PULLED_AT, sa.DateTime(), nullable=False),
        sa.Index(f"ix_{table}_customer_ts", ENTITY_COLUMN, EVENT_TIMESTAMP),
        sa.Index(f"ix_{table}_ts", EVENT_TIMESTAMP),
        schema=schema or None,
    )


def _ensure_snapshot_table(
    engine: Engine, name: str, feature_types: Mapping[str, pa.DataType]
) -> sa.Table:
    table = _snapshot_table(name, feature_types)
    table.metadata.create_all(engine, checkfirst=True)
    existing = {c["name"] for c in sa.inspect(engine).get_columns(table.name, schema=table.schema)}
    missing = [c for c in table.columns if c.name not in existing]
    if missing:
        # A custom feature was added since the table was created: widen the table in place.
        prep = engine.dialect.identifier_preparer
        with engine.begin() as conn:
            for col in missing:
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {prep.format_table(table)} ADD COLUMN "
                        f"{prep.quote(col.name)} {col.type.compile(engine.dialect)}"
                    )
                )
    return table


def append_snapshots(
    url: str,
    table_name: str,
    table: pa.Table,
    feature_types: Mapping[str, pa.DataType],
    *,
    pulled_at: datetime | None = None,
) -> int:
    """Append one Xiva pull to the snapshot table (created, or widened, if needed).

    Args:
        url: SQLAlchemy URL of the database holding the snapshot table.
        table_name: The table (``schema.table`` allowed).
        table: Rows with ``customer_id``, features and ``event_timestamp``.
        feature_types: Every feature's Arrow type (the table's columns).
        pulled_at: When the pull ran (default now, UTC).

    Returns:
        Rows written.

    Raises:
        DwhError: The table cannot be created or written.
    """
    if table.num_rows == 0:
        return 0
    engine = get_engine(url)
    pulled = (pulled_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    try:
        target = _ensure_snapshot_table(engine, table_name, feature_types)
        wanted = [c.name for c in target.columns if c.name != PULLED_AT]
        records = []
        for rec in table.to_pylist():
            row = {c: rec.get(c) for c in wanted}
            row[EVENT_TIMESTAMP] = _naive_utc(row[EVENT_TIMESTAMP])
            row[PULLED_AT] = pulled
            records.append(row)
        with engine.begin() as conn:
            conn.execute(sa.insert(target), records)
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"appending to snapshot table {table_name!r} at {redact_url(url)!r} failed: "
            f"{sql_error_text(e)}",
            hint="Check the offline store's snapshot_url (default DWH_URL) and that the user "
            "may create and write the table.",
        ) from e
    return len(records)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _snapshot_select(
    engine: Engine, table_name: str, feature_names: Sequence[str]
) -> tuple[sa.Table, list[str]] | None:
    """The snapshot table and its columns to read, or ``None`` when no pull created it yet."""
    try:
        return _reflect_snapshots(engine, table_name, feature_names)
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(f"reading snapshot table {table_name!r} failed: {sql_error_text(e)}") from e


def _reflect_snapshots(
    engine: Engine, table_name: str, feature_names: Sequence[str]
) -> tuple[sa.Table, list[str]] | None:
    schema, _, name = table_name.rpartition(".")
    if not sa.inspect(engine).has_table(name, schema=schema or None):
        return None
    target = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=engine)
    missing = [f for f in feature_names if f not in target.c]
    if missing:
        raise DwhError(
            f"snapshot table {table_name!r} has no column(s) {missing}",
            hint="Run one Xiva pull (feast materialize) after adding a custom feature: the pull "
            "widens the table.",
        )
    return target, [ENTITY_COLUMN, *feature_names, EVENT_TIMESTAMP, PULLED_AT]


def stream_snapshots(
    url: str,
    table_name: str,
    feature_names: Sequence[str],
    *,
    start_date: datetime | None,
    end_date: datetime | None,
    types: Mapping[str, pa.DataType] | None = None,
    chunk_size: int = 10_000,
) -> Iterator[pa.Table]:
    """Stream snapshot rows whose event timestamp is in ``[start_date, end_date]``.

    A missing table yields nothing (no Xiva pull has run yet).

    Raises:
        DwhError: Connection or SQL failure.
    """
    engine = get_engine(url)
    found = _snapshot_select(engine, table_name, feature_names)
    if found is None:
        return
    target, cols = found
    stmt = sa.select(*(target.c[c] for c in cols))
    if start_date is not None:
        stmt = stmt.where(target.c[EVENT_TIMESTAMP] >= _bind_ts(engine, start_date))
    if end_date is not None:
        stmt = stmt.where(target.c[EVENT_TIMESTAMP] <= _bind_ts(engine, end_date))
    yield from _execute_stream(
        engine, url, stmt, cols, chunk_size, types, (EVENT_TIMESTAMP, PULLED_AT)
    )


def read_latest_snapshots(
    url: str,
    table_name: str,
    ids: Sequence[str],
    feature_names: Sequence[str],
    *,
    end_date: datetime | None = None,
    types: Mapping[str, pa.DataType] | None = None,
) -> pa.Table | None:
    """Each of ``ids``' latest snapshot (Xiva's last known values), or ``None`` if no table.

    Raises:
        DwhError: Connection or SQL failure.
    """
    engine = get_engine(url)
    found = _snapshot_select(engine, table_name, feature_names)
    if found is None:
        return None
    target, cols = found
    tables: list[pa.Table] = []
    for start in range(0, len(ids), _ID_LOOKUP_BATCH):
        stmt = sa.select(*(target.c[c] for c in cols)).where(
            target.c[ENTITY_COLUMN].in_(list(ids[start : start + _ID_LOOKUP_BATCH]))
        )
        if end_date is not None:
            stmt = stmt.where(target.c[EVENT_TIMESTAMP] <= _bind_ts(engine, end_date))
        tables.extend(
            _execute_stream(
                engine, url, stmt, cols, _ID_LOOKUP_BATCH, types, (EVENT_TIMESTAMP, PULLED_AT)
            )
        )
    if not tables:
        return rows_to_arrow(cols, [], types=types, timestamp_columns=(EVENT_TIMESTAMP, PULLED_AT))
    return latest_per_customer(pa.concat_tables(tables, promote_options="default"))


# --------------------------------------------------------------------------------------------
# The demo / test DWH


class _HasCustomerIds(Protocol):
    def customer_ids(self) -> list[str]: ...


@dataclass
class DemoDwh:
    """What :func:`create_demo_dwh` wrote.

    Attributes:
        customer_ids: Every customer in ``customer_features_view``.
        shared_ids: Customers in both the DWH and Xiva.
        dwh_only_ids: Customers only in the DWH.
        xiva_only_ids: Customers only in Xiva (not in the DWH).
        rows: Rows written per table.
    """

    customer_ids: list[str]
    shared_ids: list[str]
    dwh_only_ids: list[str]
    xiva_only_ids: list[str]
    rows: dict[str, int] = field(default_factory=dict)


_STATUSES = ("active", "inactive", "suspended")
_TIERS = ("bronze", "silver", "gold", "platinum")
_CITIES = ("Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa", "Halifax")
_TX_TYPES = ("purchase", "refund", "top_up")
_NULL_RATE = 0.12


def _demo_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    uid = sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
    return {
        CUSTOMER_FEATURES_TABLE: sa.Table(
            CUSTOMER_FEATURES_TABLE,
            metadata,
            sa.Column("customer_id", uid, primary_key=True),
            sa.Column("customer_status", sa.String(20)),
            sa.Column("total_revenue", sa.Numeric(12, 2)),
            sa.Column("transaction_count", sa.Integer),
            sa.Column("last_purchase_days_ago", sa.Integer),
            sa.Column("avg_transaction_value", sa.Numeric(10, 2)),
            sa.Column("lifetime_value", sa.Numeric(12, 2)),
            sa.Column("churn_score", sa.Numeric(5, 4)),
            sa.Column("customer_tier", sa.String(50)),
            sa.Column("city", sa.String(100)),
            sa.Column("age", sa.Integer),
            sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
        ),
        "customer_transaction_history": sa.Table(
            "customer_transaction_history",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", uid, nullable=False, index=True),
            sa.Column("transaction_date", sa.DateTime, nullable=False),
            sa.Column("transaction_amount", sa.Numeric(10, 2)),
            sa.Column("transaction_type", sa.String(50)),
        ),
        "customer_churn_history": sa.Table(
            "customer_churn_history",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", uid, nullable=False, index=True),
            sa.Column("churned", sa.Boolean, nullable=False),
            sa.Column("churn_date", sa.Date),
            sa.Column("total_revenue", sa.Numeric(12, 2)),
            sa.Column("transaction_count", sa.Integer),
            sa.Column("snapshot_date", sa.Date, nullable=False),
        ),
        "customer_offer_history": sa.Table(
            "customer_offer_history",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", uid, nullable=False, index=True),
            sa.Column("offer_id", sa.Integer, nullable=False),
            sa.Column("converted", sa.Boolean, nullable=False),
            sa.Column("total_revenue", sa.Numeric(12, 2)),
            sa.Column("transaction_count", sa.Integer),
            sa.Column("created_at", sa.DateTime, nullable=False),
        ),
    }


def create_demo_dwh(
    url: str,
    customers: Sequence[str] | _HasCustomerIds,
    seed: int = 0,
    *,
    reference_time: datetime | None = None,
    xiva_only_every: int = 10,
    dwh_only_fraction: float = 0.1,
) -> DemoDwh:
    """Create (replacing them) and fill the DWH contract's tables, deterministically.

    ``customer_features_view`` gets every ``xiva_only_every``-th customer left out (they exist
    only in Xiva) plus ``dwh_only_fraction`` extra customers that exist only in the DWH; about
    12% of the nullable cells are NULL, so ``auto`` mode's per-feature merge is observable.
    ``updated_at`` spreads over the three years before ``reference_time`` (some rows are years
    old). The history tables get transactions, monthly churn snapshots and offers for every DWH
    customer.

    Args:
        url: SQLAlchemy URL (SQLite or PostgreSQL; a PostgreSQL URL's ``search_path`` picks the
            schema).
        customers: Customer ids, or a simulator (its ``customer_ids()`` are used).
        seed: Same seed and customers, same rows.
        reference_time: "Now" of the data (default: the start of the current hour, UTC).
        xiva_only_every: Leave every n-th customer out of the DWH (0 keeps all).
        dwh_only_fraction: Extra DWH-only customers, as a fraction of ``customers``.

    Returns:
        A :class:`DemoDwh` naming the shared, DWH-only and Xiva-only customers.

    Raises:
        DwhError: The tables cannot be created or written.

    Example:
        >>> info = create_demo_dwh("sqlite:///data/dwh.sqlite", sim, seed=7)  # doctest: +SKIP
    """
    ids = list(customers.customer_ids() if hasattr(customers, "customer_ids") else customers)
    rng = random.Random(seed)
    now = (
        (reference_time or datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
        .astimezone(UTC)
        .replace(tzinfo=None)
    )
    xiva_only = [c for i, c in enumerate(ids) if xiva_only_every and i % xiva_only_every == 0]
    excluded = set(xiva_only)
    shared = [c for c in ids if c not in excluded]
    dwh_only = [
        str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for _ in range(round(len(ids) * dwh_only_fraction))
    ]
    dwh_ids = shared + dwh_only

    def maybe(value: Any) -> Any:
        return None if rng.random() < _NULL_RATE else value

    features, tx, churn, offers = [], [], [], []
    for cid in dwh_ids:
        count = rng.randint(0, 120)
        avg = Decimal(f"{rng.uniform(5, 150):.2f}")
        revenue = Decimal(f"{float(avg) * count:.2f}")
        features.append(
            {
                "customer_id": cid,
                "customer_status": maybe(rng.choice(_STATUSES)),
                "total_revenue": maybe(revenue),
                "transaction_count": maybe(count),
                "last_purchase_days_ago": maybe(rng.randint(0, 400)),
                "avg_transaction_value": maybe(avg),
                "lifetime_value": maybe(Decimal(f"{float(revenue) * rng.uniform(1, 3):.2f}")),
                "churn_score": maybe(Decimal(f"{rng.random():.4f}")),
                "customer_tier": maybe(rng.choice(_TIERS)),
                "city": maybe(rng.choice(_CITIES)),
                "age": maybe(rng.randint(18, 90)),
                "updated_at": now - timedelta(seconds=rng.randint(60, 3 * 365 * 86400)),
            }
        )
        for _ in range(rng.randint(0, 4)):
            tx.append(
                {
                    "customer_id": cid,
                    "transaction_date": now - timedelta(seconds=rng.randint(0, 2 * 365 * 86400)),
                    "transaction_amount": Decimal(f"{rng.uniform(1, 300):.2f}"),
                    "transaction_type": rng.choice(_TX_TYPES),
                }
            )
        churned_at: date | None = None
        for months_ago in range(rng.randint(1, 3), 0, -1):
            snapshot = (now - timedelta(days=30 * months_ago)).date()
            churned = churned_at is not None or rng.random() < 0.08
            churned_at = churned_at or (snapshot if churned else None)
            churn.append(
                {
                    "customer_id": cid,
                    "churned": churned,
                    "churn_date": churned_at,
                    "total_revenue": revenue,
                    "transaction_count": count,
                    "snapshot_date": snapshot,
                }
            )
        for _ in range(rng.randint(0, 2)):
            offers.append(
                {
                    "customer_id": cid,
                    "offer_id": rng.randint(1, 50),
                    "converted": rng.random() < 0.3,
                    "total_revenue": revenue,
                    "transaction_count": count,
                    "created_at": now - timedelta(seconds=rng.randint(0, 365 * 86400)),
                }
            )

    engine = get_engine(url)
    metadata = sa.MetaData()
    tables = _demo_tables(metadata)
    rows = {
        CUSTOMER_FEATURES_TABLE: features,
        "customer_transaction_history": tx,
        "customer_churn_history": churn,
        "customer_offer_history": offers,
    }
    try:
        metadata.drop_all(engine, checkfirst=True)
        metadata.create_all(engine)
        with engine.begin() as conn:
            for name, records in rows.items():
                for start in range(0, len(records), 5000):
                    conn.execute(sa.insert(tables[name]), records[start : start + 5000])
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"creating the demo DWH at {redact_url(url)!r} failed: {sql_error_text(e)}"
        ) from e
    logger.info(
        "demo DWH at %s: %d customers (%d DWH-only, %d Xiva-only left out)",
        redact_url(url),
        len(dwh_ids),
        len(dwh_only),
        len(xiva_only),
    )
    return DemoDwh(
        customer_ids=dwh_ids,
        shared_ids=shared,
        dwh_only_ids=dwh_only,
        xiva_only_ids=xiva_only,
        rows={name: len(records) for name, records in rows.items()},
    )
