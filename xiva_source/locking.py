"""The one lock of the house: one holder at a time, its owner recorded, a dead owner taken over.

Two kinds share one interface (:class:`ExclusiveLock`):

* :class:`RedisLock`: a Redis key set with ``SET NX PX`` to the owner's record (a random token in
  it), renewed by a heartbeat thread and deleted on release, both only while the key still holds
  that record (compare in Lua). Works across hosts, on a single Redis, a Redis Cluster (one key,
  one slot) and the primary of a Sentinel; clients come from
  :func:`xiva_source.redis_client.connect_redis`.
* :class:`FileLock`: ``fcntl.flock`` on a file (one host); the kernel drops it with its process.

Its users: the materialization job (:mod:`xiva_source.jobs.locks`; it never waits: a held lock
means "skipped"), the membership refresh (:mod:`segmentation.memberships`; waits up to
``lock_wait``), and a standby worker (waits forever, ``acquire(timeout=None)``, and takes over
within a TTL of the active one's death).

**The owner record** (:class:`LockHolder`, JSON ``{"pid", "host", "since", "token", "boot",
"started"}``): process id, host name, when it took the lock, the random token, the host's boot id
and the process's start (clock ticks since boot; both Linux, empty / 0 elsewhere).

**The dead-owner rule** (:meth:`LockHolder.is_dead_here`): an owner is dead only with proof, and
only on its own host (same ``socket.gethostname()``): the host rebooted since (boot ids differ), no
process has its pid or it is a zombie, or the process with its pid started at another moment (the
pid was reused). A dead owner's lock is taken over at once, by a compare-and-set on its record, so
two contenders cannot both do it. **A record that cannot be proven dead is never taken before its
key expires**: an owner on another host; a pid <= 0 (never signalled: ``os.kill`` with 0 or a
negative pid addresses a process group); a record that does not parse (another writer, a broken
value: reported as :data:`UNKNOWN_HOLDER`). Such a lock ends with its TTL (a dead owner stopped
renewing it); a key without any TTL (set by hand) is never taken: delete it.

**Timing** (parameters; one default policy): the key lives ``ttl`` seconds
(:data:`DEFAULT_TTL_SECONDS`, 10) without renewal; the heartbeat renews it every ``ttl / 5``
(:data:`HEARTBEAT_FRACTION`), so a live owner's key never drops below 4/5 of its TTL; a waiting
``acquire`` polls every ``ttl / 20`` (:data:`POLL_FRACTION`), so it takes over within
``ttl + ttl / 20`` of an owner's last renewal, at once (one poll) when the owner is dead here.

**Losing the lock.** The heartbeat finds the key gone or holding another record (it expired, was
deleted or taken over), or cannot reach Redis for a whole TTL (the key may have expired
meanwhile): :attr:`ExclusiveLock.lost` turns true and stays so. :meth:`ExclusiveLock.owned`
asks Redis too: check it before a step that must not run twice (the job before it moves
watermarks); a ``WATCH`` on :attr:`RedisLock.key` comparing :attr:`RedisLock.value` checks it
inside a transaction (the membership switch).

Wall-clock time is not injected here: Redis expires keys in real time, so the tests use short
TTLs against the real Redis.
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
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xiva_source.timeutil import utc_now

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "HEARTBEAT_FRACTION",
    "POLL_FRACTION",
    "UNKNOWN_HOLDER",
    "ExclusiveLock",
    "FileLock",
    "LockHolder",
    "RedisLock",
]

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 10.0
"""Seconds a Redis lock lives without renewal: a silent (dead, cut off) owner's lock ends this
long after its last heartbeat. A dead owner on the contender's own host is taken over at once."""

HEARTBEAT_FRACTION = 5
"""The heartbeat renews the lock every ``ttl / HEARTBEAT_FRACTION`` seconds (2 s by default)."""

POLL_FRACTION = 20
"""A waiting ``acquire`` tries again every ``ttl / POLL_FRACTION`` seconds (0.5 s by default)."""

FILE_POLL_SECONDS = 0.2
"""How often a waiting :class:`FileLock` tries again (a file lock has no TTL)."""

_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""
"""Compare-and-set: replace the dead owner's record by ours only if it is still the same one."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""The heartbeat: extend the key only while it holds our record."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Compare-and-delete: never delete a lock that expired and was taken by someone else."""


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


def _proven_gone(pid: int) -> bool:
    """Whether no live process ``pid`` exists on this host (none, or a zombie).

    ``False`` for ``pid <= 0``: those address process groups and are never signalled, so such a
    record cannot be proven dead.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    stat = _proc_stat(pid)
    return bool(stat) and stat[0] in ("Z", "X")  # killed, not yet reaped by its parent


def _int_field(value: Any) -> int:
    """An integer field of a record; 0 (unknown) for anything else (an older record's string)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock (stored in the lock itself: the Redis key's value, the lock file)."""

    pid: int
    """Process id of the holder."""
    host: str
    """Host name of the holder."""
    since: str
    """When it took the lock (ISO 8601, UTC)."""
    token: str = ""
    """Random token that makes the record unique (compared before renewal and release)."""
    boot: str = ""
    """The holder host's boot id (Linux; empty when unknown)."""
    started: int = 0
    """The holder process's start (clock ticks since boot, Linux; 0 when unknown)."""

    @classmethod
    def me(cls) -> LockHolder:
        """A new holder record for this process (a fresh token)."""
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
        """Parse a record; ``None`` if empty or unreadable (no integer ``pid`` or no ``host``).

        The token is not read back: only its owner may know it. A record of the membership
        refresh before the locks were one (``started`` an ISO string, no ``since``) is read too:
        its time becomes ``since``, its process start unknown.
        """
        if not raw:
            return None
        try:
            data = json.loads(raw)
            pid, host = data["pid"], data["host"]
            if isinstance(pid, bool) or not isinstance(pid, int | str) or not isinstance(host, str):
                return None
            since = data.get("since")
            if not isinstance(since, str):
                legacy = data.get("started")
                since = legacy if isinstance(legacy, str) else "unknown"
            boot = data.get("boot", "")
            return cls(
                int(pid), host, since, "", boot if isinstance(boot, str) else "",
                _int_field(data.get("started")),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def is_dead_here(self) -> bool:
        """True when this holder is proven dead: it ran on this host and its process is gone.

        Gone: the host rebooted since (boot ids differ), no process has its pid or it is a zombie,
        or one does but started at another moment (the pid was reused). Never dead here: a holder
        on another host (its lock expires after the TTL instead) or with a pid <= 0.
        """
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        boot = _boot_id()
        if self.boot and boot and self.boot != boot:
            return True
        if _proven_gone(self.pid):
            return True
        started = _process_start(self.pid)
        return bool(self.started and started and started != self.started)

    def describe(self) -> str:
        """``pid 123 on host, since 2026-01-01T00:00:00+00:00``."""
        return f"pid {self.pid} on {self.host}, since {self.since}"


UNKNOWN_HOLDER = LockHolder(pid=0, host="unknown", since="unknown")
"""Reported when the lock is taken but its record cannot be read (never judged dead)."""


class ExclusiveLock(abc.ABC):
    """One holder at a time (see the module docstring); :class:`RedisLock` or :class:`FileLock`.

    ``acquire()`` returns ``None`` when this process now holds the lock, else who holds it. Not
    reentrant: release before acquiring again.

    Args:
        purpose: What the lock guards, for its log lines (``"materialization"`` gives "the
            materialization lock").
        log: The logger of its lines (the user's, so they are configured with its package);
            default this module's.
    """

    took_over: LockHolder | None = None
    """After a successful ``acquire()``: the previous owner this one replaced (dead here, or
    silent until its key expired while this one waited); ``None`` when the lock was free."""
    took_over_reason: Literal["dead", "expired"] | None = None
    """Why :attr:`took_over` lost the lock: ``dead`` (proven dead on this host) or ``expired``."""

    def __init__(self, purpose: str, log: logging.Logger | None = None) -> None:
        self.purpose = purpose
        self.log = log or logger

    @abc.abstractmethod
    def acquire(self, timeout: float | None = 0.0) -> LockHolder | None:
        """Take the lock, waiting up to ``timeout`` seconds for a live owner.

        Args:
            timeout: ``0`` tries once (never waits); ``None`` waits forever (a standby).

        Returns:
            ``None`` when this process now holds the lock, otherwise the holder at the end of the
            wait (:data:`UNKNOWN_HOLDER` when its record cannot be read).

        Raises:
            redis.exceptions.RedisError: (:class:`RedisLock`) Redis cannot be reached.
        """

    @abc.abstractmethod
    def owned(self) -> bool:
        """Whether this process still holds the lock (asks the store; check it before a step
        that must not run twice)."""

    @property
    def lost(self) -> bool:
        """Whether the lock was lost while held (set by the heartbeat; no round trip)."""
        return False

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock up; a no-op when it is not held."""

    @contextlib.contextmanager
    def held(self, timeout: float | None = 0.0) -> Iterator[LockHolder | None]:
        """``with lock.held() as holder:``; ``holder`` is ``None`` when this process got it."""
        holder = self.acquire(timeout)
        try:
            yield holder
        finally:
            if holder is None:
                self.release()

    def _took_over(self, holder: LockHolder, reason: Literal["dead", "expired"]) -> None:
        self.took_over, self.took_over_reason = holder, reason
        if reason == "dead":
            self.log.warning(
                "taking over the %s lock of dead process %s on %s (since %s)",
                self.purpose, holder.pid, holder.host, holder.since,
            )  # fmt: skip
        else:
            self.log.warning(
                "took over the %s lock after process %s on %s stopped renewing it",
                self.purpose, holder.pid, holder.host,
            )  # fmt: skip

    def _waiting(self, holder: LockHolder) -> None:
        self.log.info(
            "waiting for the %s of process %s on %s (since %s)",
            self.purpose, holder.pid, holder.host, holder.since,
        )  # fmt: skip


@dataclass(frozen=True)
class _Seen:
    """The owner a waiting acquire last found, the key's PTTL then (ms) and when (monotonic)."""

    holder: LockHolder
    pttl: int
    at: float

    def lapsed(self, now: float, slack: float) -> bool:
        """Whether the key, gone at ``now``, vanished about when it was due to expire.

        Its owner had stopped renewing it: a live owner's key stays above 4/5 of its TTL until
        it is deleted (released), far from its end. ``slack`` covers the poll's jitter.
        """
        return self.pttl >= 0 and self.pttl / 1000 <= now - self.at + slack


class RedisLock(ExclusiveLock):
    """A Redis key holding its owner's record, renewed by a heartbeat (see the module docstring).

    Args:
        client: A Redis client (single, cluster or sentinel primary: ``connect_redis``).
        key: The lock's key.
        ttl: Seconds the key lives without renewal (positive).
        heartbeat: Seconds between renewals (default ``ttl / HEARTBEAT_FRACTION``; well below
            ``ttl``).
        poll: Seconds between tries of a waiting acquire (default ``ttl / POLL_FRACTION``).
        purpose: What the lock guards, for its log lines.
        log: The logger of its lines (default this module's).
    """

    def __init__(
        self,
        client: RedisClient,
        key: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        heartbeat: float | None = None,
        poll: float | None = None,
        purpose: str = "lock",
        log: logging.Logger | None = None,
    ) -> None:
        super().__init__(purpose, log)
        self.client = client
        self.key = key
        self.ttl = ttl
        self.heartbeat = heartbeat if heartbeat is not None else ttl / HEARTBEAT_FRACTION
        self.poll = poll if poll is not None else ttl / POLL_FRACTION
        self.value: str | None = None
        """The record this process wrote while it holds the lock (``None`` otherwise)."""
        self._lost = False
        self._renewed_at = 0.0  # monotonic, before the last SET or renewal that succeeded
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @property
    def lost(self) -> bool:
        # No renewal for a whole TTL (a renewal hanging in the client's retries counts): the key
        # has expired, whatever the heartbeat thread will find when its call returns.
        if self.value is not None and time.monotonic() - self._renewed_at >= self.ttl:
            self._lost = True
        return self._lost

    def acquire(self, timeout: float | None = 0.0) -> LockHolder | None:
        self.took_over = self.took_over_reason = None
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        seen: _Seen | None = None
        while True:
            found = self._attempt()
            now = time.monotonic()
            if found is None:
                if self.took_over is None and seen is not None and seen.lapsed(now, self.poll):
                    self._took_over(seen.holder, "expired")
                return None
            holder, pttl = found
            if deadline is not None and now >= deadline:
                return holder
            if seen is None or seen.holder != holder:
                self._waiting(holder)
            seen = _Seen(holder, pttl, now)
            time.sleep(self.poll if deadline is None else max(0.0, min(self.poll, deadline - now)))

    def _attempt(self) -> tuple[LockHolder, int] | None:
        """One try: ``None`` when taken (free, or its owner dead here), else (holder, PTTL)."""
        value = LockHolder.me().dumps()
        self._renewed_at = time.monotonic()
        for _ in range(2):  # released (or expired) between SET and GET: one more try
            if self.client.set(self.key, value, nx=True, px=self._ttl_ms):
                self._start(value)
                return None
            raw, pttl = self._peek()
            if raw is not None:
                break
        else:
            return UNKNOWN_HOLDER, -2
        holder = LockHolder.loads(raw)
        if holder is None:  # not a record we can judge: wait for its TTL
            return UNKNOWN_HOLDER, pttl
        if not holder.is_dead_here():
            return holder, pttl
        if self.client.eval(_TAKE_OVER, 1, self.key, raw, value, self._ttl_ms):  # type: ignore[no-untyped-call]
            self._took_over(holder, "dead")
            self._start(value)
            return None
        # Another contender replaced the dead record first (or it was released): report the now.
        raw, pttl = self._peek()
        return (LockHolder.loads(raw) or UNKNOWN_HOLDER), pttl

    def _peek(self) -> tuple[bytes | None, int]:
        """The key's value and PTTL (ms; -2 gone, -1 no expiry), one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.key)
            pipe.pttl(self.key)
            raw, pttl = pipe.execute()
        if isinstance(raw, str):
            raw = raw.encode()
        return raw, int(pttl)

    def _start(self, value: str) -> None:
        self.value = value
        self._lost = False
        self._stop = threading.Event()
        self._beater = threading.Thread(
            target=self._beat,
            args=(value, self._stop),
            name=f"{self.purpose}-lock-heartbeat",
            daemon=True,
        )
        self._beater.start()

    def _beat(self, value: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat):
            sent = time.monotonic()
            try:
                renewed = self.client.eval(_RENEW, 1, self.key, value, self._ttl_ms)  # type: ignore[no-untyped-call]
            except Exception as e:  # a Redis blip: the next beat may work, unless a TTL passed
                if stop.is_set():
                    return
                if self.lost:
                    self.log.error(
                        "lost the %s lock %s: Redis did not answer its heartbeat for %g s (%s)",
                        self.purpose, self.key, self.ttl, e,
                    )  # fmt: skip
                    return
                self.log.warning("could not renew the %s lock %s: %s", self.purpose, self.key, e)
                continue
            if not renewed:
                self._lost = True
                self.log.error(
                    "lost the %s lock %s: it expired or was taken", self.purpose, self.key
                )
                return
            self._renewed_at = sent

    def owned(self) -> bool:
        if self.value is None or self.lost:
            return False
        raw = self.client.get(self.key)
        if isinstance(raw, str):
            raw = raw.encode()
        if raw != self.value.encode():
            self._lost = True
        return not self._lost

    def release(self) -> None:
        from redis.exceptions import RedisError

        self._stop.set()
        if self._beater is not None:
            self._beater.join()
            self._beater = None
        value, self.value = self.value, None
        if value is None:
            return
        try:
            self.client.eval(_RELEASE, 1, self.key, value)  # type: ignore[no-untyped-call]
        except RedisError as e:  # unreachable: the key expires on its own within the ttl
            self.log.warning("could not release the %s lock %s: %s", self.purpose, self.key, e)


class FileLock(ExclusiveLock):
    """An exclusive ``fcntl.flock`` on a file (one host only), holding the owner's record.

    The kernel drops the lock when the holding process dies, so a stale lock cannot outlive its
    owner. The file stays in place (deleting it would race with the next owner); it holds the
    current owner's record for the holder report, emptied on release: a record still there when
    the lock is free is a dead owner's (:attr:`took_over`, reason ``dead``).

    Args:
        path: The lock file (its directory is created).
        purpose: What the lock guards, for its log lines.
        log: The logger of its lines (default this module's).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        purpose: str = "lock",
        log: logging.Logger | None = None,
    ) -> None:
        super().__init__(purpose, log)
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, timeout: float | None = 0.0) -> LockHolder | None:
        self.took_over = self.took_over_reason = None
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        seen: LockHolder | None = None
        while True:
            holder = self._attempt()
            if holder is None:
                return None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return holder
            if holder != seen:
                self._waiting(holder)
            seen = holder
            wait = FILE_POLL_SECONDS
            time.sleep(wait if deadline is None else max(0.0, min(wait, deadline - now)))

    def _attempt(self) -> LockHolder | None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, 4096, 0)
            finally:
                os.close(fd)
            return LockHolder.loads(raw) or UNKNOWN_HOLDER
        left = LockHolder.loads(os.pread(fd, 4096, 0))  # not emptied by a release: it died
        if left is not None:
            self._took_over(left, "dead")
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
