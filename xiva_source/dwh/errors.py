"""Errors of the data warehouse: the ``DwhError`` leaf of the project's error tree::

LoyaltyError (xiva_source.errors)
└── DataSourceError (xiva_source.errors)
    └── DwhError        the warehouse could not be read or written (connection, SQL, schema)
"""

from __future__ import annotations

from xiva_source.errors import DataSourceError

__all__ = ["DwhError"]


class DwhError(DataSourceError):
    """The data warehouse could not be read (connection, SQL or schema problem).

    Args:
        cause: What went wrong, in one sentence.
        hint: What to do about it (default: check ``DWH_URL`` and the tables).
    """

    def __init__(self, cause: str, *, hint: str | None = None) -> None:
        super().__init__(
            "dwh",
            cause,
            hint=hint or "Check DWH_URL and that the warehouse tables exist and are readable.",
        )
