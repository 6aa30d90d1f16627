"""The pending-retry table: Xiva customers a pull could not read, fetched again by the next one.

A customer whose 360 fetch failed, or whose record was malformed, is remembered here with the
reason, per source (the feature source that pulled it, so two views never steal each other's
retries), until a later pull reads it or Xiva answers 404 (it is gone). The table lives beside the
snapshot table (``<snapshot table>_pending``, same database): it must survive runs, outages and a
wiped Redis, and the snapshot database is already the pull's durable, transactional store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xiva_source.dwh.engine import get_engine, sql_error_text
from xiva_source.dwh.errors import DwhError
from xiva_source.features.catalogue import ENTITY
from xiva_source.redaction import redact, redact_url
from xiva_source.timeutil import as_utc

__all__ = [
    "PendingCustomer",
    "count_pending",
    "forget_pending",
    "list_pending",
    "pending_table_name",
    "read_pending",
    "remember_pending",
]

ID_LOOKUP_BATCH = 1000  # ids per IN (...) (the reads' value; not imported: reads loads pandas)

REASON_LENGTH = 500
"""Characters of a failure's reason kept (the first line of the error is what helps)."""


@dataclass(frozen=True)
class PendingCustomer:
    """One customer waiting for a retry."""

    customer_id: str
    reason: str
    """Why the last attempt failed (the error's problem, or what was malformed)."""
    attempts: int
    """Failed attempts so far."""
    first_failed_at: datetime
    last_failed_at: datetime


def pending_table_name(snapshot_table: str) -> str:
    """The pending table beside ``snapshot_table`` (same schema): ``<table>_pending``."""
    return f"{snapshot_table}_pending"


def _table(name: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        sa.MetaData(),
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column(ENTITY, sa.String(64), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(), nullable=False),
        schema=schema or None,
    )


def _error(action: str, name: str, url: str, e: sa.exc.SQLAlchemyError) -> DwhError:
    return DwhError(
        f"{action} the pending-retry table {name!r} at {redact_url(url)!r} failed: "
        f"{sql_error_text(e)}",
        hint="Check the offline store's snapshot_url (default DWH_URL) and that the user may "
        "create and write tables there.",
    )


def _existing(engine: Engine, table: sa.Table) -> bool:
    return sa.inspect(engine).has_table(table.name, schema=table.schema)


def read_pending(url: str, table_name: str, source: str) -> dict[str, PendingCustomer]:
    """Every customer pending for ``source`` (none when the table does not exist yet).

    Raises:
        DwhError: The database cannot be read.
    """
    engine = get_engine(url)
    table = _table(table_name)
    try:
        if not _existing(engine, table):
            return {}
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(table.c.source == source)).all()
    except sa.exc.SQLAlchemyError as e:
        raise _error("reading", table_name, url, e) from e
    return {
        r.customer_id: PendingCustomer(
            r.customer_id,
            r.reason,
            r.attempts,
            as_utc(r.first_failed_at),
            as_utc(r.last_failed_at),
        )
        for r in rows
    }


def remember_pending(
    url: str, table_name: str, source: str, failures: Mapping[str, str], *, now: datetime
) -> None:
    """Record failed attempts (``customer_id -> reason``): new rows, or attempts + 1.

    Raises:
        DwhError: The table cannot be created or written.
    """
    if not failures:
        return
    engine = get_engine(url)
    table = _table(table_name)
    at = as_utc(now).replace(tzinfo=None)  # TIMESTAMP WITHOUT TIME ZONE holding UTC
    ids = list(failures)
    # Stored text: secrets masked (once per distinct reason, they repeat).
    reasons = {text: redact(text)[:REASON_LENGTH] for text in set(failures.values())}
    try:
        table.metadata.create_all(engine, checkfirst=True)
        with engine.begin() as conn:
            known: set[str] = set()
            for start in range(0, len(ids), ID_LOOKUP_BATCH):
                batch = ids[start : start + ID_LOOKUP_BATCH]
                known.update(
                    conn.execute(
                        sa.select(table.c[ENTITY]).where(
                            table.c.source == source, table.c[ENTITY].in_(batch)
                        )
                    ).scalars()
                )
            for cid in known:
                conn.execute(
                    sa.update(table)
                    .where(table.c.source == source, table.c[ENTITY] == cid)
                    .values(
                        reason=reasons[failures[cid]],
                        attempts=table.c.attempts + 1,
                        last_failed_at=at,
                    )
                )
            new = [
                {
                    "source": source,
                    ENTITY: cid,
                    "reason": reasons[failures[cid]],
                    "attempts": 1,
                    "first_failed_at": at,
                    "last_failed_at": at,
                }
                for cid in ids
                if cid not in known
            ]
            if new:
                conn.execute(sa.insert(table), new)
    except sa.exc.SQLAlchemyError as e:
        raise _error("writing", table_name, url, e) from e


def forget_pending(url: str, table_name: str, source: str, ids: Iterable[str]) -> None:
    """Remove customers that were read (or are gone from Xiva) from the pending table.

    Raises:
        DwhError: The table cannot be written.
    """
    wanted = list(ids)
    if not wanted:
        return
    engine = get_engine(url)
    table = _table(table_name)
    try:
        if not _existing(engine, table):
            return
        with engine.begin() as conn:
            for start in range(0, len(wanted), ID_LOOKUP_BATCH):
                conn.execute(
                    sa.delete(table).where(
                        table.c.source == source,
                        table.c[ENTITY].in_(wanted[start : start + ID_LOOKUP_BATCH]),
                    )
                )
    except sa.exc.SQLAlchemyError as e:
        raise _error("writing", table_name, url, e) from e


def count_pending(url: str, table_name: str, source: str | None = None) -> int:
    """How many customers are pending (for ``source``, or for every source).

    Raises:
        DwhError: The database cannot be read.
    """
    engine = get_engine(url)
    table = _table(table_name)
    try:
        if not _existing(engine, table):
            return 0
        stmt = sa.select(sa.func.count()).select_from(table)
        if source is not None:
            stmt = stmt.where(table.c.source == source)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    except sa.exc.SQLAlchemyError as e:
        raise _error("reading", table_name, url, e) from e


def list_pending(url: str, table_name: str, *, limit: int = 20) -> tuple[dict[str, int], list[Any]]:
    """What an operator looks at: the count per source and the most-failed customers.

    Returns:
        ``({source: count}, rows)``; each row has ``source``, ``customer_id``, ``reason``,
        ``attempts``, ``first_failed_at``, ``last_failed_at``, most attempts first (at most
        ``limit``). Empty when the table does not exist (nothing ever failed).

    Raises:
        DwhError: The database cannot be read.
    """
    engine = get_engine(url)
    table = _table(table_name)
    try:
        if not _existing(engine, table):
            return {}, []
        with engine.connect() as conn:
            counts = conn.execute(
                sa.select(table.c.source, sa.func.count()).group_by(table.c.source)
            ).all()
            rows = conn.execute(
                sa.select(table)
                .order_by(table.c.attempts.desc(), table.c.first_failed_at, table.c[ENTITY])
                .limit(limit)
            ).all()
    except sa.exc.SQLAlchemyError as e:
        raise _error("reading", table_name, url, e) from e
    return {str(source): int(n) for source, n in counts}, list(rows)
