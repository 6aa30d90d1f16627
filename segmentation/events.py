"""The membership event stream: who joined or left which segment, when, in which group.

Every change of a stored membership is published once to one Redis Stream per project, the key
:meth:`~segmentation.memberships.MembershipStore.events_key` (``segmentation:<project>:events``,
with the same hash tag as the other membership keys on a cluster). Its entries are flat string
fields (pins: ``event``, ``segment``, ``customer_id``, ``group``, ``time``):

* ``event``: ``joined`` or ``left``;
* ``segment``: the segment's name;
* ``customer_id``: the customer;
* ``group``: the customer's group in the segment (``target``, ``holdout``, an arm's name,
  ``global_control``); for ``left``, the group they had;
* ``time``: when the change was stored (ISO 8601, UTC, ``Z``).

Who publishes: the real-time update (:mod:`segmentation.realtime`) and the incremental refresh
in the transaction that changes the customer's sets; the batch refresh
(:meth:`MembershipStore.store_many`) right *after* the ``MULTI``/``EXEC`` that switches the
generation. That switch records its deltas as pending (:func:`queue_pending`: an entry in the
HASH :meth:`MembershipStore.pending_key` naming a copy of each delta SET, written with the delta
sets before the switch); the same refresh then publishes them in batches of
:data:`EVENTS_BATCH` (:func:`publish_pending`: one short script per batch removes the ids from
the pending SET and adds their events, atomically), so Redis is never held for long, whatever
the refresh's size (a first refresh of millions of members).

Exactly once: an event is in the stream only when its change is stored (a refresh killed before
its switch publishes nothing), and each pending id is removed in the script that publishes it. A
refresh killed between batches leaves the rest pending: the next refresh (full or incremental)
publishes it before it computes anything new, in the same order, with the switch's time; a
real-time update of a customer with a pending event publishes that event first, in its own
transaction. A change is never published twice (the next refresh compares with the sets as they
are, real-time changes included). Until then a consumer sees the stored change's events later than
the change (the memberships themselves switched at once).

The stream is capped at about :data:`EVENTS_MAXLEN` entries (``XADD ... MAXLEN ~``): consumers
that fall further behind than that lose the oldest events (the memberships themselves are intact;
resynchronise from ``segmentation members --stored``).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from segmentation.errors import SegmentationError
from xiva_source.timeutil import parse_iso, to_iso

__all__ = [
    "EVENTS_BATCH",
    "EVENTS_MAXLEN",
    "JOINED",
    "LEFT",
    "MembershipEvent",
    "PendingEvents",
    "pending_entries",
    "publish_batch",
    "publish_pending",
    "queue_events",
    "queue_pending",
    "read_events",
    "stream_id",
]

EVENTS_MAXLEN = 1_000_000
"""About how many events the stream keeps (``XADD MAXLEN ~``; Redis trims whole nodes, so a few
more may stay). One event takes about 80 bytes in Redis: the cap bounds the stream near 80 MB."""

JOINED: Literal["joined"] = "joined"
LEFT: Literal["left"] = "left"
_FIELDS = ("event", "segment", "customer_id", "group", "time")
_PAGE = 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class MembershipEvent:
    """One membership change.

    Attributes:
        event: ``joined`` or ``left``.
        segment: The segment.
        customer_id: The customer.
        group: The customer's group in the segment (for ``left``: the group they had).
        time: When the change was stored, ISO 8601 UTC (``2026-11-25T15:00:00Z``).
        id: The stream entry id (``<ms>-<seq>``) of an event read back; ``None`` before it is
            published.
    """

    event: str
    segment: str
    customer_id: str
    group: str
    time: str
    id: str | None = None

    @classmethod
    def at(
        cls, event: str, segment: str, customer_id: str, group: str | None, moment: _dt.datetime
    ) -> MembershipEvent:
        """An event at ``moment`` (any timezone; stored in UTC); a missing group is ``target``."""
        return cls(event, segment, customer_id, group or "target", to_iso(moment))

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (without the id)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def as_dict(self) -> dict[str, str | None]:
        """The fields and the id, for JSON output."""
        return asdict(self)

    @classmethod
    def from_entry(cls, entry_id: Any, fields: Any) -> MembershipEvent:
        """An event from an ``XRANGE``/``XREADGROUP`` entry (bytes or str)."""
        values = {_text(k): _text(v) for k, v in dict(fields).items()}
        event, segment, customer_id, group, time = (values.get(name, "") for name in _FIELDS)
        return cls(event, segment, customer_id, group, time, _text(entry_id))


def queue_events(
    pipe: Any,
    key: str,
    events: Iterable[MembershipEvent],
    *,
    maxlen: int | None = EVENTS_MAXLEN,
) -> int:
    """Queue an ``XADD`` per event on ``pipe`` (a ``MULTI`` transaction or a pipeline).

    Queued in the transaction that stores the change, the events commit with it or not at all.

    Args:
        pipe: A redis-py pipeline (``transaction=True`` for exactly-once publication).
        key: The stream (:meth:`MembershipStore.events_key`).
        events: The events, in order.
        maxlen: The approximate cap (``MAXLEN ~``); ``None``: no cap.

    Returns:
        The number of events queued.
    """
    n = 0
    for event in events:
        if maxlen is None:
            pipe.xadd(key, event.fields())
        else:
            pipe.xadd(key, event.fields(), maxlen=maxlen, approximate=True)
        n += 1
    return n


EVENTS_BATCH = 5_000
"""Events per publication script call (:func:`publish_pending`): bounds how long one call holds
Redis (a few milliseconds), whatever the refresh's size."""

# One batch of a pending publication: removes each given id from the pending SET and XADDs its
# event when (and only when) it was still there, atomically (a script is never half-run). So a
# publisher killed between batches left exactly the unpublished ids in the SET, and two publishers
# never publish one id twice. The pending entry is dropped from the HASH with its last id.
# KEYS: stream, pending ids (SET), groups (HASH), pending entries (HASH).
# ARGV: entry field, event, segment, time, maxlen ('' = none), ids...
_PUBLISH = """
local n = 0
for i = 6, #ARGV do
  local id = ARGV[i]
  if redis.call('SREM', KEYS[2], id) == 1 then
    local group = redis.call('HGET', KEYS[3], id)
    if not group then group = 'target' end
    if ARGV[5] == '' then
      redis.call('XADD', KEYS[1], '*', 'event', ARGV[2], 'segment', ARGV[3],
                 'customer_id', id, 'group', group, 'time', ARGV[4])
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[2],
                 'segment', ARGV[3], 'customer_id', id, 'group', group, 'time', ARGV[4])
    end
    n = n + 1
  end
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('HDEL', KEYS[4], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class PendingEvents:
    """Events stored but not published yet: one ``event`` per member of the SET ``ids``.

    Recorded in the transaction that stores the change (:func:`queue_pending`), published after
    it in bounded batches (:func:`publish_pending`).

    Attributes:
        event: ``joined`` or ``left``.
        segment: The segment.
        ids: The SET of the customers still to publish (a copy of the delta set: members are
            removed as they are published).
        groups: The HASH ``member -> group`` the groups are read from (absent: ``target``).
        time: The events' time (ISO 8601 UTC: the switch's).
    """

    event: str
    segment: str
    ids: str
    groups: str
    time: str

    def to_json(self) -> str:
        """The pending HASH's value."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: Any) -> PendingEvents:
        """From the pending HASH's value."""
        return cls(**json.loads(_text(raw)))


def queue_pending(pipe: Any, pending: str, field: str, entry: PendingEvents) -> None:
    """Queue, in the storing transaction, ``entry`` in the HASH ``pending`` under ``field``
    (fields sort in publication order). ``entry.ids`` is a copy of the delta SET written before
    (O(1) here: the transaction stays short). Every key must be in one slot on a cluster."""
    pipe.hset(pending, field, entry.to_json())


def pending_entries(client: Any, pending: str) -> list[tuple[str, PendingEvents]]:
    """The pending entries, in publication order (by field)."""
    raw: Any = client.hgetall(pending)
    return sorted((str(_text(k)), PendingEvents.from_json(v)) for k, v in raw.items())


def publish_batch(
    client: Any,
    stream: str,
    pending: str,
    field: str,
    entry: PendingEvents,
    ids: Sequence[str],
    *,
    maxlen: int | None = EVENTS_MAXLEN,
) -> int:
    """Publish the events of ``ids`` still pending in ``entry`` (one script call, atomic);
    ``client`` may be a ``MULTI`` transaction (the call is then queued). Returns the number
    published (on a transaction: the pipeline)."""
    keys = [stream, entry.ids, entry.groups, pending]
    args = [field, entry.event, entry.segment, entry.time, "" if maxlen is None else str(maxlen)]
    # EVAL with the source, not EVALSHA: a cluster pipeline refuses EVALSHA, and a script not
    # loaded yet could not be loaded inside a MULTI (Redis caches it by its digest anyway).
    reply: Any = client.execute_command("EVAL", _PUBLISH, len(keys), *keys, *args, *ids)
    return int(reply) if isinstance(reply, int) else 0


def publish_pending(
    client: Any,
    stream: str,
    pending: str,
    *,
    batch: int = EVENTS_BATCH,
    maxlen: int | None = EVENTS_MAXLEN,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Publish every pending entry's events, oldest entry first, ids sorted, ``batch`` per call.

    Exactly once: each call removes the ids it publishes from the entry's SET in the same script,
    so after a crash the next call publishes exactly what is left, in the same order.

    Args:
        client: The Redis client.
        stream: The event stream.
        pending: The HASH of pending entries.
        batch: Events per script call.
        maxlen: The stream's approximate cap; ``None``: none.
        on_batch: Called with the number of events each call published (progress).

    Returns:
        The number of events published.
    """
    total = 0
    for field, entry in pending_entries(client, pending):
        ids = sorted(str(_text(m)) for m in client.sscan_iter(entry.ids, count=10_000))
        if not ids:
            client.hdel(pending, field)  # nothing left (published by a real-time update)
            continue
        for start in range(0, len(ids), max(batch, 1)):
            part = ids[start : start + max(batch, 1)]
            n = publish_batch(client, stream, pending, field, entry, part, maxlen=maxlen)
            total += n
            if on_batch is not None:
                on_batch(n)
    return total


def stream_id(since: str | _dt.datetime) -> str:
    """The stream position of ``since``: an entry id as is, a time as ``<epoch ms>-0``.

    Raises:
        SegmentationError: ``since`` is neither an entry id (``1732540000000-0``) nor an ISO 8601
            time.
    """
    if isinstance(since, _dt.datetime):
        return f"{int(since.timestamp() * 1000)}-0"
    text = since.strip()
    head, _, seq = text.partition("-")
    if head.isdigit() and (seq == "" or seq.isdigit()) and len(head) >= 10:
        return text
    try:
        moment = parse_iso(text)
    except ValueError as e:
        raise SegmentationError(
            f"{since!r} is neither a stream entry id nor an ISO 8601 time",
            "give an entry id (1732540000000-0) or a time (2026-11-25T15:00:00Z)",
        ) from e
    return stream_id(moment)


def _entries(client: Any, key: str, start: str, *, reverse: bool) -> Iterator[tuple[Any, Any]]:
    """The entries from ``start`` (exclusive when an entry id was returned), paged."""
    cursor = start
    inclusive = True
    while True:
        bound = cursor if inclusive else f"({cursor}"
        if reverse:
            page: Any = client.xrevrange(key, max=bound, min="-", count=_PAGE)
        else:
            page = client.xrange(key, min=bound, max="+", count=_PAGE)
        if not page:
            return
        yield from page
        if len(page) < _PAGE:
            return
        cursor, inclusive = _text(page[-1][0]), False


def read_events(
    client: Any,
    key: str,
    *,
    since: str | _dt.datetime | None = None,
    count: int | None = None,
    segment: str | None = None,
    customer_id: str | None = None,
) -> list[MembershipEvent]:
    """Events of the stream, oldest first.

    Args:
        client: The Redis client (``redis.Redis`` or ``RedisCluster``).
        key: The stream (:meth:`MembershipStore.events_key`).
        since: Events after this entry id (exclusive: pass the last id you saw), or from this
            time (inclusive); ``None``: the newest ``count`` events (all when ``count`` is None).
        count: At most this many events (after the filters).
        segment: Only this segment's events.
        customer_id: Only this customer's events.

    Returns:
        The events with their stream ids, in stream order.
    """
    if count is not None and count <= 0:
        return []

    def wanted(event: MembershipEvent) -> bool:
        return (segment is None or event.segment == segment) and (
            customer_id is None or event.customer_id == customer_id
        )

    out: list[MembershipEvent] = []
    if since is None:
        entries = _entries(client, key, "+", reverse=True)
    else:
        start = stream_id(since)
        is_id = not isinstance(since, _dt.datetime) and start == since.strip()
        entries = _entries(client, key, f"({start}" if is_id else start, reverse=False)
    for entry_id, fields in entries:
        event = MembershipEvent.from_entry(entry_id, fields)
        if wanted(event):
            out.append(event)
            if count is not None and len(out) >= count:
                break
    return out[::-1] if since is None else out
