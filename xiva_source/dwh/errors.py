"""Errors of the data warehouse: the ``DwhError`` leaf of the project's error tree::

LoyaltyError (xiva_source.errors)
└── DataSourceError (xiva_source.errors)
    └── DwhError        the warehouse could not be read or written (connection, SQL, schema)
"""

from __future__ import annotations

from xiva_source.errors import DataSourceError

__all__ = ["DwhError", "timeout_fix", "tls_fix"]


class DwhError(DataSourceError):
    """The data warehouse could not be read (connection, SQL or schema problem).

    Args:
        cause: What went wrong, in one sentence.
        hint: What to do about it (default: check ``DWH_URL`` and the tables); a TLS failure
            named in ``cause`` gets its own fix (:func:`tls_fix`) instead.
    """

    def __init__(self, cause: str, *, hint: str | None = None) -> None:
        super().__init__(
            "dwh",
            cause,
            # A TLS failure's or a timeout's fix is more precise than any caller's general hint.
            hint=tls_fix(cause)
            or timeout_fix(cause)
            or hint
            or "Check DWH_URL and that the warehouse tables exist and are readable.",
        )


# libpq's wording (psycopg and ADBC both use libpq) -> what to change in DWH_URL.
_TLS_FIXES = (
    (
        ("certificate verify failed", "does not match host name", "root certificate file"),
        "Set sslrootcert=<path of the CA that signed the server's certificate> in DWH_URL "
        "(with sslmode=verify-full), and name the host in DWH_URL as the certificate does; "
        "verification is never turned off.",
    ),
    (
        ("requires a valid client certificate", "certificate required", "no encryption"),
        "The server requires TLS (and perhaps a client certificate): add sslmode=verify-full, "
        "sslrootcert=<CA file> and, for a client certificate, sslcert=<cert file> and "
        "sslkey=<key file, mode 0600> to DWH_URL.",
    ),
    (
        ("server does not support ssl",),
        "The server does not offer TLS: enable ssl = on in its postgresql.conf (the data must "
        "not travel in clear), or point DWH_URL at a server that does.",
    ),
    (
        ("private key file", "has group or world access", "certificate file"),
        "Check sslcert / sslkey in DWH_URL: the files must exist, and the key be readable by "
        "this user only (chmod 0600).",
    ),
)


def tls_fix(cause: str) -> str | None:
    """The fix of a PostgreSQL TLS failure named in ``cause``; None for any other failure.

    Args:
        cause: An error's text (libpq's wording).
    """
    lowered = cause.lower()
    for markers, fix in _TLS_FIXES:
        if any(marker in lowered for marker in markers):
            return fix
    return None


def timeout_fix(cause: str) -> str | None:
    """The fix when ``cause`` says the DWH did not answer within
    ``DWH_STATEMENT_TIMEOUT_SECONDS``; None for any other failure."""
    if "DWH_STATEMENT_TIMEOUT_SECONDS" not in cause:
        return None
    return (
        "Find what holds the table (an ETL transaction: pg_locks and pg_stat_activity on the "
        "DWH) or what makes the query slow, and rerun; raise DWH_STATEMENT_TIMEOUT_SECONDS if "
        "the DWH is just slow (0: no limit)."
    )
