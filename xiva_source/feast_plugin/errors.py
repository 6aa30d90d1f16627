"""Errors of the Feast plugin: the online store, the Feast repository, the shared run state::

LoyaltyError (xiva_source.errors)
├── OnlineStoreError            the online store (Redis) is unreachable or refused a command
├── RepositoryError             the Feast repository is missing, unapplied or its registry unusable
├── FeatureNameCollisionError   a historical retrieval would name two columns alike
└── CorruptedStateError         a field of the shared run state cannot be read (exit 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xiva_source.errors import LoyaltyError

__all__ = [
    "EXIT_CORRUPTED_STATE",
    "REFUSED_FIX",
    "CorruptedStateError",
    "FeatureNameCollisionError",
    "OnlineStoreError",
    "RepositoryError",
]

EXIT_CORRUPTED_STATE = 4
"""The exit status of a command stopped by a corrupted run state (docs/operations.md)."""


class OnlineStoreError(LoyaltyError):
    """The online store (Redis) could not be reached or refused a command."""

    default_fix: ClassVar[str] = "Check REDIS_URL and that Redis is running and reachable."

    @classmethod
    def failed(
        cls, cause: BaseException | str, *, step: str | None = None, fix: str | None = None
    ) -> OnlineStoreError:
        """A Redis call that failed: ``the online store (Redis) failed[ while <step>]: <cause>``.

        The one wording of it, whoever called Redis (the job's writes, lock and expiry, the
        bulk writer, the translation of a foreign Redis error).

        Args:
            cause: The Redis error (or its text).
            step: What the store was doing, e.g. ``extending the online expiry``.
            fix: The advice; :attr:`default_fix` when not given.

        Example:
            >>> str(OnlineStoreError.failed("Error 111 connecting", step="writing the marker"))
            'the online store (Redis) failed while writing the marker: Error 111 connecting. Fix: Check REDIS_URL and that Redis is running and reachable.'
        """  # noqa: E501
        during = f" while {step}" if step else ""
        if fix is None and _refused(cause):
            fix = REFUSED_FIX
        return cls(f"the online store (Redis) failed{during}: {cause}", fix)


REFUSED_FIX = (
    "Redis answered and refused the command: a NOPERM error needs the ACL rules of "
    "docs/operations.md (Security) for this user; any other refusal is a bug: rerun with --debug "
    "and report the message."
)
"""The fix of a command Redis refused (it is reachable: REDIS_URL is not the problem)."""


def _refused(cause: BaseException | str) -> bool:
    # An answer from Redis (redis.ResponseError: a script error, NOPERM, WRONGTYPE), named by
    # class so this module does not import redis.
    return isinstance(cause, BaseException) and any(
        klass.__name__ == "ResponseError" for klass in type(cause).__mro__
    )


class RepositoryError(LoyaltyError):
    """The Feast repository cannot be used: missing, not applied, or its registry unreadable."""

    default_fix: ClassVar[str] = (
        "Point --repo at the feature repository (the folder with feature_store.yaml) and run "
        "`make apply` (feast apply) there."
    )


class FeatureNameCollisionError(LoyaltyError):
    """Two columns of a training set would have one name (exit 2: the request is wrong).

    Without full feature names a column is named after its feature alone, so a feature that two
    views serve (one may be an on-demand view's input), or a feature named like a column of
    ``entity_df``, would silently hold one of the values. Feast's own PostgreSQL store fails on
    the same request (an ambiguous column).

    Args:
        column: The column name requested twice.
        owners: Who claims it: ``view "<name>"`` or ``the entity_df column``, two or more.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, column: str, owners: Sequence[str]) -> None:
        self.column = column
        self.owners = tuple(owners)
        listed = ", ".join(self.owners[:-1]) + f" and {self.owners[-1]}"
        other = (
            "rename the entity_df column"
            if "the entity_df column" in self.owners
            else "request the feature from one view only"
        )
        super().__init__(
            f"get_historical_features: the column {column!r} would come from {listed}; "
            "without full feature names one of them would silently win",
            f"Pass full_feature_names=True (columns are named <view>__<feature>), or {other}.",
        )


class CorruptedStateError(LoyaltyError):
    """A field of the shared run state cannot be read (a command stopped by it exits 4).

    The state (:mod:`xiva_source.feast_plugin.run_state`) is written only by the project's code,
    so an unreadable field means something else wrote it (a hand edit, another tool, a bug).
    Nothing guesses its value: the error names the field and the command that repairs it.

    Args:
        where: The state's location, e.g. ``Redis hash xiva_source:materialize:state:loyalty``.
        field: The corrupted field (``wm:customer_features:xiva``).
        value: What it holds (shortened).
        expected: What it should hold, e.g. ``an ISO 8601 time``.
        repair: The exact command(s) that repair it, and what they cost.
    """

    exit_code: ClassVar[int] = EXIT_CORRUPTED_STATE

    def __init__(self, where: str, field: str, value: str, expected: str, repair: str) -> None:
        self.where = where
        self.field = field
        shown = value if len(value) <= 60 else value[:57] + "..."
        super().__init__(
            f"the run state is corrupted: field {field!r} of the {where} holds {shown!r}, "
            f"not {expected}.",
            repair,
        )
