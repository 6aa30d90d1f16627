"""The materialization job's mutual exclusion: two runs never overlap.

The mechanism is the house's one lock (:mod:`xiva_source.locking`): its owner record, dead-owner
rule, heartbeat and take-over live there. This module decides only what the job needs:

* which kind (:func:`lock_for_store`): a Redis lock when the online store is Redis (works across
  hosts; key :func:`redis_lock_name`), an ``fcntl`` lock next to the registry otherwise (one host);
* never waiting: ``acquire()`` tries once; a second run finds the holder and reports ``skipped``;
* the summary line's warning for a dead run's lock taken over (:func:`takeover_message`).

A dead run's lock does not block the next run for long: a run on the owner's host takes it over
at once when the owner's process is gone; a run on another host waits for the short TTL
(:data:`LOCK_TTL_SECONDS`, renewed by a heartbeat every :data:`LOCK_HEARTBEAT_SECONDS`). The file
lock dies with its process anyway. Either way ``took_over`` names the dead owner.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from xiva_source.locking import (
    DEFAULT_TTL_SECONDS,
    HEARTBEAT_FRACTION,
    UNKNOWN_HOLDER,
    ExclusiveLock,
    FileLock,
    LockHolder,
    RedisLock,
)

if TYPE_CHECKING:
    from feast import FeatureStore

    from xiva_source.redis_client import RedisClient

__all__ = [
    "LOCK_HEARTBEAT_SECONDS",
    "LOCK_TTL_SECONDS",
    "UNKNOWN_HOLDER",
    "FileMaterializationLock",
    "LockHolder",
    "MaterializationLock",
    "RedisMaterializationLock",
    "lock_for_store",
    "redis_lock_name",
    "registry_dir",
    "takeover_message",
]

LOCK_TTL_SECONDS = DEFAULT_TTL_SECONDS
"""Seconds the Redis lock lives without renewal (the house default, 10 s)."""

LOCK_HEARTBEAT_SECONDS = LOCK_TTL_SECONDS / HEARTBEAT_FRACTION
"""How often the holder renews the Redis lock (the heartbeat): a fifth of the TTL."""

_PURPOSE = "materialization"

logger = logging.getLogger(__name__)

MaterializationLock = ExclusiveLock
"""The job's lock interface (``acquire()``, ``owned()``, ``release()``, ``took_over``)."""


class RedisMaterializationLock(RedisLock):
    """The job's Redis lock: :class:`~xiva_source.locking.RedisLock` named for its log lines.

    Args:
        client: A Redis client.
        name: The lock's key (:func:`redis_lock_name`).
        ttl: Seconds the lock lives without renewal.
    """

    def __init__(self, client: RedisClient, name: str, ttl: float = LOCK_TTL_SECONDS) -> None:
        super().__init__(client, name, ttl=ttl, purpose=_PURPOSE, log=logger)


class FileMaterializationLock(FileLock):
    """The job's file lock: :class:`~xiva_source.locking.FileLock` named for its log lines.

    Args:
        path: The lock file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, purpose=_PURPOSE, log=logger)


def takeover_message(holder: LockHolder) -> str:
    """The summary line's clause for a lock taken over from ``holder`` (a dead run)."""
    return f"took over the materialization lock of a dead run ({holder.describe()})"


def redis_lock_name(project: str) -> str:
    """The Redis lock's key for ``project`` (documented in docs/operations.md)."""
    return f"xiva_source:materialize:lock:{project}"


def lock_for_store(store: FeatureStore, client: RedisClient | None) -> MaterializationLock:
    """The lock a run of ``store`` takes: Redis when the online store is Redis, else a file.

    The Redis lock's key is ``xiva_source:materialize:lock:<project>``, so runs of different
    projects do not block each other. The file lock is ``<project>.materialize.lock`` next to a
    local registry (in the repository when the registry is remote).

    Args:
        store: The feature store.
        client: The online store's Redis client, ``None`` when the online store is not Redis
            (see :func:`xiva_source.feast_plugin.online_store.online_redis_client`).

    Returns:
        A lock, not yet acquired.
    """
    if client is not None:
        return RedisMaterializationLock(client, redis_lock_name(store.project))
    return FileMaterializationLock(registry_dir(store) / f"{store.project}.materialize.lock")


def registry_dir(store: FeatureStore) -> Path:
    """The directory of a local registry (the repository for a remote one): file locks, state."""
    from xiva_source.feast_plugin.run_state import state_dir

    return state_dir(store.config)
