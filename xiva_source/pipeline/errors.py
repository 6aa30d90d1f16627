"""Errors of the pull pipeline: the ``AllSourcesFailedError`` leaf of the project's error tree::

LoyaltyError (xiva_source.errors)
└── DataSourceError (xiva_source.errors)
    └── AllSourcesFailedError   in ``auto`` mode every source of a view failed
"""

from __future__ import annotations

from xiva_source.errors import DataSourceError

__all__ = ["AllSourcesFailedError"]


class AllSourcesFailedError(DataSourceError):
    """In ``auto`` mode every source failed, so no feature value could be produced.

    Args:
        failures: Source name -> the error it raised.
    """

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = dict(failures)
        summary = "; ".join(f"{name}: {err}" for name, err in self.failures.items())
        super().__init__(
            "+".join(self.failures) or "all",
            f"every source failed ({summary}).",
            hint="Fix one of them (see each error) or set FEATURE_STORE_DATA_SOURCE to the working "
            "one.",
        )
