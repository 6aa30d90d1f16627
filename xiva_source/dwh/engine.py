"""SQLAlchemy engines: one per URL per process, PostgreSQL sessions in UTC and bounded in time,
short error text.

Every connection to the warehouse (and to the snapshot table's database) comes from
:func:`get_engine`, so the session time zone, the statement timeout
(``DWH_STATEMENT_TIMEOUT_SECONDS``: :func:`session_settings`) and the pool settings are decided
here once. SQLite has no such timeout: it is left alone.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xiva_source.dwh.errors import DwhError
from xiva_source.redaction import redact_url
from xiva_source.timeutil import as_utc

__all__ = [
    "bind_timestamp",
    "dispose_engines",
    "get_engine",
    "session_settings",
    "sql_error_text",
    "timeout_text",
]

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    """The process-wide SQLAlchemy engine for ``url`` (created once, then reused).

    PostgreSQL sessions are set to ``TIME ZONE 'UTC'`` so timestamp comparisons do not depend
    on the server's default zone, and to the statement and lock timeouts of
    ``DWH_STATEMENT_TIMEOUT_SECONDS`` (as loaded when the connection opens), so a table locked
    by an ETL transaction or a query that never ends fails the read instead of holding the run;
    a SQLite file's directory is created if missing.

    Args:
        url: A SQLAlchemy URL, e.g. ``postgresql+psycopg://user:pass@host/dwh``.

    Returns:
        The engine (pooled, ``pool_pre_ping`` on).

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
    for statement in session_settings():
        cursor.execute(statement)
    cursor.close()
    dbapi_connection.commit()


def session_settings(*, statement_timeout: bool = True) -> list[str]:
    """The ``SET`` statements every PostgreSQL session of the project runs first.

    UTC, and with ``DWH_STATEMENT_TIMEOUT_SECONDS`` (not 0) a ``lock_timeout`` and a
    ``statement_timeout`` of that length. A streamed read through a server-side cursor is timed
    per ``FETCH`` (each chunk), not as a whole.

    Args:
        statement_timeout: False for a bulk ``COPY`` read (ADBC), one statement lasting as long
            as its consumer takes to write every row: only the lock wait is bounded then.
    """
    from xiva_source.settings import dwh_statement_timeout

    statements = ["SET TIME ZONE 'UTC'"]
    milliseconds = round(dwh_statement_timeout() * 1000)
    if milliseconds > 0:
        statements.append(f"SET lock_timeout = {milliseconds}")
        if statement_timeout:
            statements.append(f"SET statement_timeout = {milliseconds}")
    return statements


_TIMEOUT_MARKERS = ("statement timeout", "lock timeout")


def timeout_text(message: str) -> str | None:
    """When ``message`` is PostgreSQL cancelling a statement for ``DWH_STATEMENT_TIMEOUT_SECONDS``
    (``canceling statement due to statement timeout`` / ``lock timeout``): the run's words for
    it, naming the setting; None for any other message."""
    from xiva_source.settings import dwh_statement_timeout

    lowered = message.lower()
    if "canceling statement" not in lowered or not any(m in lowered for m in _TIMEOUT_MARKERS):
        return None
    seconds = dwh_statement_timeout()
    what = "lock timeout" if "lock timeout" in lowered else "statement timeout"
    return (
        f"the DWH did not answer within {seconds:g} s (DWH_STATEMENT_TIMEOUT_SECONDS): a lock or "
        f"a slow query ({what})"
    )


def dispose_engines() -> None:
    """Close every pooled connection (tests and short-lived processes call this at exit)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def bind_timestamp(engine: Engine, value: datetime) -> datetime:
    """``value`` as the backend compares timestamps: UTC, and naive for SQLite.

    SQLite stores ``DateTime`` as naive text, so an aware bound would not compare with it.
    """
    moment = as_utc(value)
    return moment.replace(tzinfo=None) if engine.dialect.name == "sqlite" else moment


def sql_error_text(error: BaseException) -> str:
    """One short line naming a database error (SQLAlchemy's multi-line text cut to its cause)."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = text[0] if text else ""
    return timeout_text(first) or f"{type(error).__name__}: {first}"[:300]
