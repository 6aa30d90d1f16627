"""Segment memberships in Redis: generations switched atomically across segments, with deltas
and history.

Keys (``<p>`` = ``segmentation:<feast project>``; on a Redis Cluster ``segmentation:{<feast
project>}``, a hash tag putting every key of a project in one slot so the ``MULTI``/``EXEC``
below can span them; ``<g>`` = a generation id):

* ``<p>:current``: a HASH ``segment -> generation`` of the last refresh: readers read through it.
* ``<p>:previous``: a HASH ``segment -> generation`` of the refresh before (kept one refresh so a
  reader that looked the generation up just before a switch still finds its set).
* ``<p>:gen:<g>:members:<segment>``: the members (SET; ``SISMEMBER`` is O(1)).
* ``<p>:gen:<g>:joined:<segment>`` / ``...:left:<segment>``: who joined / left at that refresh.
* ``<p>:gen:<g>:groups:<segment>``: a HASH ``member -> group`` of the members whose group is not
  ``target`` (``holdout``, ``global_control``, an arm's name): a member absent from it is
  ``target`` (:mod:`segmentation.groups`). Written with the members, switched with them.
* ``<p>:history:<segment>``: a LIST of JSON entries ``{"timestamp", "size", "joined", "left"}``,
  newest first, trimmed to ``history_limit``.
* ``<p>:refresh-lock``: the refresh lock (the house's one lock,
  :class:`xiva_source.locking.RedisLock`; see :meth:`MembershipStore.refresh_lock`).
* ``<p>:events``: the membership event stream (:mod:`segmentation.events`): each ``joined`` /
  ``left`` is added in the transaction that stores it (a real-time update), or published after
  the switch below from the pending entries it recorded.
* ``<p>:gen:<g>:pending-joined:<segment>`` / ``...:pending-left:<segment>``: copies of the delta
  sets, written with them; the ids whose events are not published yet (emptied batch by batch
  after the switch, :meth:`MembershipStore.publish_pending`).
* ``<p>:events-pending``: a HASH ``<g>:<segment index>:<0 joined|1 left> -> JSON`` naming the
  pending sets a switch recorded and not fully published yet (:mod:`segmentation.events`).

A refresh of several segments writes every segment's new set and deltas under one new generation
(keys that expire in an hour until switched), then switches all of them with one ``MULTI``/``EXEC``
(``HSET current``, history entries) that also checks the refresh still holds the lock. A refresh
killed at any point leaves every segment on the old generation or every one on the new, never a
mix; what it wrote expires. Generations two refreshes old are deleted after the switch.

Keys of the layout before generations (``<p>:members:<segment>``, ...) are still read for a segment
that has no generation yet, and deleted by its first refresh.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from segmentation.errors import SegmentationError
from segmentation.events import (
    EVENTS_BATCH,
    PendingEvents,
    publish_pending,
    queue_pending,
)
from segmentation.groups import UNTARGETED_GROUPS
from xiva_source.feast_plugin.changed import membership_prefix
from xiva_source.locking import RedisLock
from xiva_source.redis_client import is_cluster
from xiva_source.timeutil import to_iso

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = [
    "REFRESH_LOCK_TTL_SECONDS",
    "HistoryEntry",
    "MembershipStore",
    "RefreshResult",
    "membership_prefix",
]

_log = logging.getLogger(__name__)


_KINDS = ("members", "joined", "left", "groups", "pending-joined", "pending-left")
_PENDING = {"joined": "pending-joined", "left": "pending-left"}
"""The copy of each delta SET that the events are published from (emptied as published)."""
_UNSWITCHED_TTL = 3600
REFRESH_LOCK_TTL_SECONDS = 60.0
"""The refresh lock's TTL. A full refresh of millions of customers spends seconds in single calls
that hold the GIL (sorting millions of ids) and in Redis commands under load: at 10,000,000
customers the house's 10 s lost its heartbeat after 29 minutes of work. A dead refresh is still
taken over at once on its own host (pid proof); from another host within a minute."""
"""Seconds the keys of a generation live until the switch (a killed refresh leaves nothing)."""


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
    """The outcome of refreshing one segment (sizes, plus the ids that joined and left).

    Attributes:
        mode: ``full`` (the whole population evaluated) or ``incremental`` (the changed
            customers and those time may have flipped: :mod:`segmentation.incremental`).
        reason: Why a refresh that could have been incremental was full (``None``: it was not).
        evaluated: Customers evaluated (``None``: the whole population).
    """

    segment: str
    size: int
    joined: list[str]
    left: list[str]
    timestamp: str
    mode: str = "full"
    reason: str | None = None
    evaluated: int | None = None


def _s(values: Iterable[bytes | str]) -> list[str]:
    return sorted(v.decode() if isinstance(v, bytes) else v for v in values)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class MembershipStore:
    """Reads and writes segment memberships of one Feast project in Redis.

    Args:
        client: The Redis client.
        project: The Feast project (part of every key, so projects never mix).
        history_limit: Entries kept per segment's history.
        chunk: Members per ``SADD`` command while writing.
        lock_ttl: Seconds the refresh lock outlives a dead owner on another host (a dead owner on
            this host is taken over at once).
        lock_wait: Seconds a refresh waits for another live refresh before failing.
        event_batch: Events per publication script call after a switch
            (:func:`segmentation.events.publish_pending`).
    """

    def __init__(
        self,
        client: RedisClient,
        project: str,
        *,
        history_limit: int = 1000,
        chunk: int = 10_000,
        lock_ttl: float = REFRESH_LOCK_TTL_SECONDS,
        lock_wait: float = 600.0,
        event_batch: int = EVENTS_BATCH,
    ) -> None:
        self.client = client
        self.prefix = membership_prefix(project, cluster=is_cluster(client))
        self.history_limit = history_limit
        self.chunk = chunk
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.event_batch = event_batch

    def key(self, kind: str, segment: str) -> str:
        """The key of ``kind`` for a segment outside generations (history; the old layout)."""
        return f"{self.prefix}:{kind}:{segment}"

    def generation_key(self, generation: str, kind: str, segment: str) -> str:
        """The key of ``kind`` (members, joined, left) of a segment in a generation."""
        return f"{self.prefix}:gen:{generation}:{kind}:{segment}"

    @property
    def lock_key(self) -> str:
        """The refresh lock's key."""
        return f"{self.prefix}:refresh-lock"

    @contextlib.contextmanager
    def refresh_lock(self) -> Iterator[RedisLock]:
        """Hold the project's refresh lock: one membership refresh per project at a time.

        A dead refresh's lock is taken over at once on its host, within ``lock_ttl`` from another
        (:mod:`xiva_source.locking`); a live one is waited for up to ``lock_wait`` seconds.

        Raises:
            SegmentationError: A live refresh held it for longer than ``lock_wait`` seconds.
        """
        lock = RedisLock(
            self.client, self.lock_key, ttl=self.lock_ttl, purpose="membership refresh", log=_log
        )
        holder = lock.acquire(timeout=self.lock_wait)
        if holder is not None:
            raise SegmentationError(
                f"another membership refresh (process {holder.pid} on {holder.host}, since "
                f"{holder.since}) held the lock {self.lock_key!r} for more than "
                f"{self.lock_wait:.0f} s",
                "Let it finish, or stop it; a dead refresh's lock is taken over by itself "
                f"within {self.lock_ttl:.0f} s",
            )
        try:
            yield lock
        finally:
            lock.release()

    def events_key(self) -> str:
        """The membership event stream's key (:mod:`segmentation.events`)."""
        return f"{self.prefix}:events"

    def pending_key(self) -> str:
        """The HASH of the events stored but not published yet (:mod:`segmentation.events`)."""
        return f"{self.prefix}:events-pending"

    def publish_pending(self, on_batch: Callable[[int], None] | None = None) -> int:
        """Publish the events a switch stored as pending, ``event_batch`` per script call
        (those of a refresh killed after its switch, too): exactly once, in order.

        Returns:
            The number of events published.
        """
        return publish_pending(
            self.client,
            self.events_key(),
            self.pending_key(),
            batch=self.event_batch,
            on_batch=on_batch,
        )

    def finish_publication(self) -> int | None:
        """Publish what a killed refresh left pending when no refresh runs (readers of the
        stream: ``segmentation events``); a running refresh publishes it itself.

        Returns:
            The number of events published; ``None``: a refresh holds the lock (nothing done).
        """
        if not self.client.exists(self.pending_key()):
            return 0
        lock = RedisLock(
            self.client, self.lock_key, ttl=self.lock_ttl, purpose="membership refresh", log=_log
        )
        if lock.acquire(timeout=0) is not None:
            return None
        try:
            return self.publish_pending()
        finally:
            lock.release()

    def generation(self, segment: str) -> str | None:
        """The generation a segment's reads go to (``None``: never refreshed with generations)."""
        return _text(self.client.hget(f"{self.prefix}:current", segment))

    def _key_in(self, generation: str | None, kind: str, segment: str) -> str:
        # No generation: the old layout's key.
        if generation is None:
            return self.key(kind, segment)
        return self.generation_key(generation, kind, segment)

    def _resolve(self, kind: str, segment: str) -> str:
        return self._key_in(self.generation(segment), kind, segment)

    # --- writing --------------------------------------------------------------------------
    def store(
        self, segment: str, members: Sequence[str], *, now: _dt.datetime | None = None
    ) -> RefreshResult:
        """Replace one segment's members (see :meth:`store_many`)."""
        return self.store_many({segment: members}, now=now)[segment]

    def store_many(
        self,
        memberships: Mapping[str, Sequence[str]],
        *,
        now: _dt.datetime | None = None,
        on_written: Callable[[str], None] | None = None,
        groups: Mapping[str, Mapping[str, str]] | None = None,
        lock: RedisLock | None = None,
        on_switch: Callable[[Any], None] | None = None,
        on_published: Callable[[int], None] | None = None,
    ) -> dict[str, RefreshResult]:
        """Replace several segments' members with one generation switch for all of them.

        Args:
            memberships: The new members of each segment.
            now: The refresh time (default: now, UTC).
            groups: Per segment, ``member -> group`` (see :mod:`segmentation.groups`); a member
                it does not name (or a segment it does not list) is ``target``.
            on_written: Called with each segment's name once its new set is written (before
                the switch): progress reporting.
            lock: The refresh lock when the caller holds it already (else it is taken here).
            on_switch: Called with the switch's ``MULTI`` transaction to queue more commands
                that must commit with it (the incremental refresh state).
            on_published: Called with the number of events each publication batch published
                (progress; the events are published after the switch, ``event_batch`` a call).

        Returns:
            Per segment: the new size and who joined and left.

        Raises:
            SegmentationError: Another live refresh held the lock for longer than ``lock_wait``,
                or this refresh lost the lock before the switch (nothing switched).
        """
        if not memberships:
            return {}
        r = self.client
        moment = now or _dt.datetime.now(_dt.UTC)
        stamp = moment.isoformat()
        gen = f"{moment.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        if lock is None:
            with self.refresh_lock() as held:
                return self.store_many(
                    memberships,
                    now=now,
                    on_written=on_written,
                    groups=groups,
                    lock=held,
                    on_switch=on_switch,
                    on_published=on_published,
                )
        # A refresh killed after its switch left events to publish: they go first, in order.
        self.publish_pending(on_published)
        names = list(memberships)
        mark = self._events_mark(r)  # a real-time change after it: the deltas are redone
        current = self._pointers("current", names)
        previous = self._pointers("previous", names)
        entries: dict[str, HistoryEntry] = {}
        results: dict[str, RefreshResult] = {}
        for done, name in enumerate(names):
            entries[name], results[name] = self._write(gen, name, memberships[name], current)
            self._write_groups(gen, name, (groups or {}).get(name) or {})
            self._keep_alive(gen, names[:done])  # written earlier: must not expire first
            if on_written is not None:
                on_written(name)
        self._switch(lock, gen, entries, current, stamp, results, mark, moment, on_switch)
        self._drop_old(previous, current)  # what they name was published at the start
        self.publish_pending(on_published)  # bounded batches: Redis is never held for long
        return {
            n: RefreshResult(n, res.size, res.joined, res.left, stamp) for n, res in results.items()
        }

    def _pointers(self, which: str, names: list[str]) -> dict[str, str | None]:
        values = self._get(self.client.hmget(f"{self.prefix}:{which}", names))
        return {n: _text(g) for n, g in zip(names, values, strict=True)}

    def _write(
        self, gen: str, name: str, members: Sequence[str], current: Mapping[str, str | None]
    ) -> tuple[HistoryEntry, RefreshResult]:
        new = self.generation_key(gen, "members", name)
        old = self._key_in(current[name], "members", name)
        with self.client.pipeline(transaction=False) as pipe:
            for i in range(0, len(members), self.chunk):
                pipe.sadd(new, *members[i : i + self.chunk])
            pipe.expire(new, _UNSWITCHED_TTL)  # a killed refresh leaves nothing for long
            pipe.execute()
        joined, left = self._store_deltas(gen, name, old)
        entry = HistoryEntry("", len(set(members)), len(joined), len(left))
        return entry, RefreshResult(name, entry.size, joined, left, "")

    def _store_deltas(self, gen: str, name: str, old: str) -> tuple[list[str], list[str]]:
        """Store the joined/left SETs of ``name`` in ``gen`` against the SET ``old``, and their
        copies the events are published from; returns them, sorted.

        Computed in bounded steps (``SSCAN`` of one set, ``SMISMEMBER`` against the other,
        ``SADD`` of the difference: :attr:`chunk` members a command), never with one
        ``SDIFFSTORE``/``SUNIONSTORE`` over a whole set: at 10,000,000 customers such a command
        held Redis for seconds (every online read waited) and starved the refresh lock's
        heartbeat. Both sets are stable meanwhile (the new generation is this refresh's; a
        real-time change to the old one moves the events mark and the deltas are redone).
        """
        new, joined_key, left_key = (self.generation_key(gen, k, name) for k in _KINDS[:3])
        copies = {k: self.generation_key(gen, copy, name) for k, copy in _PENDING.items()}
        joined = self._difference(new, old, (joined_key, copies["joined"]))
        left = self._difference(old, new, (left_key, copies["left"]))
        return _s(joined), _s(left)

    def _difference(self, source: str, other: str, targets: Sequence[str]) -> list[bytes]:
        """Members of ``source`` not in ``other``, stored (replaced) in each of ``targets``."""
        client, found = self.client, []
        with client.pipeline(transaction=False) as pipe:
            for target in targets:
                pipe.delete(target)
            pipe.execute()
        cursor: Any = 0
        while True:
            reply: Any = client.sscan(source, cursor, count=self.chunk)
            cursor, batch = reply
            if batch:
                flags: Any = client.smismember(other, batch)
                missing = [m for m, there in zip(batch, flags, strict=True) if not there]
                if missing:
                    found.extend(missing)
                    with client.pipeline(transaction=False) as pipe:
                        for target in targets:
                            pipe.sadd(target, *missing)
                            pipe.expire(target, _UNSWITCHED_TTL)
                        pipe.execute()
            if int(cursor) == 0:
                break
        # SSCAN may return a member twice (a rehash mid-scan): a set, as SDIFFSTORE's was.
        return list(dict.fromkeys(found))

    def _write_groups(self, gen: str, name: str, groups: Mapping[str, str]) -> None:
        """The generation's ``member -> group`` HASH (members whose group is not ``target``)."""
        untargeted = [(m, g) for m, g in groups.items() if g != "target"]
        if not untargeted:
            return
        key = self.generation_key(gen, "groups", name)
        with self.client.pipeline(transaction=False) as pipe:
            for i in range(0, len(untargeted), self.chunk):
                pipe.hset(key, mapping=dict(untargeted[i : i + self.chunk]))
            pipe.expire(key, _UNSWITCHED_TTL)  # a killed refresh leaves nothing for long
            pipe.execute()

    def _keep_alive(self, gen: str, names: Sequence[str]) -> None:
        if names:
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    for kind in _KINDS:
                        pipe.expire(self.generation_key(gen, kind, name), _UNSWITCHED_TTL)
                pipe.execute()

    def _check_written(self, tx: Any, gen: str, entries: Mapping[str, HistoryEntry]) -> None:
        """Every new set is still complete (none expired during a very long refresh)."""
        for name, entry in entries.items():
            if int(tx.scard(self.generation_key(gen, "members", name))) != entry.size:
                raise SegmentationError(
                    f"the new members of segment {name!r} expired before the switch (one "
                    f"segment took more than {_UNSWITCHED_TTL} s to write); nothing was switched",
                    "Run the refresh again; refresh fewer segments at a time",
                )

    def _switch(
        self,
        lock: RedisLock,
        gen: str,
        entries: Mapping[str, HistoryEntry],
        current: Mapping[str, str | None],
        stamp: str,
        results: dict[str, RefreshResult] | None = None,
        mark: str | None = None,
        moment: _dt.datetime | None = None,
        on_switch: Callable[[Any], None] | None = None,
    ) -> None:
        from redis.exceptions import WatchError

        for _ in range(20):  # the lock's heartbeat touches the watched key now and then
            with self.client.pipeline(transaction=True) as tx:
                try:
                    # The stream too: a real-time change before EXEC makes the deltas stale.
                    tx.watch(lock.key, self.events_key())
                    holder = _text(tx.get(lock.key))
                    if holder != lock.value:
                        how = (
                            f"it expired: its heartbeat could not renew it for {lock.ttl:.0f} s"
                            if holder is None
                            else "another refresh took it over"
                        )
                        raise SegmentationError(
                            f"the membership refresh lost its lock before switching ({how}); "
                            "nothing was switched",
                            "Run the refresh again; if it expired, check the load on this host "
                            "and on Redis (a refresh starved of CPU cannot renew its lock)",
                        )
                    self._check_written(tx, gen, entries)
                    seen = self._events_mark(tx) if results is not None else mark
                    if seen != mark:
                        # Real-time changes since the deltas were computed: compute them again,
                        # outside the WATCH (the heartbeat touches the lock meanwhile), then
                        # check once more (a change during the redo: redone again).
                        tx.unwatch()
                        entries = self._redo_deltas(gen, entries, results or {}, current)
                        mark = seen
                        continue
                    tx.multi()
                    self._queue_switch(tx, gen, entries, current, stamp)
                    if results is not None:
                        self._queue_events(tx, gen, entries, current, moment)
                    if on_switch is not None:
                        on_switch(tx)
                    tx.execute()
                    return
                except WatchError:
                    continue
        raise SegmentationError(
            "the membership refresh could not switch generations (its lock kept changing)",
            "Run the refresh again",
        )

    def _queue_switch(
        self,
        tx: Any,
        gen: str,
        entries: Mapping[str, HistoryEntry],
        current: Mapping[str, str | None],
        stamp: str,
    ) -> None:
        tx.hset(f"{self.prefix}:current", mapping=dict.fromkeys(entries, gen))
        had = {n: g for n, g in current.items() if g}
        if had:
            tx.hset(f"{self.prefix}:previous", mapping=had)
        if len(had) < len(entries):
            tx.hdel(f"{self.prefix}:previous", *(n for n in entries if n not in had))
        for name, entry in entries.items():
            for kind in _KINDS:
                tx.persist(self.generation_key(gen, kind, name))
            tx.delete(*(self.key(k, name) for k in ("members", "previous", "joined", "left")))
            history = self.key("history", name)
            record = HistoryEntry(stamp, entry.size, entry.joined, entry.left)
            tx.lpush(history, json.dumps(asdict(record)))
            tx.ltrim(history, 0, self.history_limit - 1)

    def _events_mark(self, client: Any) -> str | None:
        """The newest event's id: it changes with every published membership change."""
        last = client.xrevrange(self.events_key(), count=1)
        return _text(last[0][0]) if last else None

    def _redo_deltas(
        self,
        gen: str,
        entries: Mapping[str, HistoryEntry],
        results: dict[str, RefreshResult],
        current: Mapping[str, str | None],
    ) -> dict[str, HistoryEntry]:
        """Recompute joined/left against the current sets (real-time updates changed them)."""
        redone: dict[str, HistoryEntry] = {}
        for name, entry in entries.items():
            old = self._key_in(current[name], "members", name)
            joined, left = self._store_deltas(gen, name, old)
            redone[name] = HistoryEntry(entry.timestamp, entry.size, len(joined), len(left))
            results[name] = RefreshResult(name, entry.size, joined, left, "")
        return redone

    def _queue_events(
        self,
        tx: Any,
        gen: str,
        entries: Mapping[str, HistoryEntry],
        current: Mapping[str, str | None],
        moment: _dt.datetime | None,
    ) -> None:
        """Record the switch's ``joined``/``left`` events as pending (published after the switch
        by :meth:`publish_pending` from the copies of the delta sets; a joiner's group from the
        new generation, a leaver's from the old), in the order of the events: per segment, joined
        then left. O(1) per segment: the switch's ``MULTI`` stays short."""
        at = to_iso(moment or _dt.datetime.now(_dt.UTC))
        for i, (name, entry) in enumerate(entries.items()):
            kinds = (
                ("joined", entry.joined, self.generation_key(gen, "groups", name)),
                ("left", entry.left, self._key_in(current.get(name), "groups", name)),
            )
            for order, (kind, count, groups) in enumerate(kinds):
                if count:
                    ids = self.generation_key(gen, _PENDING[kind], name)
                    pending = PendingEvents(kind, name, ids, groups, at)
                    queue_pending(tx, self.pending_key(), f"{gen}:{i:06d}:{order}", pending)

    def _drop_old(
        self, previous: Mapping[str, str | None], current: Mapping[str, str | None]
    ) -> None:
        """Delete the generations two refreshes old (no pointer names them any more)."""
        stale = [
            self.generation_key(g, kind, n)
            for n, g in previous.items()
            if g and g != current.get(n)
            for kind in _KINDS
        ]
        if stale:
            self.client.unlink(*stale)  # freed in the background: a large set never holds Redis

    # --- reading --------------------------------------------------------------------------
    @staticmethod
    def _get(reply: Any) -> Any:
        """A reply of the synchronous client (redis-py's stubs also allow Awaitables)."""
        return reply

    def is_member(self, segment: str, customer_id: str) -> bool:
        """Whether the customer is a *targeted* member as of the last refresh (O(1)): eligible,
        and neither in the segment's holdout nor in the global control group."""
        group = self.group_of(segment, customer_id)
        return group is not None and group not in UNTARGETED_GROUPS

    def group_of(self, segment: str, customer_id: str) -> str | None:
        """The customer's group in the segment as of the last refresh (``None``: not a member)."""
        generation = self.generation(segment)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.sismember(self._key_in(generation, "members", segment), customer_id)
            if generation is not None:
                pipe.hget(self.generation_key(generation, "groups", segment), customer_id)
            found, *group = pipe.execute()
        if not found:
            return None
        return (_text(group[0]) if group else None) or "target"

    def groups_of(self, segment: str, customer_ids: Sequence[str]) -> dict[str, str]:
        """The group of each given customer who is a member as of the last refresh."""
        ids = [str(c) for c in customer_ids]
        if not ids:
            return {}
        generation = self.generation(segment)
        found: list[Any] = []
        named: list[Any] = []
        for i in range(0, len(ids), self.chunk):
            part = ids[i : i + self.chunk]
            with self.client.pipeline(transaction=False) as pipe:
                pipe.smismember(self._key_in(generation, "members", segment), part)
                if generation is not None:
                    pipe.hmget(self.generation_key(generation, "groups", segment), part)
                replies = pipe.execute()
            found.extend(replies[0])
            named.extend(replies[1] if len(replies) > 1 else [None] * len(part))
        return {
            cid: _text(g) or "target" for cid, ok, g in zip(ids, found, named, strict=True) if ok
        }

    def members(self, segment: str) -> list[str]:
        """The members as of the last refresh, sorted."""
        return _s(self._get(self.client.smembers(self._resolve("members", segment))))

    def size(self, segment: str) -> int:
        """The number of members as of the last refresh."""
        return int(self._get(self.client.scard(self._resolve("members", segment))))

    def joined(self, segment: str) -> list[str]:
        """Customers who joined at the last refresh, sorted."""
        return _s(self._get(self.client.smembers(self._resolve("joined", segment))))

    def left(self, segment: str) -> list[str]:
        """Customers who left at the last refresh, sorted."""
        return _s(self._get(self.client.smembers(self._resolve("left", segment))))

    def history(self, segment: str, limit: int | None = None) -> list[HistoryEntry]:
        """The segment's refreshes, newest first."""
        end = -1 if limit is None else max(limit, 1) - 1
        raw = self._get(self.client.lrange(self.key("history", segment), 0, end))
        return [HistoryEntry(**json.loads(x)) for x in raw]

    def delete(self, segment: str) -> None:
        """Forget a segment's memberships, deltas and history (every generation of it)."""
        r = self.client
        gens = {_text(r.hget(f"{self.prefix}:{p}", segment)) for p in ("current", "previous")}
        keys = [self.generation_key(g, k, segment) for g in gens if g for k in _KINDS]
        keys += [self.key(k, segment) for k in ("members", "previous", "joined", "left", "history")]
        with r.pipeline(transaction=True) as tx:
            tx.hdel(f"{self.prefix}:current", segment)
            tx.hdel(f"{self.prefix}:previous", segment)
            tx.hdel(f"{self.prefix}:refresh-state", segment)  # its next refresh is full
            tx.delete(*keys)
            tx.execute()
