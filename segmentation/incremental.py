"""Segment refreshes that cost the changes: :meth:`SegmentEngine.refresh`'s two paths.

Per segment (evaluated outside the project's refresh lock, stored under it, as the full refresh
always was: a slow evaluation never holds the lock):

1. **Plan.** Full when asked (``full=True``, ``segmentation refresh --full``), when the segment
   was never refreshed (or not since incremental refreshes exist), when its definition changed
   (its fingerprint: the rules of it and of the segments it references, holdout, splits, salt,
   the global control fraction, its staleness limits), when the clock went back, when time's
   effect on its rules cannot be analysed, when a value it reads may have gone stale
   (:mod:`segmentation.time_flips`), or when more customers changed than ``incremental_limit``.
   The result's ``reason`` says which; it is logged.
2. **Full** segments: the whole population, streamed, as always (one generation switch for all,
   :meth:`MembershipStore.store_many`); the same pass records the stored dates of every customer
   (the time index) and each view's oldest fresh timestamp. Their new refresh state (journal
   cursor read *before* the population, ``now``, fingerprint) commits in the switch.
3. **Incremental** segments: the candidates are the customers marked in the journal since the
   segments' cursor, plus those whose stored dates are in the windows time may have flipped.
   Candidates whose key no longer exists are out of the population (they leave every segment, as
   a full refresh's ``SCAN`` would not find them). The others are read (pipelined ``HMGET``) and
   evaluated; the deltas against the stored sets are applied in place in one ``MULTI``/``EXEC``
   that ``WATCH``es the lock, the generation pointers and the event stream (a real-time update in
   between: the deltas are computed again): ``SADD``/``SREM`` of the members, the joiners' groups,
   the generation's ``joined``/``left`` sets replaced, one history entry per segment, the
   ``joined``/``left`` events (in the full path's order: per segment, joined ids sorted, then left
   ids sorted; a joiner's group computed as the full path does, a leaver's the stored one) and the
   new refresh state. A refresh killed before the ``EXEC`` changed nothing (the cursor did not
   move: the next one reads the same marks); after it, everything is published once.

Known limit: a customer whose Redis key *expires* (``key_ttl_seconds``) without any write is
noticed by the next full refresh, or as soon as its values go stale (a full refresh of the
segments reading the view).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from segmentation.dependencies import required
from segmentation.errors import SegmentationError
from segmentation.events import JOINED, LEFT, MembershipEvent, queue_events
from segmentation.groups import TARGET
from segmentation.journal import Journal, SegmentState
from segmentation.memberships import HistoryEntry, RefreshResult
from segmentation.reader import FACT_COLUMN, STAMP_COLUMN
from segmentation.segment import evaluate_frame
from segmentation.served import queue_pending, serve_pending, served_done
from segmentation.time_flips import (
    RuleAnalysis,
    TimeIndex,
    analyse,
    fact_windows,
    fresh_floors,
    goes_stale,
)
from xiva_source.timeutil import as_utc, parse_iso, to_iso

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine
    from xiva_source.locking import RedisLock

__all__ = ["INCREMENTAL_LIMIT", "fingerprint", "refresh_segments"]

_log = logging.getLogger(__name__)

INCREMENTAL_LIMIT = 200_000
"""More changed customers than this since a segment's last refresh: it is refreshed in full
(reading them one by one would cost about as much as the population's ``SCAN``)."""

_ATTEMPTS = 20


def fingerprint(engine: SegmentEngine, name: str) -> str:
    """What a segment's memberships depend on besides the data (a change means a full refresh)."""
    segs = required([name], engine.segments)
    views = sorted({engine.reader.feature(f).view for s in segs for f in s.features})
    data = {
        "segments": [s.to_dict() for s in segs],
        "global_control": engine.global_control,
        "max_age": {v: engine.reader.max_age.get(v) for v in views},
    }
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class _Plan:
    moment: _dt.datetime
    fingerprints: dict[str, str]
    states: dict[str, SegmentState | None]
    full: dict[str, str | None] = field(default_factory=dict)  # segment -> reason
    incremental: list[str] = field(default_factory=list)
    analyses: dict[str, RuleAnalysis] = field(default_factory=dict)


def _views(engine: SegmentEngine, name: str) -> list[str]:
    segs = required([name], engine.segments)
    return sorted({engine.reader.feature(f).view for s in segs for f in s.features})


def _plan(
    engine: SegmentEngine,
    names: list[str],
    moment: _dt.datetime,
    full: bool,
    journal: Journal,
) -> _Plan:
    store = engine.memberships
    pointers: Any = store.client.hmget(f"{store.prefix}:current", names)
    plan = _Plan(moment, {n: fingerprint(engine, n) for n in names}, journal.states(names))
    for name, pointer in zip(names, pointers, strict=True):
        state = plan.states[name]
        reason: str | None = None
        if full:
            reason = None  # asked for: not a fallback
        elif pointer is None:
            reason = "first refresh"
        elif state is None:
            reason = "no incremental state yet (first refresh since incremental refreshes)"
        elif state.fingerprint != plan.fingerprints[name]:
            reason = "its definition changed"
        elif moment < parse_iso(state.now):
            reason = f"the clock went back (last refresh as of {state.now})"
        else:
            analysis = analyse(required([name], engine.segments))
            plan.analyses[name] = analysis
            if analysis.reason is not None:
                reason = f"time's effect on its rules cannot be analysed: {analysis.reason}"
            for view in _views(engine, name):
                limit = engine.reader.max_age.get(view)
                if reason is None and goes_stale(state.floors.get(view), limit, moment):
                    reason = f"values of view {view!r} may have gone stale since the last refresh"
        if full or reason is not None:
            plan.full[name] = reason
            if reason is not None:
                _log.info("segment %s: full refresh (%s)", name, reason)
        else:
            plan.incremental.append(name)
    return plan


def refresh_segments(
    engine: SegmentEngine,
    names: Sequence[str],
    *,
    now: _dt.datetime | None = None,
    full: bool = False,
    incremental_limit: int = INCREMENTAL_LIMIT,
) -> dict[str, RefreshResult]:
    """Refresh ``names`` (see the module docstring); the engine's :meth:`refresh` calls it."""
    from xiva_source.features.derived import derivation_now

    names = list(dict.fromkeys(names))
    for name in names:
        engine.segment(name)  # unknown names refused before any work
    moment = as_utc(now) if now is not None else derivation_now()
    store = engine.memberships
    serve_pending(engine, now=moment)  # what a refresh killed while serving left to write
    journal = Journal(store.client, engine.project, store.prefix)
    results: dict[str, RefreshResult] = {}
    plan = _plan(engine, names, moment, full, journal)
    cursor = journal.sequence()  # before any read: marks up to it are covered
    changed: list[str] | None = []
    if plan.incremental:
        after = min(s.cursor for n in plan.incremental if (s := plan.states[n]) is not None)
        too_many = journal.count(after) > incremental_limit
        if not too_many:
            cursor, changed = journal.take(after)
        if too_many or changed is None:
            reason = (
                f"more than {incremental_limit} customers changed"
                if too_many
                else "the journal was full: changes were not all recorded"
            )
            _log.info("segments %s: full refresh (%s)", ", ".join(plan.incremental), reason)
            plan.full.update(dict.fromkeys(plan.incremental, reason))
            plan.incremental = []
            changed = []
            cursor = journal.sequence()
    if plan.full:
        results.update(_full(engine, plan, list(plan.full), cursor, journal))
    if plan.incremental:
        results.update(_incremental(engine, plan, cursor, changed or [], journal))
    journal.trim()
    return {n: results[n] for n in names}


# --- full -----------------------------------------------------------------------------------
def _evaluate(
    engine: SegmentEngine,
    names: Sequence[str],
    ids: Sequence[str] | None,
    index: TimeIndex,
    moment: _dt.datetime,
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Each segment's eligible customers among ``ids`` (``None``: everyone), chunk by chunk,
    recording each chunk's dates in the time index; with the views' oldest fresh timestamps."""
    needed = required(names, engine.segments)
    found: dict[str, list[str]] = {n: [] for n in names}
    floors: dict[str, float] = {}
    for frame in engine.frames(ids, now=moment, times=True):
        masks = evaluate_frame(needed, frame)
        for name, out in found.items():
            out.extend(masks.index[masks[name].to_numpy(dtype=bool)].tolist())
        _index_chunk(engine, index, frame, floors, moment)
    return found, floors


def _index_chunk(
    engine: SegmentEngine, index: TimeIndex, frame: Any, floors: dict[str, float], moment: Any
) -> None:
    """Record a chunk's stored dates, and lower the views' oldest fresh timestamps."""
    ids = [str(c) for c in frame.index]
    facts = {
        c[len(FACT_COLUMN) :]: frame[c].to_numpy()
        for c in frame.columns
        if isinstance(c, str) and c.startswith(FACT_COLUMN)
    }
    index.update(facts, ids)
    stamps = {
        c[len(STAMP_COLUMN) :]: c
        for c in frame.columns
        if isinstance(c, str) and c.startswith(STAMP_COLUMN)
    }
    for view, oldest in fresh_floors(frame, stamps, moment, engine.reader.max_age).items():
        floors[view] = min(floors.get(view, oldest), oldest)


def _states(
    engine: SegmentEngine,
    plan: _Plan,
    names: Sequence[str],
    cursor: int,
    floors: Mapping[str, float],
) -> dict[str, SegmentState]:
    return {
        n: SegmentState(
            cursor,
            to_iso(plan.moment),
            plan.fingerprints[n],
            {v: floors[v] for v in _views(engine, n) if v in floors},
        )
        for n in names
    }


def _full(
    engine: SegmentEngine,
    plan: _Plan,
    names: list[str],
    cursor: int,
    journal: Journal,
) -> dict[str, RefreshResult]:
    store = engine.memberships
    index = TimeIndex(store.client, store.prefix)
    found, floors = _evaluate(engine, names, None, index, plan.moment)
    for ids in found.values():
        ids.sort()
    groups = {n: engine._untargeted_groups(n, ids) for n, ids in found.items()}
    states = _states(engine, plan, names, cursor, floors)
    tokens: list[str] = []

    def on_switch(tx: Any) -> None:
        journal.queue_states(tx, states)
        # Every member and leaver to serve: recorded with the switch, removed once written.
        tokens.append(queue_pending(tx, store, None))

    results = store.store_many(found, now=plan.moment, groups=groups, on_switch=on_switch)
    engine._serve(results, found, plan.moment)
    for token in tokens:
        served_done(store, token)
    return {n: replace(r, mode="full", reason=plan.full.get(n)) for n, r in results.items()}


# --- incremental ----------------------------------------------------------------------------
def _candidates(
    engine: SegmentEngine, plan: _Plan, changed: Sequence[str], index: TimeIndex
) -> list[str]:
    out = set(changed)
    d1 = plan.moment.date()
    for name in plan.incremental:
        state = plan.states[name]
        assert state is not None
        d0 = as_utc(parse_iso(state.now)).date()
        out |= index.find(fact_windows(plan.analyses[name], d0, d1))
    return sorted(out)


def _exists(engine: SegmentEngine, ids: Sequence[str]) -> list[bool]:
    found: list[bool] = []
    client = engine.reader.client
    for start in range(0, len(ids), engine.reader.batch_size):
        part = ids[start : start + engine.reader.batch_size]
        with client.pipeline(transaction=False) as pipe:
            for cid in part:
                pipe.exists(engine.reader.key(cid))
            found.extend(bool(x) for x in pipe.execute())
    return found


def _incremental(
    engine: SegmentEngine,
    plan: _Plan,
    cursor: int,
    changed: Sequence[str],
    journal: Journal,
) -> dict[str, RefreshResult]:
    store = engine.memberships
    index = TimeIndex(store.client, store.prefix)
    names = plan.incremental
    candidates = _candidates(engine, plan, changed, index)
    exists = _exists(engine, candidates)
    present = [c for c, ok in zip(candidates, exists, strict=True) if ok]
    absent = [c for c, ok in zip(candidates, exists, strict=True) if not ok]
    if absent:
        index.update({fact: [None] * len(absent) for fact in index.facts()}, absent)
    members, floors = _evaluate(engine, names, present, index, plan.moment)
    eligible = {n: set(ids) for n, ids in members.items()}
    states = {}
    for name in names:
        state = plan.states[name]
        assert state is not None
        merged = dict(state.floors)
        for view in _views(engine, name):
            if view in floors:
                merged[view] = min(merged.get(view, floors[view]), floors[view])
        states[name] = SegmentState(cursor, to_iso(plan.moment), plan.fingerprints[name], merged)
    with engine.memberships.refresh_lock() as lock:
        store.publish_pending()  # a killed full refresh's events first, in order
        tokens: list[str] = []
        results = _store_deltas(engine, lock, plan, candidates, eligible, states, journal, tokens)
    served = sorted({c for r in results.values() for c in (*r.joined, *r.left)})
    if served:
        _serve(engine, served, plan.moment)
    for token in tokens:
        served_done(store, token)
    return results


def _serve(engine: SegmentEngine, ids: list[str], moment: _dt.datetime) -> None:
    from segmentation.served import ServedMemberships

    served = ServedMemberships.of(engine)
    if served is not None:
        served.sync(engine.memberships, engine.segments, ids, now=moment)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class _Delta:
    name: str
    gen: str
    size: int
    joined: list[str]
    left: list[str]
    joined_groups: dict[str, str]
    left_groups: dict[str, str]


def _deltas(
    engine: SegmentEngine,
    gens: Mapping[str, str],
    candidates: list[str],
    eligible: Mapping[str, set[str]],
) -> list[_Delta]:
    """Per segment, the changes among ``candidates`` against the stored sets (read now)."""
    store = engine.memberships
    out: list[_Delta] = []
    for name, gen in gens.items():
        members_key = store.generation_key(gen, "members", name)
        groups_key = store.generation_key(gen, "groups", name)
        stored: list[Any] = []
        old_groups: list[Any] = []
        size = 0
        chunk = store.chunk
        with store.client.pipeline(transaction=False) as pipe:
            pipe.scard(members_key)
            for start in range(0, len(candidates), chunk):
                part = candidates[start : start + chunk]
                pipe.smismember(members_key, part)
                pipe.hmget(groups_key, part)
            size, *replies = pipe.execute()
        for i in range(0, len(replies), 2):
            stored.extend(replies[i])
            old_groups.extend(replies[i + 1])
        now_in = eligible[name]
        joined = [c for c, was in zip(candidates, stored, strict=True) if c in now_in and not was]
        left_pairs = [
            (c, _text(g) or TARGET)
            for c, was, g in zip(candidates, stored, old_groups, strict=True)
            if was and c not in now_in
        ]
        seg = engine.segment(name)
        groups: Any = seg.groups(joined, global_control=engine.global_control) if joined else []
        out.append(
            _Delta(
                name,
                gen,
                int(size) + len(joined) - len(left_pairs),
                joined,
                [c for c, _ in left_pairs],
                {c: str(g) for c, g in zip(joined, groups, strict=True)},
                dict(left_pairs),
            )
        )
    return out


def _queue(
    engine: SegmentEngine, tx: Any, deltas: list[_Delta], moment: _dt.datetime, stamp: str
) -> None:
    store = engine.memberships
    events: list[MembershipEvent] = []
    for d in deltas:
        members = store.generation_key(d.gen, "members", d.name)
        groups = store.generation_key(d.gen, "groups", d.name)
        joined_key = store.generation_key(d.gen, "joined", d.name)
        left_key = store.generation_key(d.gen, "left", d.name)
        tx.delete(joined_key, left_key)
        if d.joined:
            tx.sadd(members, *d.joined)
            tx.sadd(joined_key, *d.joined)
            untargeted = {c: g for c, g in d.joined_groups.items() if g != TARGET}
            if untargeted:
                tx.hset(groups, mapping=untargeted)
        if d.left:
            tx.srem(members, *d.left)
            tx.sadd(left_key, *d.left)
            tx.hdel(groups, *d.left)
        history = store.key("history", d.name)
        record = HistoryEntry(stamp, d.size, len(d.joined), len(d.left))
        tx.lpush(history, json.dumps(asdict(record)))
        tx.ltrim(history, 0, store.history_limit - 1)
        events += [
            MembershipEvent.at(JOINED, d.name, c, d.joined_groups[c], moment)
            for c in sorted(d.joined)
        ]
        events += [
            MembershipEvent.at(LEFT, d.name, c, d.left_groups[c], moment) for c in sorted(d.left)
        ]
    queue_events(tx, store.events_key(), events)


def _store_deltas(
    engine: SegmentEngine,
    lock: RedisLock,
    plan: _Plan,
    candidates: list[str],
    eligible: Mapping[str, set[str]],
    states: Mapping[str, SegmentState],
    journal: Journal,
    tokens: list[str],
) -> dict[str, RefreshResult]:
    from redis.exceptions import WatchError

    store = engine.memberships
    names = plan.incremental
    current_key = f"{store.prefix}:current"
    stamp = plan.moment.isoformat()
    for _ in range(_ATTEMPTS):
        with store.client.pipeline(transaction=True) as tx:
            try:
                tx.watch(lock.key, current_key, store.events_key())
                if _text(tx.get(lock.key)) != lock.value:
                    raise SegmentationError(
                        "the membership refresh lost its lock before storing (another refresh "
                        "took it over); nothing was stored",
                        "Run the refresh again",
                    )
                raw: Any = tx.hmget(current_key, names)
                pointers = [_text(g) for g in raw]
                if any(g is None for g in pointers):
                    raise SegmentationError(
                        "a segment's memberships were deleted during the refresh; nothing was "
                        "stored",
                        "Run the refresh again",
                    )
                gens = {n: str(g) for n, g in zip(names, pointers, strict=True)}
                deltas = _deltas(engine, gens, candidates, eligible)  # guarded by the WATCH
                tx.multi()
                _queue(engine, tx, deltas, plan.moment, stamp)
                journal.queue_states(tx, states)
                changed = {c for d in deltas for c in (*d.joined, *d.left)}
                token = queue_pending(tx, store, changed) if changed else None
                tx.execute()
                if token is not None:
                    tokens.append(token)
            except WatchError:
                continue
        return {
            d.name: RefreshResult(
                d.name,
                d.size,
                sorted(d.joined),
                sorted(d.left),
                stamp,
                mode="incremental",
                evaluated=len(candidates),
            )
            for d in deltas
        }
    raise SegmentationError(
        "the incremental refresh could not store its changes (the memberships kept changing)",
        "Run the refresh again",
    )
