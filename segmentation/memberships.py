"""Segment memberships in Redis: one SET per segment, swapped atomically, with deltas and history.

Keys (``<p>`` = ``segmentation:<feast project>``):

* ``<p>:members:<segment>``: the members of the last refresh (SET; ``SISMEMBER`` is O(1)).
* ``<p>:previous:<segment>``: the members of the refresh before.
* ``<p>:joined:<segment>`` / ``<p>:left:<segment>``: who joined / left at the last refresh (SDIFF).
* ``<p>:history:<segment>``: a LIST of JSON entries ``{"timestamp", "size", "joined", "left"}``,
  newest first, trimmed to ``history_limit``.

A refresh writes the new members into a temporary key, computes the deltas with ``SDIFFSTORE``, then
swaps everything with ``RENAME`` inside one ``MULTI``/``EXEC`` transaction: a reader sees either
the old set or the new one, never a half-written one.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = ["HistoryEntry", "MembershipStore", "RefreshResult"]


@dataclass(frozen=True)
class HistoryEntry:
    """One refresh of one segment.

    Attributes:
        timestamp: When the refresh swapped the set in (UTC, ISO 8601).
        size: Members after the refresh.
        joined: Customers who joined at that refresh.
        left: Customers who left at that refresh.
    """

    timestamp: str
    size: int
    joined: int
    left: int


@dataclass(frozen=True)
class RefreshResult:
    """The outcome of refreshing one segment (sizes, plus the ids that joined and left)."""

    segment: str
    size: int
    joined: list[str]
    left: list[str]
    timestamp: str


def _s(values: Iterable[bytes | str]) -> list[str]:
    return sorted(v.decode() if isinstance(v, bytes) else v for v in values)


class MembershipStore:
    """Reads and writes segment memberships of one Feast project in Redis.

    Args:
        client: The Redis client.
        project: The Feast project (part of every key, so projects never mix).
        history_limit: Entries kept per segment's history.
        chunk: Members per ``SADD`` command while writing.
    """

    def __init__(
        self, client: redis.Redis, project: str, *, history_limit: int = 1000, chunk: int = 10_000
    ) -> None:
        self.client = client
        self.prefix = f"segmentation:{project}"
        self.history_limit = history_limit
        self.chunk = chunk

    def key(self, kind: str, segment: str) -> str:
        """The Redis key of ``kind`` (members, previous, joined, left, history) for a segment."""
        return f"{self.prefix}:{kind}:{segment}"

    def store(
        self, segment: str, members: Sequence[str], *, now: _dt.datetime | None = None
    ) -> RefreshResult:
        """Replace a segment's members atomically and record the deltas and the history entry.

        Args:
            segment: The segment's name.
            members: The new members.
            now: The refresh time (default: now, UTC).

        Returns:
            The new size and who joined and left.
        """
        r = self.client
        token = uuid.uuid4().hex
        tmp, tmp_joined, tmp_left = (
            f"{self.prefix}:tmp:{token}:{k}" for k in ("members", "joined", "left")
        )
        current = self.key("members", segment)
        with r.lock(f"{self.prefix}:lock:{segment}", timeout=600, blocking_timeout=600):
            try:
                with r.pipeline(transaction=False) as pipe:
                    for i in range(0, len(members), self.chunk):
                        pipe.sadd(tmp, *members[i : i + self.chunk])
                    pipe.expire(tmp, 3600)  # a crashed refresh leaves nothing behind for long
                    pipe.sdiffstore(tmp_joined, [tmp, current])
                    pipe.sdiffstore(tmp_left, [current, tmp])
                    pipe.exists(current)
                    pipe.smembers(tmp_joined)
                    pipe.smembers(tmp_left)
                    *_, n_joined, n_left, had_current, joined, left = pipe.execute()
                stamp = (now or _dt.datetime.now(_dt.UTC)).isoformat()
                entry = HistoryEntry(stamp, len(set(members)), n_joined, n_left)
                with r.pipeline(transaction=True) as tx:
                    previous = self.key("previous", segment)
                    if had_current:
                        tx.rename(current, previous)
                    else:
                        tx.delete(previous)
                    for src, dst, n in (
                        (tmp, current, entry.size),
                        (tmp_joined, self.key("joined", segment), n_joined),
                        (tmp_left, self.key("left", segment), n_left),
                    ):
                        if n:
                            tx.rename(src, dst)
                            tx.persist(dst)
                        else:
                            tx.delete(dst)
                    history = self.key("history", segment)
                    tx.lpush(history, json.dumps(asdict(entry)))
                    tx.ltrim(history, 0, self.history_limit - 1)
                    tx.execute()
            finally:
                r.delete(tmp, tmp_joined, tmp_left)
        return RefreshResult(segment, entry.size, _s(joined), _s(left), stamp)

    @staticmethod
    def _get(reply: Any) -> Any:
        """A reply of the synchronous client (redis-py's stubs also allow Awaitables)."""
        return reply

    def is_member(self, segment: str, customer_id: str) -> bool:
        """O(1) membership as of the last refresh."""
        return bool(self.client.sismember(self.key("members", segment), customer_id))

    def members(self, segment: str) -> list[str]:
        """The members as of the last refresh, sorted."""
        return _s(self._get(self.client.smembers(self.key("members", segment))))

    def size(self, segment: str) -> int:
        """The number of members as of the last refresh."""
        return int(self._get(self.client.scard(self.key("members", segment))))

    def joined(self, segment: str) -> list[str]:
        """Customers who joined at the last refresh, sorted."""
        return _s(self._get(self.client.smembers(self.key("joined", segment))))

    def left(self, segment: str) -> list[str]:
        """Customers who left at the last refresh, sorted."""
        return _s(self._get(self.client.smembers(self.key("left", segment))))

    def history(self, segment: str, limit: int | None = None) -> list[HistoryEntry]:
        """The segment's refreshes, newest first."""
        end = -1 if limit is None else max(limit, 1) - 1
        raw = self._get(self.client.lrange(self.key("history", segment), 0, end))
        return [HistoryEntry(**json.loads(x)) for x in raw]

    def delete(self, segment: str) -> None:
        """Forget a segment's memberships, deltas and history."""
        kinds = ("members", "previous", "joined", "left", "history")
        self.client.delete(*(self.key(k, segment) for k in kinds))
