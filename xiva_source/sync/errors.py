"""Errors of the sync worker: its branch of the project's tree::

    LoyaltyError (xiva_source.errors)
    └── SyncError                    the worker cannot run (exit 1)
        ├── SyncConfigError          this configuration cannot be followed (exit 2)
        └── SyncCheckpointError      the saved position is corrupted (exit 4): delete it

Failures of the sources and of Redis while the worker runs are not raised: the worker degrades
(status, metrics, log) and retries. This module imports no job, client or store.
"""

from __future__ import annotations

from typing import ClassVar

from xiva_source.errors import LoyaltyError

__all__ = ["SyncCheckpointError", "SyncConfigError", "SyncError"]


class SyncError(LoyaltyError):
    """Base class of the sync worker's errors."""


class SyncConfigError(SyncError):
    """The worker cannot follow this configuration (no Redis online store, no repository)."""

    exit_code: ClassVar[int] = 2


class SyncCheckpointError(SyncError):
    """The saved checkpoint does not parse; the fix names the key to delete."""

    exit_code: ClassVar[int] = 4
