"""Memberships served with the features: the ``customer_segments`` feature view.

The repository defines a feature view ``customer_segments`` (``feature_repo/features.py``, no
batch source: nothing materializes it) with two features per customer:

* ``segments`` (``Array(String)``): the segments the customer is *targeted* in (eligible and not
  held out: its group is neither ``holdout`` nor ``global_control``), in the engine's order;
* ``segment_groups`` (``Array(String)``): ``"<segment>:<group>"`` for every segment the customer
  is eligible for, held-out ones included (``gold_vip:holdout``, ``spring_promo:B``).

This module writes them into Feast's own Redis layout (keys, fields and encodings from
:mod:`xiva_source.feast_plugin.redis_format`), beside the customer's other features, so one call
serves both::

    store.get_online_features(
        features=["customer_features:customer_tier", "customer_segments:segments"],
        entity_rows=[{"customer_id": "C00042"}],
    )

What is written is the stored membership state (:class:`~segmentation.memberships.MembershipStore`,
current generation of each segment), read back for the customers concerned: after a batch refresh
every member of a refreshed segment and everyone who left one (a customer who left every segment
gets ``[]``), after a real-time update that customer. A customer never in any segment has no
value (``None``). Only the key of a customer that has features is written (``EXISTS``, then
``HSET``): a customer whose features expired is not brought back.

**A refresh killed while writing them loses nothing.** The lists are written after the switch (at
10,000,000 customers a full refresh writes them for over an hour), and the switch already moved
the journal's cursor: the next incremental refresh would re-serve only the customers changed
since. So the switch records, in its own ``MULTI``, what it leaves to serve
(:func:`queue_pending`: ``<p>:serve-pending``, one field per refresh: ``*`` for every member and
leaver of the current generations, or the ids); the refresh removes its field once written
(:func:`served_done`), and the next refresh writes whatever a killed one left
(:func:`serve_pending`) before anything else. A record does not say whether its refresh is still
writing: a refresh started meanwhile writes those lists too (the same values, from the same stored
state; the cost of the lists once more), never fewer.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from segmentation.groups import UNTARGETED_GROUPS
from xiva_source.feast_plugin.redis_format import (
    encode_string_list,
    encode_timestamp,
    field_name,
    timestamp_field,
)

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine
    from segmentation.memberships import MembershipStore
    from xiva_source.feast_plugin.redis_format import RedisLayout

__all__ = [
    "GROUPS_FEATURE",
    "SEGMENTS_FEATURE",
    "SEGMENTS_VIEW",
    "ServedMemberships",
    "queue_pending",
    "serve_pending",
    "served_done",
    "served_lists",
]

SEGMENTS_VIEW = "customer_segments"
"""The feature view serving memberships (``feature_repo/features.py``)."""
SEGMENTS_FEATURE = "segments"
"""Its ``Array(String)`` of the segments a customer is targeted in."""
GROUPS_FEATURE = "segment_groups"
"""Its ``Array(String)`` of ``segment:group`` for every segment a customer is eligible for."""

_CHUNK = 10_000


def served_lists(groups: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(segments, segment_groups)`` of one customer's ``segment -> group``."""
    targeted = [name for name, group in groups.items() if group not in UNTARGETED_GROUPS]
    return targeted, [f"{name}:{group}" for name, group in groups.items()]


class ServedMemberships:
    """Writes memberships into the ``customer_segments`` view's online rows.

    Args:
        client: The online store's Redis client.
        layout: The project's key layout.
        view: The view's stored name (versioned when online versioning is on).
    """

    def __init__(self, client: Any, layout: RedisLayout, view: str = SEGMENTS_VIEW) -> None:
        self.client = client
        self.layout = layout
        self.view = view
        self._fields = (
            field_name(view, SEGMENTS_FEATURE),
            field_name(view, GROUPS_FEATURE),
            timestamp_field(view),
        )

    @classmethod
    def of(cls, engine: SegmentEngine) -> ServedMemberships | None:
        """The writer of ``engine``'s repository; ``None`` when it defines no such view."""
        view = engine.reader.segments_view
        if view is None:
            return None
        return cls(engine.reader.client, engine.reader.layout, view)

    def write(
        self, groups: Mapping[str, Mapping[str, str]], *, now: _dt.datetime | None = None
    ) -> int:
        """Write each customer's served memberships.

        Args:
            groups: Customer -> (segment -> group) of the segments it is eligible for (an empty
                mapping: in no segment, written as ``[]``).
            now: The rows' event timestamp (default: now).

        Returns:
            The customers written (those with an online key).
        """
        seconds = now.timestamp() if now is not None else time.time()
        ts = encode_timestamp(seconds)
        seg_field, groups_field, ts_field = self._fields
        written = 0
        items = list(groups.items())
        for i in range(0, len(items), _CHUNK):
            part = items[i : i + _CHUNK]
            keys = [self.layout.key(cid) for cid, _ in part]
            # Only customers with features (their key exists): an expired one is not brought
            # back. (A key expiring between the two round trips would be: harmless, rare.)
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(key)
                present = pipe.execute()
            with self.client.pipeline(transaction=False) as pipe:
                for key, (_cid, mapping), there in zip(keys, part, present, strict=True):
                    if not there:
                        continue
                    targeted, pairs = served_lists(mapping)
                    values = {
                        seg_field: encode_string_list(targeted),
                        groups_field: encode_string_list(pairs),
                        ts_field: ts,
                    }
                    pipe.hset(key, mapping=values)  # type: ignore[arg-type]
                    written += 1
                pipe.execute()
        return written

    def sync(
        self,
        memberships: MembershipStore,
        segments: Iterable[str],
        customer_ids: Iterable[str],
        *,
        now: _dt.datetime | None = None,
    ) -> int:
        """Write ``customer_ids``' served memberships from the stored state of ``segments``.

        Args:
            memberships: The stored memberships.
            segments: Every segment of the engine (a segment never refreshed counts as none).
            customer_ids: The customers to write.
            now: The rows' event timestamp.

        Returns:
            The customers written.
        """
        names = list(segments)
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return 0
        client = memberships.client
        pointers: Any = client.hmget(f"{memberships.prefix}:current", names)
        gens = [_text(g) for g in pointers]
        live = [(n, g) for n, g in zip(names, gens, strict=True) if g]
        written = 0
        for i in range(0, len(ids), _CHUNK):
            part = ids[i : i + _CHUNK]
            with client.pipeline(transaction=False) as pipe:
                for name, gen in live:
                    pipe.smismember(memberships.generation_key(gen, "members", name), part)
                    pipe.hmget(memberships.generation_key(gen, "groups", name), part)
                replies = pipe.execute()
            rows: dict[str, dict[str, str]] = {cid: {} for cid in part}
            for j, (name, _gen) in enumerate(live):
                flags, groups = replies[2 * j], replies[2 * j + 1]
                for cid, flag, group in zip(part, flags, groups, strict=True):
                    if flag:
                        rows[cid][name] = _text(group) or "target"
            written += self.write(rows, now=now)
        return written


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


ALL = "*"
"""A pending record naming every member and leaver of the current generations (a full refresh)."""


def _pending_key(memberships: MembershipStore) -> str:
    return f"{memberships.prefix}:serve-pending"


def queue_pending(tx: Any, memberships: MembershipStore, ids: Iterable[str] | None) -> str:
    """Queue, in a switch's ``MULTI``, the record of the served lists the switch leaves to write.

    Args:
        tx: The switch's transaction.
        memberships: The stored memberships.
        ids: The customers to serve; ``None``: every member and leaver of the current generations.

    Returns:
        The record's token, for :func:`served_done`.
    """
    token = uuid.uuid4().hex
    tx.hset(_pending_key(memberships), token, ALL if ids is None else json.dumps(sorted(ids)))
    return token


def served_done(memberships: MembershipStore, token: str) -> None:
    """Remove a refresh's record once its served lists are written."""
    memberships.client.hdel(_pending_key(memberships), token)


def serve_pending(engine: SegmentEngine, *, now: _dt.datetime | None = None) -> int:
    """Write the served lists that killed refreshes left pending (under the refresh lock).

    Returns:
        The customers written (0 when nothing was pending).
    """
    memberships = engine.memberships
    key = _pending_key(memberships)
    records: Any = memberships.client.hgetall(key)
    if not records:
        return 0
    served = ServedMemberships.of(engine)
    names = list(engine.segments)
    written = 0
    with memberships.refresh_lock():
        ids: set[str] = set()
        for raw in records.values():
            value = raw.decode() if isinstance(raw, bytes) else raw
            if value == ALL:
                ids |= _current_members_and_leavers(memberships, names)
            else:
                ids |= set(json.loads(value))
        if served is not None and ids:
            written = served.sync(memberships, names, sorted(ids), now=now)
        memberships.client.hdel(key, *records.keys())
    return written


def _current_members_and_leavers(memberships: MembershipStore, names: list[str]) -> set[str]:
    client = memberships.client
    pointers: Any = client.hmget(f"{memberships.prefix}:current", names)
    out: set[str] = set()
    for name, gen in zip(names, (_text(g) for g in pointers), strict=True):
        if gen:
            for kind in ("members", "left"):
                key = memberships.generation_key(gen, kind, name)
                out.update(_text(m) or "" for m in client.sscan_iter(key, count=_CHUNK))
    out.discard("")
    return out
