"""The changed-customers journal, refresh side: which customers a segment refresh re-evaluates.

The writers mark customers before writing their features (:func:`mark_changed`,
:mod:`xiva_source.feast_plugin.changed`: the job, live refresh, Feast's writes through the
project's online store, the real-time worker). The journal is a sorted set ``customer -> number of
its latest mark`` (numbers from one sequence). Each segment keeps, in its refresh state, the number
its last refresh passed (its *cursor*):

* a refresh reads the sequence and the marks after its segments' cursor in one ``MULTI`` (every
  mark it returns is at most the sequence it read: later marks are for the next refresh), and
  re-evaluates those customers;
* it stores the new cursor in the transaction that publishes the memberships and events: a
  refresh killed before that leaves the cursor where it was, so the next one reads the same marks
  again (nothing lost; nothing published twice: the deltas are against the stored sets);
* marks every segment's cursor passed are deleted afterwards (:meth:`Journal.trim`);
* a journal that reached its capacity drops marks and records the latest dropped number (the
  *overflow*): a segment whose cursor is before it is refreshed in full.

Per-segment cursors let ``segmentation refresh <one segment>`` leave the other segments' marks in
place. Cost: O(customers marked since the cursor).

Refresh state (``<p>:refresh-state``, a HASH ``segment -> JSON``): ``cursor``, ``now`` (the
moment the refresh evaluated as of), ``fingerprint`` (the segment's definition with the segments
it references, the global control fraction and its staleness limits: a change means a full
refresh), ``floors`` (per feature view, the oldest fresh event timestamp: see
:mod:`segmentation.time_flips`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from xiva_source.feast_plugin import changed as _changed
from xiva_source.feast_plugin.changed import JOURNAL_LIMIT, journal_keys
from xiva_source.redis_client import is_cluster

__all__ = ["Journal", "SegmentState", "mark_changed"]


def mark_changed(
    client: Any, project: str, customer_ids: Iterable[Any], *, limit: int = JOURNAL_LIMIT
) -> int:
    """Mark customers as changed, **before** writing their features and **again after** the
    write is in Redis (the real-time worker, and any writer of its own): the next segment refresh
    re-evaluates them. The first mark survives a crash after the write; the second covers a
    refresh that read the customers between the first mark and the write.

    Args:
        client: The online store's Redis client (``redis.Redis`` or ``RedisCluster``).
        project: The Feast project.
        customer_ids: The customers about to be written.
        limit: The journal's capacity (a full journal records an overflow: the next refreshes
            are full).

    Returns:
        The number of distinct customers marked.

    Example:
        >>> mark_changed(client, store.project, ["C00042"])  # doctest: +SKIP
        1
    """
    return _changed.mark_changed(client, project, customer_ids, limit=limit)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class SegmentState:
    """What a segment's last refresh recorded (see the module docstring).

    Attributes:
        cursor: The journal number its last refresh passed.
        now: The moment it evaluated as of (ISO 8601, UTC).
        fingerprint: Its definition's fingerprint.
        floors: Per feature view, the oldest fresh event timestamp (epoch seconds) it saw.
    """

    cursor: int
    now: str
    fingerprint: str
    floors: dict[str, float] = field(default_factory=dict)

    def dumps(self) -> str:
        """The stored JSON."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, raw: Any) -> SegmentState | None:
        """A stored state; ``None`` when unreadable (the segment is refreshed in full)."""
        try:
            data = json.loads(_text(raw))
            return cls(
                int(data["cursor"]),
                str(data["now"]),
                str(data["fingerprint"]),
                {str(k): float(v) for k, v in dict(data.get("floors") or {}).items()},
            )
        except (ValueError, KeyError, TypeError):
            return None


class Journal:
    """The journal of one project, and its segments' refresh states.

    Args:
        client: The Redis client (the online store's).
        project: The Feast project.
        prefix: The memberships' key prefix (:attr:`MembershipStore.prefix`).
    """

    def __init__(self, client: Any, project: str, prefix: str) -> None:
        self.client = client
        self.project = project
        self.key, self.seq_key, self.overflow_key = journal_keys(
            project, cluster=is_cluster(client)
        )
        self.state_key = f"{prefix}:refresh-state"

    def mark(self, customer_ids: Iterable[Any]) -> int:
        """:func:`mark_changed` for this project."""
        return mark_changed(self.client, self.project, customer_ids)

    def sequence(self) -> int:
        """The journal's sequence now (a full refresh's cursor: marks up to it are covered)."""
        return int(self.client.get(self.seq_key) or 0)

    def take(self, after: int) -> tuple[int, list[str] | None]:
        """The sequence now and every customer marked after ``after`` (one ``MULTI``); ``None``
        instead of the customers when marks after ``after`` were dropped (the journal was full:
        a full refresh is needed)."""
        with self.client.pipeline(transaction=True) as tx:
            tx.get(self.seq_key)
            tx.get(self.overflow_key)
            tx.zrangebyscore(self.key, f"({after}", "+inf")
            seq, overflow, ids = tx.execute()
        if overflow is not None and int(overflow) > after:
            return int(seq or 0), None
        return int(seq or 0), [_text(c) for c in ids]

    def count(self, after: int) -> int:
        """How many customers were marked after ``after``."""
        return int(self.client.zcount(self.key, f"({after}", "+inf"))

    def states(self, names: Sequence[str]) -> dict[str, SegmentState | None]:
        """The stored refresh state of each segment (``None``: none, or unreadable)."""
        if not names:
            return {}
        raw = self.client.hmget(self.state_key, list(names))
        return {
            n: (SegmentState.loads(r) if r is not None else None)
            for n, r in zip(names, raw, strict=True)
        }

    def queue_states(self, tx: Any, states: Mapping[str, SegmentState]) -> None:
        """Queue the new states on ``tx`` (the transaction that publishes the refresh)."""
        if states:
            tx.hset(self.state_key, mapping={n: s.dumps() for n, s in states.items()})

    def forget(self, segment: str) -> None:
        """Drop a segment's state (its next refresh is full; its cursor holds no mark back)."""
        self.client.hdel(self.state_key, segment)

    def trim(self) -> int:
        """Delete the marks every segment with a state has passed; returns how many."""
        raw = self.client.hvals(self.state_key)
        states = [s for s in (SegmentState.loads(r) for r in raw) if s is not None]
        if not states:
            return 0
        upto = min(s.cursor for s in states)
        return int(self.client.zremrangebyscore(self.key, "-inf", upto))
