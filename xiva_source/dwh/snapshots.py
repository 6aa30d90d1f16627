"""The Xiva snapshot table: every Xiva pull appended, the history Xiva does not keep.

Xiva serves current values only, so this table (``xiva_customer_snapshots`` by default) is what
point-in-time correct training data over Xiva features is built from. It is created on the first
pull and widened in place when a custom feature is added; rows carry the feature values, the
event timestamp and ``pulled_at`` (when the pull ran, which breaks ties between pulls).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xiva_source.dwh.arrow import latest_per_customer, rows_to_arrow
from xiva_source.dwh.engine import bind_timestamp, get_engine, sql_error_text
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.reads import ID_LOOKUP_BATCH, stream_statement
from xiva_source.dwh.tables import PULLED_AT
from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP
from xiva_source.redaction import redact_url
from xiva_source.timeutil import as_utc, utc_now

__all__ = ["append_snapshots", "read_latest_snapshots", "stream_snapshots"]

_TIMESTAMPS = (EVENT_TIMESTAMP, PULLED_AT)


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
        sa.Column(ENTITY, sa.String(64), nullable=False),
        *(sa.Column(f, _sql_type(t)) for f, t in feature_types.items()),
        sa.Column(EVENT_TIMESTAMP, sa.DateTime(), nullable=False),
        sa.Column(PULLED_AT, sa.DateTime(), nullable=False),
        sa.Index(f"ix_{table}_customer_ts", ENTITY, EVENT_TIMESTAMP),
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


def _naive_utc(value: datetime) -> datetime:
    # The columns are TIMESTAMP WITHOUT TIME ZONE holding UTC.
    return as_utc(value).replace(tzinfo=None)


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
    pulled = _naive_utc(pulled_at or utc_now())
    try:
        target = _ensure_snapshot_table(engine, table_name, feature_types)
        wanted = [c.name for c in target.columns if c.name != PULLED_AT]
        records = []
        for rec in table.to_pylist():
            # Timestamps (the event time, date facts such as birth_date) as naive UTC.
            row = {
                c: _naive_utc(v) if isinstance(v, datetime) else v
                for c in wanted
                for v in [rec.get(c)]
            }
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
    return target, [ENTITY, *feature_names, EVENT_TIMESTAMP, PULLED_AT]


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

    Args:
        url: SQLAlchemy URL of the database holding the snapshot table.
        table_name: The table (``schema.table`` allowed).
        feature_names: Feature columns to read.
        start_date: Inclusive lower bound, or ``None``.
        end_date: Inclusive upper bound, or ``None``.
        types: Known Arrow types per column.
        chunk_size: Rows per yielded table.

    Yields:
        Arrow tables: ``customer_id``, the features, ``event_timestamp``, ``pulled_at``.

    Raises:
        DwhError: Connection or SQL failure, or a feature column is missing.
    """
    engine = get_engine(url)
    found = _snapshot_select(engine, table_name, feature_names)
    if found is None:
        return
    target, cols = found
    stmt = sa.select(*(target.c[c] for c in cols))
    if start_date is not None:
        stmt = stmt.where(target.c[EVENT_TIMESTAMP] >= bind_timestamp(engine, start_date))
    if end_date is not None:
        stmt = stmt.where(target.c[EVENT_TIMESTAMP] <= bind_timestamp(engine, end_date))
    yield from stream_statement(engine, url, stmt, cols, chunk_size, types, _TIMESTAMPS)


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

    Args:
        url: SQLAlchemy URL of the database holding the snapshot table.
        table_name: The table (``schema.table`` allowed).
        ids: Customer ids; ids never pulled are absent from the result.
        feature_names: Feature columns to read.
        end_date: Ignore snapshots whose event timestamp is after this moment.
        types: Known Arrow types per column.

    Returns:
        One row per id found (with ``pulled_at``), or ``None`` when no pull created the table.

    Raises:
        DwhError: Connection or SQL failure, or a feature column is missing.
    """
    engine = get_engine(url)
    found = _snapshot_select(engine, table_name, feature_names)
    if found is None:
        return None
    target, cols = found
    tables: list[pa.Table] = []
    for start in range(0, len(ids), ID_LOOKUP_BATCH):
        stmt = sa.select(*(target.c[c] for c in cols)).where(
            target.c[ENTITY].in_(list(ids[start : start + ID_LOOKUP_BATCH]))
        )
        if end_date is not None:
            stmt = stmt.where(target.c[EVENT_TIMESTAMP] <= bind_timestamp(engine, end_date))
        tables.extend(
            stream_statement(engine, url, stmt, cols, ID_LOOKUP_BATCH, types, _TIMESTAMPS)
        )
    if not tables:
        return rows_to_arrow(cols, [], types=types, timestamp_columns=_TIMESTAMPS)
    return latest_per_customer(pa.concat_tables(tables, promote_options="default"))
