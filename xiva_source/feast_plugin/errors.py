"""Errors of the Feast plugin: the online store and the Feast repository::

LoyaltyError (xiva_source.errors)
├── OnlineStoreError     the online store (Redis) is unreachable or refused a command
└── RepositoryError      the Feast repository is missing, unapplied or its registry unreadable
"""

from __future__ import annotations

from typing import ClassVar

from xiva_source.errors import LoyaltyError

__all__ = ["OnlineStoreError", "RepositoryError"]


class OnlineStoreError(LoyaltyError):
    """The online store (Redis) could not be reached or refused a command."""

    default_fix: ClassVar[str] = "Check REDIS_URL and that Redis is running and reachable."


class RepositoryError(LoyaltyError):
    """The Feast repository cannot be used: missing, not applied, or its registry unreadable."""

    default_fix: ClassVar[str] = (
        "Point --repo at the feature repository (the folder with feature_store.yaml) and run "
        "`make apply` (feast apply) there."
    )
