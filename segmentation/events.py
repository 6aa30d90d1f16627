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

Who publishes: the batch refresh (:meth:`MembershipStore.store_many`) in the ``MULTI``/``EXEC``
that switches the generation (:func:`queue_delta_events`: made in Redis from the delta sets), and
the real-time update
(:mod:`segmentation.realtime`) in the transaction that changes the customer's sets. An event is
therefore in the stream exactly when its change is stored: a refresh killed before its switch
publishes nothing, and a change is never published twice (the next refresh compares with the sets
as they are, real-time changes included).

The stream is capped at about :data:`EVENTS_MAXLEN` entries (``XADD ... MAXLEN ~``): consumers
that fall further behind than that lose the oldest events (the memberships themselves are intact;
resynchronise from ``segmentation members --stored``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from segmentation.errors import SegmentationError
from xiva_source.timeutil import parse_iso, to_iso

__all__ = [
    "EVENTS_MAXLEN",
    "JOINED",
    "LEFT",
    "MembershipEvent",
    "queue_delta_events",
    "queue_events",
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


# One refresh's events of one segment, made in Redis from the delta sets it stored: queued in the
# switch's MULTI/EXEC as one command, however many changes (a long client-side queue would let the
# refresh lock's heartbeat invalidate the WATCHed switch). Sorted ids: a deterministic order.
_DELTA_EVENTS = """
local function publish(ids, event, groups)
  table.sort(ids)
  for _, id in ipairs(ids) do
    local group = redis.call('HGET', groups, id)
    if not group then group = 'target' end
    if ARGV[3] == '' then
      redis.call('XADD', KEYS[1], '*', 'event', event, 'segment', ARGV[1],
                 'customer_id', id, 'group', group, 'time', ARGV[2])
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'event', event,
                 'segment', ARGV[1], 'customer_id', id, 'group', group, 'time', ARGV[2])
    end
  end
  return #ids
end
local n = publish(redis.call('SMEMBERS', KEYS[2]), 'joined', KEYS[4])
return n + publish(redis.call('SMEMBERS', KEYS[3]), 'left', KEYS[5])
"""


def queue_delta_events(
    pipe: Any,
    client: Any,
    key: str,
    *,
    segment: str,
    joined: str,
    left: str,
    joined_groups: str,
    left_groups: str,
    moment: _dt.datetime,
    maxlen: int | None = EVENTS_MAXLEN,
) -> None:
    """Queue, as one scripted command, a ``joined`` event per member of the set ``joined`` and a
    ``left`` per member of ``left`` (the batch refresh's deltas of ``segment``).

    A member's group is read from the hash ``joined_groups`` (the new generation's) or
    ``left_groups`` (the old one's), ``target`` when absent. Every key must be in one slot on a
    cluster (the memberships' hash tag).

    Args:
        pipe: The switch's ``MULTI`` transaction.
        client: The Redis client (unused: the script is sent with ``EVAL``).
        key: The stream.
        segment: The segment.
        joined: The SET of who joined.
        left: The SET of who left.
        joined_groups: The HASH of the joiners' groups.
        left_groups: The HASH of the leavers' groups.
        moment: The events' time.
        maxlen: The approximate cap; ``None``: none.
    """
    del client  # kept for callers: EVAL needs no registered script
    keys = [key, joined, left, joined_groups, left_groups]
    args = [segment, to_iso(moment), "" if maxlen is None else str(maxlen)]
    # EVAL with the source, not EVALSHA: a cluster pipeline refuses EVALSHA, and a script not
    # loaded yet could not be loaded inside the MULTI.
    pipe.execute_command("EVAL", _DELTA_EVENTS, len(keys), *keys, *args)


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
