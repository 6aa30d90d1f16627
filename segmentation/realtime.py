"""Real-time membership: one customer's segments re-evaluated now, stored and published at once.

When a customer's features change between two batch refreshes (``xiva-source refresh <id>``, or a
Feast ``store.push``), :func:`update_customer` re-reads that customer's online features (one
``HMGET``), evaluates every segment per row in dependency order (a ``{"segment": name}`` reference
reads the customer's eligibility in ``name``), compares with the stored memberships and, in one
``MULTI``/``EXEC``:

* adds the customer to / removes it from each changed segment's current member set, and sets or
  removes its group there;
* publishes one ``joined`` / ``left`` event per change (:mod:`segmentation.events`).

The transaction ``WATCH``es the generation pointers (``<p>:current``) and the event stream: a batch
refresh switching generations, or another real-time update publishing, in between makes it start
again from a fresh read of the stored state. So each change is stored and published exactly once:
the next batch refresh compares with the sets as they are (this customer's change included) and
finds nothing new for it, and a batch switch that races it recomputes its deltas (see
:meth:`MembershipStore.store_many`).

Only segments that were refreshed at least once (that have a generation) are updated: a segment
never refreshed has no memberships to keep consistent yet.

After the transaction the customer's served memberships (the ``customer_segments`` feature view,
:mod:`segmentation.served`) are rewritten, so ``get_online_features`` sees the change too.
"""

from __future__ import annotations

import datetime as _dt
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segmentation.dependencies import evaluation_order
from segmentation.errors import SegmentationError
from segmentation.events import (
    JOINED,
    LEFT,
    MembershipEvent,
    pending_entries,
    publish_batch,
    queue_events,
)
from segmentation.groups import TARGET, UNTARGETED_GROUPS

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine

__all__ = ["CustomerUpdate", "evaluate_customer", "update_customer", "update_customers"]

_ATTEMPTS = 50
_SERVED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""Each engine's served-memberships writer (built once per engine)."""


@dataclass(frozen=True)
class CustomerUpdate:
    """What a real-time update found and stored for one customer.

    Attributes:
        customer_id: The customer.
        groups: Segment -> the customer's group, for each segment it is eligible for now.
        events: The ``joined``/``left`` events published (empty: nothing changed).
        skipped: Segments not updated because they were never refreshed.
    """

    customer_id: str
    groups: dict[str, str]
    events: list[MembershipEvent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def segments(self) -> list[str]:
        """The segments the customer is targeted in now (eligible, not held out)."""
        return [name for name, group in self.groups.items() if group not in UNTARGETED_GROUPS]


def evaluate_customer(
    engine: SegmentEngine,
    customer_id: str,
    *,
    now: _dt.datetime | None = None,
    global_control: float | None = None,
) -> dict[str, str]:
    """The segments one customer is eligible for now, with its group in each.

    One ``HMGET`` of the customer's features, then each segment per row in dependency order
    (the same semantics as the batch's vectorized evaluation).

    Args:
        engine: The engine (segments, reader).
        customer_id: The customer.
        now: Reference time for staleness and the features that age.
        global_control: ``SEGMENTS_GLOBAL_CONTROL`` (default: the engine's).

    Returns:
        Segment -> group, for the segments the customer is eligible for, in evaluation order.
    """
    gc = engine.global_control if global_control is None else global_control
    row = engine.reader.read_one(customer_id, engine.features, now=now)
    eligible: dict[str, bool] = {}
    out: dict[str, str] = {}
    for seg in evaluation_order(engine.segments.values()):
        refs = {name: eligible[name] for name in seg.references}
        ok = seg.matches(row, refs)
        eligible[seg.name] = ok
        if ok:
            out[seg.name] = seg.group_of(customer_id, global_control=gc)
    return out


def update_customer(
    engine: SegmentEngine,
    customer_id: str,
    *,
    now: _dt.datetime | None = None,
    global_control: float | None = None,
    serve: bool = True,
) -> CustomerUpdate:
    """Re-evaluate one customer now, store its memberships and publish the changes.

    Args:
        engine: The engine (segments, reader, memberships).
        customer_id: The customer whose features just changed.
        now: The moment (staleness reference and the events' time; default: now, UTC).
        global_control: ``SEGMENTS_GLOBAL_CONTROL`` (default: the engine's).
        serve: Also rewrite the customer's ``customer_segments`` row in the online store (when the
            repository defines that view).

    Returns:
        The customer's groups now and the events published.

    Raises:
        SegmentationError: The stored memberships kept changing under the update (more than 50
            concurrent changes in a row); nothing was stored.
    """
    from redis.exceptions import WatchError

    moment = now or _dt.datetime.now(_dt.UTC)
    groups = evaluate_customer(engine, customer_id, now=moment, global_control=global_control)
    store = engine.memberships
    names = list(engine.segments)
    current_key = f"{store.prefix}:current"
    for _ in range(_ATTEMPTS):
        with store.client.pipeline(transaction=True) as tx:
            try:
                tx.watch(current_key, store.events_key())
                pointers: Any = tx.hmget(current_key, names)
                gens = [_text(g) for g in pointers]
                live = [(n, g) for n, g in zip(names, gens, strict=True) if g]
                # Read after WATCH (on another connection, one round trip): still guarded.
                was, old_groups = _stored_state(store, live, customer_id)
                events: list[MembershipEvent] = []
                writes: list[tuple[str, str, str | None, str | None]] = []
                for (name, gen), member, old in zip(live, was, old_groups, strict=True):
                    new = groups.get(name)
                    if new is not None and not member:
                        events.append(MembershipEvent.at(JOINED, name, customer_id, new, moment))
                    elif new is None and member:
                        events.append(MembershipEvent.at(LEFT, name, customer_id, old, moment))
                    # Only a non-target group is stored (absent: target), as the batch does.
                    if (new is not None) != member or (new is not None and new != (old or TARGET)):
                        writes.append((name, gen, new, old))
                if not writes:
                    tx.unwatch()
                else:
                    # A batch switch's events still being published: this customer's go first
                    # (before its group changes and before its new events), once.
                    pending = pending_entries(store.client, store.pending_key())
                    tx.multi()
                    for entry_field, entry in pending:
                        publish_batch(
                            tx,
                            store.events_key(),
                            store.pending_key(),
                            entry_field,
                            entry,
                            [customer_id],
                        )
                    for name, gen, new, _old in writes:
                        members = store.generation_key(gen, "members", name)
                        group_key = store.generation_key(gen, "groups", name)
                        if new is None:
                            tx.srem(members, customer_id)
                        else:
                            tx.sadd(members, customer_id)
                        if new is None or new == TARGET:
                            tx.hdel(group_key, customer_id)
                        else:
                            tx.hset(group_key, customer_id, new)
                    queue_events(tx, store.events_key(), events)
                    tx.execute()
            except WatchError:
                continue
        skipped = [n for n, g in zip(names, gens, strict=True) if not g]
        update = CustomerUpdate(customer_id, groups, events, skipped)
        if serve:
            _serve(engine, customer_id, moment)
        return update
    raise SegmentationError(
        f"the memberships of customer {customer_id!r} kept changing during the real-time update "
        f"({_ATTEMPTS} attempts); nothing was stored",
        "Retry the update; the next batch refresh also brings the customer up to date",
    )


def _stored_state(
    store: Any, live: list[tuple[str, str]], customer_id: str
) -> tuple[list[bool], list[str | None]]:
    """Per live segment: whether the customer is a stored member, and its stored group."""
    if not live:
        return [], []
    with store.client.pipeline(transaction=False) as pipe:
        for name, gen in live:
            pipe.sismember(store.generation_key(gen, "members", name), customer_id)
            pipe.hget(store.generation_key(gen, "groups", name), customer_id)
        replies = pipe.execute()
    return [bool(x) for x in replies[0::2]], [_text(x) for x in replies[1::2]]


def update_customers(
    engine: SegmentEngine,
    customer_ids: Iterable[str],
    *,
    now: _dt.datetime | None = None,
    global_control: float | None = None,
    serve: bool = True,
) -> dict[str, CustomerUpdate]:
    """:func:`update_customer` for each customer (e.g. after a Feast ``store.push`` of them).

    Example:
        >>> store.push("customer_push", frame)  # doctest: +SKIP
        >>> update_customers(SegmentEngine(store), frame["customer_id"])  # doctest: +SKIP
    """
    return {
        cid: update_customer(engine, cid, now=now, global_control=global_control, serve=serve)
        for cid in dict.fromkeys(str(c) for c in customer_ids)
    }


def _serve(engine: SegmentEngine, customer_id: str, moment: _dt.datetime) -> None:
    """The customer's served row, from the stored state (what the next read of it sees)."""
    from segmentation.served import ServedMemberships

    if engine not in _SERVED:
        _SERVED[engine] = ServedMemberships.of(engine)
    served = _SERVED[engine]
    if served is not None:
        served.sync(engine.memberships, engine.segments, [customer_id], now=moment)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
