"""The materialization job's mutual exclusion: two runs never overlap.

A Redis lock when the online store is Redis (works across hosts), an ``fcntl`` lock next to the
registry otherwise (one host). :func:`lock_for_store` picks the kind; ``acquire()`` never waits: a
second run finds the holder and reports ``skipped`` (see :class:`LockHolder`).
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xiva_source.timeutil import utc_now

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore

__all__ = [
    "LOCK_TTL_SECONDS",
    "FileMaterializationLock",
    "LockHolder",
    "MaterializationLock",
    "RedisMaterializationLock",
    "lock_for_store",
    "redis_lock_name",
    "registry_dir",
]

logger = logging.getLogger(__name__)

LOCK_TTL_SECONDS = 60.0
"""Seconds the Redis lock lives without renewal: a dead run's lock is gone this long after."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds the materialization lock (stored in the lock itself)."""

    pid: int
    """Process id of the holder."""
    host: str
    """Host name of the holder."""
    since: str
    """When it took the lock (ISO 8601, UTC)."""
    token: str = ""
    """Random token that proves ownership (compared before renewal and release)."""

    @classmethod
    def me(cls) -> LockHolder:
        """A holder record for this process."""
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            since=utc_now().isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
        )

    def dumps(self) -> str:
        """The record as JSON (the lock's value)."""
        return json.dumps(
            {"pid": self.pid, "host": self.host, "since": self.since, "token": self.token}
        )

    @classmethod
    def loads(cls, raw: str | bytes | None) -> LockHolder | None:
        """Parse a record written by :meth:`dumps`; ``None`` if empty or unreadable.

        The token is not read back: only its owner may know it.
        """
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(int(data["pid"]), str(data["host"]), str(data["since"]), "")
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        """``pid 123 on host, since 2026-01-01T00:00:00+00:00``."""
        return f"pid {self.pid} on {self.host}, since {self.since}"


UNKNOWN_HOLDER = LockHolder(pid=0, host="unknown", since="unknown")
"""Reported when the lock is taken but its record cannot be read."""


class MaterializationLock(abc.ABC):
    """The job's mutual exclusion; use :func:`lock_for_store` to get the right kind.

    ``acquire()`` never waits: it returns ``None`` when the lock was taken, or the current holder.
    """

    @abc.abstractmethod
    def acquire(self) -> LockHolder | None:
        """Take the lock without waiting.

        Returns:
            ``None`` when this process now holds the lock, otherwise the holder (or an unknown
            holder record when it cannot be read).
        """

    @abc.abstractmethod
    def owned(self) -> bool:
        """Whether this process still holds the lock (checked before moving a watermark)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock up; a no-op when it is not held."""

    @contextlib.contextmanager
    def held(self) -> Iterator[LockHolder | None]:
        """``with lock.held() as holder:``; ``holder`` is ``None`` when this process got it."""
        holder = self.acquire()
        try:
            yield holder
        finally:
            if holder is None:
                self.release()


class RedisMaterializationLock(MaterializationLock):
    """A Redis lock (``SET NX PX`` with a token) renewed by a background thread.

    redis-py's :class:`redis.lock.Lock` does the protocol: the token is compared in Lua before
    every renewal and before the delete, so a run never extends or releases a lock it lost. The
    key lives ``ttl`` seconds and is renewed every ``ttl / 3``: a run that dies (``kill -9``, lost
    host) leaves a lock that expires on its own within ``ttl``.

    Args:
        client: A Redis client.
        name: The lock's key.
        ttl: Seconds the lock lives without renewal.

    Raises:
        redis.exceptions.RedisError: From :meth:`acquire` when Redis cannot be reached (the
            caller decides what that means for its run).
    """

    def __init__(self, client: redis.Redis, name: str, ttl: float = LOCK_TTL_SECONDS) -> None:
        from redis.lock import Lock

        self.client = client
        self.name = name
        self.ttl = ttl
        self._lock = Lock(client, name, timeout=ttl, blocking=False, thread_local=False)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost = False

    def acquire(self) -> LockHolder | None:
        me = LockHolder.me()
        if self._lock.acquire(blocking=False, token=me.dumps()):
            self._stop.clear()
            self._lost = False
            self._renewer = threading.Thread(
                target=self._renew, name="materialize-lock-renewal", daemon=True
            )
            self._renewer.start()
            return None
        raw: bytes | None = self.client.get(self.name)  # type: ignore[assignment]
        return LockHolder.loads(raw) or UNKNOWN_HOLDER

    def _renew(self) -> None:
        from redis.exceptions import LockError, RedisError

        while not self._stop.wait(self.ttl / 3):
            try:
                self._lock.reacquire()
            except LockError:
                logger.error("lost the materialization lock %s: it expired or was taken", self.name)
                self._lost = True
                return
            except RedisError as e:  # transient: the next renewal may work, owned() will tell
                logger.warning("could not renew the materialization lock: %s", e)

    def owned(self) -> bool:
        return not self._lost and bool(self._lock.owned())

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        try:
            self._lock.release()
        except LockError:  # not held (never taken, expired or taken over): nothing to give up
            pass
        except RedisError as e:  # unreachable: the key expires on its own within the ttl
            logger.warning("could not release the materialization lock %s: %s", self.name, e)


class FileMaterializationLock(MaterializationLock):
    """An exclusive ``fcntl.flock`` on a file next to the registry (one host only).

    The kernel drops the lock when the holding process dies, so a stale lock cannot outlive its
    run. The file stays in place (deleting it would race with the next run); it holds the current
    holder's record for the ``skipped`` message.

    Args:
        path: The lock file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> LockHolder | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, 4096, 0)
            finally:
                os.close(fd)
            return LockHolder.loads(raw) or UNKNOWN_HOLDER
        os.ftruncate(fd, 0)
        os.pwrite(fd, LockHolder.me().dumps().encode(), 0)
        self._fd = fd
        return None

    def owned(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def redis_lock_name(project: str) -> str:
    """The Redis lock's key for ``project`` (documented in docs/operations.md)."""
    return f"xiva_source:materialize:lock:{project}"


def lock_for_store(store: FeatureStore, client: redis.Redis | None) -> MaterializationLock:
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
    registry = store.config.registry
    path = getattr(registry, "path", None) or ""
    if path and "://" not in path:
        registry_path = Path(path)
        if not registry_path.is_absolute():
            registry_path = Path(store.repo_path) / registry_path
        return registry_path.parent
    return Path(store.repo_path)
