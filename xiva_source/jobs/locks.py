"""The materialization job's mutual exclusion: two runs never overlap.

A Redis lock when the online store is Redis (works across hosts), an ``fcntl`` lock next to the
registry otherwise (one host). :func:`lock_for_store` picks the kind; ``acquire()`` never waits: a
second run finds the holder and reports ``skipped`` (see :class:`LockHolder`).

A dead run's lock does not block the next run for long. The lock stores its owner (pid, host,
boot id, process start, since): a run on the owner's host takes the lock over at once when the
owner's process is gone (:meth:`LockHolder.is_dead_here`); a run on another host waits for the
short TTL (:data:`LOCK_TTL_SECONDS`, renewed by a heartbeat every :data:`LOCK_HEARTBEAT_SECONDS`).
The file lock dies with its process anyway. Either way ``took_over`` names the dead owner, for the
summary line.
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
    from feast import FeatureStore

    from xiva_source.redis_client import RedisClient

__all__ = [
    "LOCK_HEARTBEAT_SECONDS",
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

LOCK_TTL_SECONDS = 10.0
"""Seconds the Redis lock lives without renewal: a dead run's lock is gone this long after (a run
on the dead owner's host does not wait: it takes the lock over at once)."""

LOCK_HEARTBEAT_SECONDS = LOCK_TTL_SECONDS / 5
"""How often the holder renews the Redis lock (the heartbeat): a fifth of the TTL."""

_TAKE_OVER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""
"""Compare-and-set: replace the dead owner's record by ours only if it is still the same one."""


def _boot_id() -> str:
    """This boot of this host (Linux), so a record from before a reboot is known dead."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after ``pid (comm)``: state first (Linux); empty when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> int:
    """When ``pid`` started (clock ticks since boot, Linux); 0 when unknown or gone.

    Tells a live owner from another process that got its pid after it died.
    """
    try:
        return int(_proc_stat(pid)[19])  # field 22 of the file
    except (ValueError, IndexError):
        return 0


def _pid_alive(pid: int) -> bool:
    """Whether a live process ``pid`` exists on this host (``os.kill(pid, 0)``; not a zombie)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    stat = _proc_stat(pid)
    return not stat or stat[0] not in ("Z", "X")  # killed, not yet reaped by its parent: dead


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
    boot: str = ""
    """The holder host's boot id (Linux; empty when unknown)."""
    started: int = 0
    """The holder process's start (clock ticks since boot, Linux; 0 when unknown)."""

    @classmethod
    def me(cls) -> LockHolder:
        """A holder record for this process."""
        pid = os.getpid()
        return cls(
            pid=pid,
            host=socket.gethostname(),
            since=utc_now().isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
            boot=_boot_id(),
            started=_process_start(pid),
        )

    def dumps(self) -> str:
        """The record as JSON (the lock's value)."""
        return json.dumps(
            {
                "pid": self.pid,
                "host": self.host,
                "since": self.since,
                "token": self.token,
                "boot": self.boot,
                "started": self.started,
            }
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
            return cls(
                int(data["pid"]),
                str(data["host"]),
                str(data["since"]),
                "",
                str(data.get("boot", "")),
                int(data.get("started", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def is_dead_here(self) -> bool:
        """True when the holder ran on this host and its process is gone.

        Gone: no process has its pid, or one does but started at another moment (the pid was
        reused), or the host rebooted since. A holder on another host is never judged dead here
        (its lock expires after the TTL instead).
        """
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        boot = _boot_id()
        if self.boot and boot and self.boot != boot:
            return True
        if not _pid_alive(self.pid):
            return True
        started = _process_start(self.pid)
        return bool(self.started and started and started != self.started)

    def describe(self) -> str:
        """``pid 123 on host, since 2026-01-01T00:00:00+00:00``."""
        return f"pid {self.pid} on {self.host}, since {self.since}"

    def takeover_message(self) -> str:
        """The summary line's clause for a lock taken over from this (dead) holder."""
        return f"took over the materialization lock of a dead run ({self.describe()})"


UNKNOWN_HOLDER = LockHolder(pid=0, host="unknown", since="unknown")
"""Reported when the lock is taken but its record cannot be read."""


class MaterializationLock(abc.ABC):
    """The job's mutual exclusion; use :func:`lock_for_store` to get the right kind.

    ``acquire()`` never waits: it returns ``None`` when the lock was taken, or the current holder.
    After a successful ``acquire()``, :attr:`took_over` is the dead run whose lock it replaced
    (``None`` when the lock was free).
    """

    took_over: LockHolder | None = None
    """After ``acquire()``: the dead holder whose lock this run took over, if any."""

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
    key lives ``ttl`` seconds and is renewed every ``ttl / 5`` (the heartbeat): a run that dies
    (``kill -9``, lost host) leaves a lock that expires on its own within ``ttl``. A run on the
    dead holder's host does not wait for that: it sees the holder's process is gone and takes the
    lock over at once (compare-and-set on the holder's record, so two runs cannot both do it).

    Args:
        client: A Redis client.
        name: The lock's key.
        ttl: Seconds the lock lives without renewal.

    Raises:
        redis.exceptions.RedisError: From :meth:`acquire` when Redis cannot be reached (the
            caller decides what that means for its run).
    """

    def __init__(self, client: RedisClient, name: str, ttl: float = LOCK_TTL_SECONDS) -> None:
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
        self.took_over = None
        if self._lock.acquire(blocking=False, token=me.dumps()):
            self._start_renewal()
            return None
        raw: bytes | None = self.client.get(self.name)  # type: ignore[assignment]
        if raw is None:  # released (or expired) in between: one more try
            if self._lock.acquire(blocking=False, token=me.dumps()):
                self._start_renewal()
                return None
            raw = self.client.get(self.name)  # type: ignore[assignment]
        holder = LockHolder.loads(raw)
        if raw is None or holder is None or not holder.is_dead_here():
            return holder or UNKNOWN_HOLDER
        token = me.dumps().encode()
        swapped = self.client.eval(_TAKE_OVER, 1, self.name, raw, token, int(self.ttl * 1000))
        if not swapped:  # someone else took it over (or it was released) first
            now: bytes | None = self.client.get(self.name)  # type: ignore[assignment]
            return LockHolder.loads(now) or UNKNOWN_HOLDER
        self._lock.local.token = token
        self.took_over = holder
        logger.info("%s", holder.takeover_message())
        self._start_renewal()
        return None

    def _start_renewal(self) -> None:
        self._stop.clear()
        self._lost = False
        self._renewer = threading.Thread(
            target=self._renew, name="materialize-lock-renewal", daemon=True
        )
        self._renewer.start()

    def _renew(self) -> None:
        from redis.exceptions import LockError, RedisError

        while not self._stop.wait(self.ttl / 5):
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
    holder's record for the ``skipped`` message, emptied on release: a record still there when
    the lock is free is a dead run's (:attr:`took_over`).

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
        self.took_over = LockHolder.loads(os.pread(fd, 4096, 0))  # not released: it died
        if self.took_over is not None:
            logger.info("%s", self.took_over.takeover_message())
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
    registry = store.config.registry
    path = getattr(registry, "path", None) or ""
    if path and "://" not in path:
        registry_path = Path(path)
        if not registry_path.is_absolute():
            registry_path = Path(store.repo_path) / registry_path
        return registry_path.parent
    return Path(store.repo_path)
