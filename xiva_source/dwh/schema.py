"""The DWH contract as SQLAlchemy metadata, and creating its tables (``xiva-source dwh init``).

The contract (docs/dwh.md) is written here once: ``customer_features_view`` (one current row per
customer) and the three history tables, with the SQL types of PostgreSQL (``UUID``, ``NUMERIC``,
``TIMESTAMP``) and their SQLite equivalents. :func:`init_dwh` creates the tables that are missing
and checks the ones that exist (columns and type families), never altering them;
:func:`xiva_source.demo.data.create_demo_dwh` creates its tables from :func:`contract_metadata`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.types import TypeEngine

from xiva_source.dwh.engine import get_engine, sql_error_text
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE, HISTORY_TABLES
from xiva_source.errors import ConfigurationError
from xiva_source.features.catalogue import ENTITY
from xiva_source.redaction import redact_url

__all__ = [
    "CONTRACT_TABLES",
    "UPDATED_AT",
    "InitReport",
    "TableState",
    "check_contract",
    "contract_ddl",
    "contract_metadata",
    "init_dwh",
    "type_family",
]

CONTRACT_TABLES: tuple[str, ...] = (CUSTOMER_FEATURES_TABLE, *HISTORY_TABLES)
"""The contract's tables, in creation order."""

UPDATED_AT = "updated_at"
"""``customer_features_view``'s event timestamp (UTC): when the row's values became true."""

TypeFamily = Literal["text", "integer", "decimal", "timestamp", "date", "boolean"]
"""How the pipeline reads a column; two SQL types of one family read the same."""

TableStatus = Literal["created", "exists", "missing", "incomplete"]
"""``created`` now; ``exists`` as the contract says; ``missing`` (a dry run: would be created);
``incomplete``: it exists but lacks columns or has one of another type family (left unaltered)."""

_FIX_URL = (
    "Set DWH_URL (or --dwh-url) to a SQLAlchemy URL such as "
    "postgresql+psycopg://user@host:5432/dwh or sqlite:///data/dwh.sqlite."
)


def _uuid() -> TypeEngine[Any]:
    # PostgreSQL's UUID read as text (the entity key is a string everywhere); 36 chars elsewhere.
    return sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")


def contract_metadata(schema: str | None = None) -> sa.MetaData:
    """A new :class:`~sqlalchemy.MetaData` holding the contract's four tables.

    Timestamps are ``TIMESTAMP`` without time zone holding UTC (PostgreSQL sessions of this
    project run in UTC, see :mod:`xiva_source.dwh.engine`).

    Args:
        schema: The database schema (default: the connection's, e.g. the URL's ``search_path``).

    Returns:
        Metadata whose ``tables`` are keyed by :data:`CONTRACT_TABLES` (schema-qualified when
        ``schema`` is given).
    """
    metadata = sa.MetaData(schema=schema)
    history_1, history_2, history_3 = HISTORY_TABLES
    sa.Table(
        CUSTOMER_FEATURES_TABLE,
        metadata,
        sa.Column(ENTITY, _uuid(), primary_key=True),
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
        # Indexed: every incremental read filters on it.
        sa.Column(UPDATED_AT, sa.DateTime, nullable=False, index=True),
    )
    sa.Table(
        history_1,  # customer_transaction_history
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(ENTITY, _uuid(), nullable=False, index=True),
        sa.Column("transaction_date", sa.DateTime, nullable=False),
        sa.Column("transaction_amount", sa.Numeric(10, 2)),
        sa.Column("transaction_type", sa.String(50)),
    )
    sa.Table(
        history_2,  # customer_churn_history
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(ENTITY, _uuid(), nullable=False, index=True),
        sa.Column("churned", sa.Boolean, nullable=False),
        sa.Column("churn_date", sa.Date),
        sa.Column("total_revenue", sa.Numeric(12, 2)),
        sa.Column("transaction_count", sa.Integer),
        sa.Column("snapshot_date", sa.Date, nullable=False),
    )
    sa.Table(
        history_3,  # customer_offer_history
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(ENTITY, _uuid(), nullable=False, index=True),
        sa.Column("offer_id", sa.Integer, nullable=False),
        sa.Column("converted", sa.Boolean, nullable=False),
        sa.Column("total_revenue", sa.Numeric(12, 2)),
        sa.Column("transaction_count", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    return metadata


def type_family(sql_type: TypeEngine[Any]) -> TypeFamily | None:
    """The family of a SQL type as the pipeline reads it; ``None`` when unknown (not judged).

    ``UUID`` and every string type are ``text``; ``FLOAT`` is ``decimal`` (both read as floats).
    """
    checks: tuple[tuple[type[TypeEngine[Any]], TypeFamily], ...] = (
        (sa.Boolean, "boolean"),
        (sa.Integer, "integer"),
        (sa.Numeric, "decimal"),
        (sa.Float, "decimal"),
        (sa.DateTime, "timestamp"),
        (sa.Date, "date"),
        (sa.Uuid, "text"),
        (sa.String, "text"),
    )
    for cls, family in checks:
        if isinstance(sql_type, cls):
            return family
    return None


def _compatible(expected: TypeFamily | None, actual: TypeFamily | None) -> bool:
    if expected is None or actual is None or expected == actual:
        return True
    return expected == "decimal" and actual == "integer"  # whole numbers read as floats too


@dataclass(frozen=True)
class TableState:
    """One contract table in the warehouse.

    Attributes:
        name: The table's name.
        status: ``created``, ``exists``, ``missing`` (dry run) or ``incomplete``.
        missing_columns: Contract columns the existing table lacks.
        wrong_types: ``"<column> is <SQL type>, the contract says <family>"`` per column of
            another type family.
    """

    name: str
    status: TableStatus
    missing_columns: tuple[str, ...] = ()
    wrong_types: tuple[str, ...] = ()

    def describe(self) -> str:
        """What is wrong with an incomplete table, in one clause."""
        parts = []
        if self.missing_columns:
            parts.append(f"missing column(s) {', '.join(self.missing_columns)}")
        parts.extend(self.wrong_types)
        return f"{self.name}: {'; '.join(parts)}"


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_dwh` found and did.

    Attributes:
        url: The warehouse URL, password masked.
        dialect: The SQLAlchemy dialect name (``postgresql``, ``sqlite``, ...).
        tables: One state per contract table, in :data:`CONTRACT_TABLES` order.
        ddl: The ``CREATE`` statements run (or, in a dry run, that would run), each ending ``;``.
        dry_run: Nothing was changed.
    """

    url: str
    dialect: str
    tables: tuple[TableState, ...]
    ddl: tuple[str, ...]
    dry_run: bool

    def named(self, status: TableStatus) -> list[str]:
        """Names of the tables in ``status``."""
        return [t.name for t in self.tables if t.status == status]

    @property
    def ok(self) -> bool:
        """No existing table contradicts the contract."""
        return not self.named("incomplete")

    @property
    def exit_code(self) -> int:
        """0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    def line(self) -> str:
        """The command's one summary line (no secret: the URL is masked).

        Example:
            ``dwh init ok created=4 existing=0 incomplete=0 url=sqlite:///dwh.sqlite; created:
            customer_features_view, ...`` (one line)
        """
        created = self.named("missing" if self.dry_run else "created")
        status = "dry-run" if self.dry_run else ("ok" if self.ok else "failed")
        text = (
            f"dwh init {status} {'would_create' if self.dry_run else 'created'}={len(created)} "
            f"existing={len(self.named('exists'))} incomplete={len(self.named('incomplete'))} "
            f"url={self.url}"
        )
        if created:
            text += f"; {'would create' if self.dry_run else 'created'}: {', '.join(created)}"
        elif self.ok:
            text += "; nothing to create: every contract table exists"
        for table in self.tables:
            if table.status == "incomplete":
                text += f"; {table.describe()} (left unaltered)"
        if not self.ok:
            text += (
                "; fix: add the columns with the types of docs/dwh.md, or point the DwhSource at "
                "a view or query that provides them"
            )
        elif self.dry_run:
            text += "; nothing was changed"
        return text


def contract_ddl(dialect: Dialect, tables: Iterable[str] | None = None) -> list[str]:
    """The ``CREATE TABLE`` / ``CREATE INDEX`` statements of the contract for ``dialect``.

    Args:
        dialect: E.g. ``engine.dialect`` or ``sqlalchemy.dialects.postgresql.dialect()``.
        tables: Only these tables (default: all of :data:`CONTRACT_TABLES`).

    Returns:
        One statement per item, each ending with ``;``.
    """
    metadata = contract_metadata()
    wanted = set(CONTRACT_TABLES if tables is None else tables)
    statements: list[str] = []
    for name in CONTRACT_TABLES:
        if name not in wanted:
            continue
        table = metadata.tables[name]
        statements.append(_statement(sa.schema.CreateTable(table), dialect))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(_statement(sa.schema.CreateIndex(index), dialect))
    return statements


def _statement(element: sa.schema.ExecutableDDLElement, dialect: Dialect) -> str:
    text = str(element.compile(dialect=dialect)).strip()
    return "\n".join(line.rstrip().replace("\t", "    ") for line in text.splitlines()) + ";"


def check_contract(connection: Connection) -> list[TableState]:
    """Compare the warehouse with the contract (reflection only; nothing is changed).

    Extra columns and tables are fine; a contract column that is absent, or of another type family
    (:func:`type_family`), makes the table ``incomplete``. A view counts as a table.

    Args:
        connection: An open connection to the warehouse.

    Returns:
        One state per contract table: ``exists``, ``incomplete`` or ``missing``.
    """
    inspector = sa.inspect(connection)
    states = []
    for table in contract_metadata().tables.values():
        if not inspector.has_table(table.name):
            states.append(TableState(table.name, "missing"))
            continue
        found = {c["name"].lower(): c["type"] for c in inspector.get_columns(table.name)}
        missing = tuple(c.name for c in table.columns if c.name.lower() not in found)
        wrong = tuple(
            f"{c.name} is {_type_text(found[c.name.lower()], connection.dialect)}, "
            f"the contract says {type_family(c.type)}"
            for c in table.columns
            if c.name.lower() in found
            and not _compatible(type_family(c.type), type_family(found[c.name.lower()]))
        )
        status: TableStatus = "incomplete" if missing or wrong else "exists"
        states.append(TableState(table.name, status, missing, wrong))
    return states


def _type_text(sql_type: TypeEngine[Any], dialect: Dialect) -> str:
    try:
        return str(sql_type.compile(dialect=dialect))
    except Exception:  # a reflected type the dialect cannot render
        return type(sql_type).__name__


def init_dwh(url: str, *, dry_run: bool = False) -> InitReport:
    """Create the contract's missing tables in the warehouse at ``url``; check the others.

    Idempotent: a table that exists is never altered (one that contradicts the contract is
    reported as ``incomplete``). On PostgreSQL the tables are created in one transaction.

    Args:
        url: The warehouse's SQLAlchemy URL (``DWH_URL``); a PostgreSQL URL's ``search_path``
            picks the schema.
        dry_run: Only inspect: report and return the DDL that would run, create nothing.

    Returns:
        The :class:`InitReport` (its :meth:`~InitReport.line` is the command's output).

    Raises:
        ConfigurationError: ``url`` is not a SQLAlchemy URL, or names a driver not installed.
        DwhError: The warehouse cannot be reached, read or written (e.g. no ``CREATE`` right).
    """
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            states = check_contract(conn)
            missing = [s.name for s in states if s.status == "missing"]
            ddl = contract_ddl(engine.dialect, missing)
            if missing and not dry_run:
                metadata = contract_metadata()
                metadata.create_all(conn, tables=[metadata.tables[n] for n in missing])
                states = [
                    TableState(s.name, "created") if s.status == "missing" else s for s in states
                ]
    except sa.exc.SQLAlchemyError as e:
        raise DwhError(
            f"{redact_url(url)}: {sql_error_text(e)}",
            hint="Check DWH_URL (host, port, database, user) and that the user may create tables "
            "in its schema; without that right, run `xiva-source dwh init --dry-run` and have the "
            "printed DDL run by someone who has it.",
        ) from e
    return InitReport(
        url=redact_url(url),
        dialect=engine.dialect.name,
        tables=tuple(states),
        ddl=tuple(ddl),
        dry_run=dry_run,
    )


def _engine(url: str) -> Engine:
    """:func:`get_engine`, after checking that ``url`` is a URL whose driver is installed."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:  # its text quotes the URL, password included: not shown
        raise ConfigurationError(
            f"DWH_URL {redact_url(url)!r} is not a SQLAlchemy URL.", _FIX_URL, setting="DWH_URL"
        ) from e
    try:
        parsed.get_dialect().import_dbapi()
    except Exception as e:  # NoSuchModuleError, ImportError
        raise ConfigurationError(
            f"DWH_URL {redact_url(url)!r} names a database driver that is not available "
            f"({type(e).__name__}: {e}).",
            f"{_FIX_URL} The drivers installed with the project are psycopg (PostgreSQL) and "
            "sqlite3.",
            setting="DWH_URL",
        ) from e
    return get_engine(url)
