"""SQLAlchemy engines: one per URL per process, PostgreSQL sessions in UTC, short error text.

Every connection to the warehouse (and to the snapshot table's database) comes from
:func:`get_engine`, so the session time zone and the pool settings are decided here once.
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

__all__ = ["bind_timestamp", "dispose_engines", "get_engine", "sql_error_text"]

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    """The process-wide SQLAlchemy engine for ``url`` (created once, then reused).

    PostgreSQL sessions are set to ``TIME ZONE 'UTC'`` so timestamp comparisons do not depend
    on the server's default zone; a SQLite file's directory is created if missing.

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
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.commit()


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
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
