"""The membership refresh lock: one refresh per project at a time, a dead owner taken over fast.

The lock is a Redis key holding its owner (``{"token", "pid", "host", "started"}``) with a short
TTL that a heartbeat thread renews while the owner lives. A refresh that finds the lock held:

* by a process of **this host that no longer exists** (killed with ``SIGKILL``, OOM-killed): takes
  it over at once, with a warning naming the dead owner;
* by another host's process: waits; once the owner stops renewing (it died) the key expires within
  ``ttl`` seconds and the lock is taken, with a warning too; a live owner is waited for up to
  ``wait`` seconds, then :class:`~segmentation.errors.SegmentationError`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from segmentation.errors import SegmentationError

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = ["DEFAULT_LOCK_TTL", "RefreshLock", "pid_alive"]

logger = logging.getLogger(__name__)

DEFAULT_LOCK_TTL = 15.0
"""Seconds the lock outlives its owner's last heartbeat (renewed every third of it)."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:  # never signal a process group
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class RefreshLock:
    """A context manager holding ``key`` for one refresh (see the module docstring).

    Args:
        client: The Redis client.
        key: The lock's key.
        ttl: Seconds the lock outlives a silent owner.
        wait: Seconds to wait for a live owner before giving up.
    """

    def __init__(
        self, client: RedisClient, key: str, *, ttl: float = DEFAULT_LOCK_TTL, wait: float = 600.0
    ) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self.wait = wait
        self.owner = json.dumps(
            {
                "token": uuid.uuid4().hex,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        """Set when a heartbeat found the lock no longer ours."""

    @staticmethod
    def _get(reply: Any) -> Any:
        """A reply of the synchronous client (redis-py's stubs also allow Awaitables)."""
        return reply

    def _try(self) -> bool:
        return bool(self.client.set(self.key, self.owner, nx=True, px=int(self.ttl * 1000)))

    def acquire(self) -> None:
        """Take the lock (see the module docstring for the waiting and the take-overs).

        Raises:
            SegmentationError: A live refresh held it for longer than ``wait`` seconds.
        """
        deadline = time.monotonic() + self.wait
        poll = min(0.2, self.ttl / 10)
        announced = False
        last_holder: dict[str, Any] | None = None
        last_pttl = 0
        while not self._try():
            raw: Any = self.client.get(self.key)
            holder = _parse(raw)
            if holder is None:
                continue  # released or expired in between: try again at once
            if holder.get("host") == socket.gethostname() and not pid_alive(int(holder["pid"])):
                # Compare-and-delete: only the dead owner's value, never a newer owner's.
                if self.client.eval(_RELEASE, 1, self.key, raw):  # type: ignore[no-untyped-call]
                    logger.warning(
                        "taking over the membership refresh lock of dead process %s on %s "
                        "(started %s)",
                        holder.get("pid"),
                        holder.get("host"),
                        holder.get("started"),
                    )
                continue
            last_holder = holder
            last_pttl = int(self._get(self.client.pttl(self.key)))
            if not announced:
                logger.info(
                    "waiting for the membership refresh of process %s on %s (started %s)",
                    holder.get("pid"),
                    holder.get("host"),
                    holder.get("started"),
                )
                announced = True
            if time.monotonic() >= deadline:
                raise SegmentationError(
                    f"another membership refresh (process {holder.get('pid')} on "
                    f"{holder.get('host')}, started {holder.get('started')}) held the lock "
                    f"{self.key!r} for more than {self.wait:.0f} s",
                    "Let it finish, or stop it; a dead refresh's lock is taken over by itself "
                    f"within {self.ttl:.0f} s",
                )
            time.sleep(poll)
        if last_holder is not None and (last_pttl == -2 or 0 <= last_pttl <= 2 * poll * 1000):
            # It vanished by expiring (a live owner renews: its TTL stays above 2/3 of ttl).
            logger.warning(
                "took over the membership refresh lock after process %s on %s stopped renewing it",
                last_holder.get("pid"),
                last_holder.get("host"),
            )
        self._thread = threading.Thread(target=self._beat, name="refresh-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                renewed = self.client.eval(  # type: ignore[no-untyped-call]
                    _RENEW, 1, self.key, self.owner, int(self.ttl * 1000)
                )
            except Exception:  # a Redis blip: the next beat retries
                logger.debug("membership refresh lock heartbeat failed", exc_info=True)
                continue
            if not renewed:
                self.lost = True
                return

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.client.eval(_RELEASE, 1, self.key, self.owner)  # type: ignore[no-untyped-call]
        except Exception:  # it expires within ttl anyway
            logger.debug("membership refresh lock release failed", exc_info=True)

    def __enter__(self) -> RefreshLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _parse(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict) and "pid" in value:
        return value
    return {"pid": -1, "host": "?", "started": "?"}  # not ours: wait for its TTL
