"""Errors of the jobs (materialization, live refresh): their branches of the project's tree::

    LoyaltyError (xiva_source.errors)
    ├── MaterializationError
    │   ├── MaterializationConfigError   the job cannot start: settings, repository, view (exit 2)
    │   ├── MaterializationFailedError   a run failed (exit 1); carries the run's summary
    │   │   └── MaterializationStateError a run stopped on a corrupted run state (exit 4)
    │   └── LockLostError                the run lost its lock (cause of a failed run)
    └── LiveRefreshError                 a live refresh cannot run in this configuration (exit 2)

Failures of other domains keep their own classes (the online store's ``OnlineStoreError``, the
registry's ``RepositoryError``, ``DataSourceError`` / ``DwhError``, ``XivaError``); a failed run
wraps its cause's ``problem`` and ``fix`` into :class:`MaterializationFailedError`.

This module imports no job: a failed run's summary travels as an opaque object.
"""

from __future__ import annotations

from typing import Any, ClassVar

from xiva_source.errors import LoyaltyError
from xiva_source.feast_plugin.errors import EXIT_CORRUPTED_STATE

__all__ = [
    "LiveRefreshError",
    "LockLostError",
    "MaterializationConfigError",
    "MaterializationError",
    "MaterializationFailedError",
    "MaterializationStateError",
]


class MaterializationError(LoyaltyError):
    """Base class of the materialization job's own errors."""


class MaterializationConfigError(MaterializationError):
    """The job cannot start: bad settings, no feature repository, an unknown view (exit 2).

    Args:
        problem: What is wrong.
        fix: What to do about it.
    """

    exit_code: ClassVar[int] = 2


class MaterializationFailedError(MaterializationError):
    """A run failed (exit 1); the views it could not finish keep their previous watermark.

    Args:
        summary: The run's summary (``status="failed"``), for the summary line.
        cause: What went wrong.
        fix: What to do about it.

    Attributes:
        summary: As above; ``summary.views`` lists the views that finished before the failure.
        cause: Same as ``problem``.
    """

    def __init__(self, summary: Any, cause: str, fix: str) -> None:
        self.summary = summary
        self.cause = cause
        super().__init__(cause, fix)


class MaterializationStateError(MaterializationFailedError):
    """A run stopped before reading anything: a field of the run state it needs is corrupted.

    Exit 4, distinct from a failure (1): rerunning does not help, the fix (the exact repair of
    the field, :class:`~xiva_source.feast_plugin.errors.CorruptedStateError`) does.
    """

    exit_code: ClassVar[int] = EXIT_CORRUPTED_STATE


class LockLostError(MaterializationError):
    """The run no longer holds the materialization lock (it expired or was deleted).

    The view being written keeps its previous watermark: another run may be going.
    """

    default_fix: ClassVar[str] = (
        "Check that Redis is reachable and that nothing deletes the lock key."
    )

    def __init__(self) -> None:
        super().__init__(
            "the materialization lock was lost during the run (it expired or was taken)"
        )


class LiveRefreshError(LoyaltyError):
    """A live refresh cannot run in this configuration; nothing was written (exit 2).

    Args:
        problem: What is wrong.
        fix: What to do about it.
    """

    exit_code: ClassVar[int] = 2
