"""Online expiry measured from the last successful run, at a cost that follows the run interval.

Feast's Redis store expires a whole entity hash ``key_ttl_seconds`` after its last write. An
incremental run rewrites only the customers that changed, so without this step an unchanged customer
would vanish ``ttl`` after it last *changed*, although every run since confirmed its values.

Resetting every key's expiry after every run costs the whole population each run (7 us per key:
7 s at 1,000,000 customers, 70 s at 10,000,000). Instead a *sweep* walks the keys with one
``SCAN`` cursor spread over runs (:func:`sweep_online_expiry`; the cursor lives in the run state,
:class:`~xiva_source.feast_plugin.run_state.ExpirySweep`), resetting a slice of keys per run
sized so that a whole cycle takes about ``ttl / SWEEP_SHARE`` of wall time at the observed run
interval (:func:`slice_size`, at least :data:`MIN_SLICE` keys). The writers reset the expiry of
every key they write (the bulk writer's Lua script, Feast's writer). So while runs succeed, every
key is reset at least once per cycle and never expires; when runs stop, a key vanishes between
``ttl - ttl / SWEEP_SHARE`` and ``ttl`` after the last successful run (exactly ``ttl`` after
it when a run sweeps the whole population: small stores, or runs farther apart than a cycle).
Keys without any expiry (Feast's writer without ``key_ttl_seconds``, older versions) get one when
the sweep passes. A run costs the changes plus a slice of about ``population * interval /
(ttl / SWEEP_SHARE)`` keys: at 1,000,000 customers, a 15-minute interval and a 1-day ttl,
about 42,000 keys (0.3 s).

When a cycle completes, every key that existed throughout it was reset at or after the cycle's
beginning: that moment becomes ``covered_since``, from which the online marker's expiry counts
(the marker never outlives a key). A run that rewrote every customer (a full run) starts the
sweep over with ``covered_since`` at its beginning.

**Departed customers expire.** A key the last full reads did not write is no longer extended: the
run state records when each view's last full read began (``full:<view>``: ``--full``, a reload, a
``feast materialize`` that read the view from the beginning, recorded when the job carries on from
it); for a set of join keys, ``F`` is the earliest of those over the project's online views with
these join keys. A key written at or after ``F`` expires at ``F + ttl`` or later (every writer
resets the expiry of what it writes), and so does a key the sweep extended at or after ``F``. So the
sweep extends a key only if it expires at ``F + ttl - SLACK`` or later (:data:`EXPIRY_SLACK`, one
Lua script per batch reading ``PTTL``); by induction a key no write touched since ``F`` is never
extended after ``F``: a customer gone from every source before the last full reads expires ``ttl``
after its last write, while every customer they wrote keeps being extended, and one that comes back
is written, hence extended again. The comparison uses the job's clock and ``PTTL`` (a duration), so
Redis's clock does not matter. Without a full read recorded for every such view (a store loaded by
an older version), every key is extended as before: departed customers then go only when runs stop,
or with a wipe. A key without any expiry (a writer without ``key_ttl_seconds``) is given one, as
before.

Which keys belong to the project is Feast's layout (:mod:`xiva_source.feast_plugin.redis_format`),
found by the house's one ``SCAN`` (:mod:`xiva_source.feast_plugin.redis_scan`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.feast_plugin.run_state import ExpirySweep

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.feast_plugin.run_state import RunState, StateSnapshot
    from xiva_source.redis_client import RedisClient

__all__ = [
    "EXPIRY_PIPELINE_SIZE",
    "EXPIRY_SLACK",
    "MIN_SLICE",
    "SWEEP_SHARE",
    "SweepResult",
    "extend_online_expiry",
    "full_reads_since",
    "restart_store_sweeps",
    "slice_size",
    "sweep_online_expiry",
    "sweep_store_expiry",
]

logger = logging.getLogger(__name__)

EXPIRY_PIPELINE_SIZE = 5_000
"""EXPIRE commands sent to Redis per round trip (and keys asked of each SCAN step)."""

_EXPIRE_ALL = (
    "local n = 0 for i = 1, #KEYS do n = n + redis.call('EXPIRE', KEYS[i], ARGV[1]) end return n"
)

# ARGV[1]: the ttl (s); ARGV[2]: the least remaining life (ms) a key needs to be extended. A key
# without expiry (PTTL -1) gets one; a missing key (-2) is skipped.
_EXPIRE_WRITTEN = (
    "local n = 0 local least = tonumber(ARGV[2]) for i = 1, #KEYS do "
    "local left = redis.call('PTTL', KEYS[i]) "
    "if left == -1 or left >= least then n = n + redis.call('EXPIRE', KEYS[i], ARGV[1]) end "
    "end return n"
)

EXPIRY_SLACK = timedelta(seconds=1)
"""How much earlier than ``F + ttl`` a key may expire and still be extended (``F``: the last full
reads' start). It covers the time between the sweep computing a batch's threshold and Redis
running its ``PTTL`` (a round trip, a batch of 5,000 keys at 7 us, Redis busy with other
clients): a key written by the full reads must never look unwritten (it would expire although
its customer is present). The price: a customer last written less than this before ``F`` is
treated as written by the full reads (it goes after the next one); runs are seconds apart at
least (start-up, the lock)."""


def extend_online_expiry(client: RedisClient, layout: RedisLayout, ttl_seconds: int) -> int:
    """Reset the expiry of every entity key of ``layout`` (one project, one entity) to the ttl.

    Keys are found with ``SCAN`` and checked against the exact layout, so a project whose name
    ends with this one's is not touched.

    Args:
        client: The online store's Redis.
        layout: The project's key layout for one set of join keys
            (``RedisLayout.of(store.config, ["customer_id"])``).
        ttl_seconds: The new expiry; ``0`` or less does nothing.

    Returns:
        How many keys got the new expiry.

    Raises:
        OnlineStoreError: Redis could not be reached or refused a command.
    """
    from redis.exceptions import RedisError

    from xiva_source.feast_plugin.redis_scan import scan_entity_keys

    if ttl_seconds <= 0:
        return 0
    try:
        expire = _batch_expirer(client, ttl_seconds)
        extended = 0
        batch: list[bytes] = []
        # No de-duplication: a key SCAN returns twice just gets the same EXPIRE twice, and the set
        # of seen keys would grow with the population.
        for key in scan_entity_keys(client, layout, count=EXPIRY_PIPELINE_SIZE, unique=False):
            batch.append(key)
            if len(batch) >= EXPIRY_PIPELINE_SIZE:
                extended += expire(batch)
                batch = []
        if batch:
            extended += expire(batch)
    except RedisError as e:
        raise OnlineStoreError.failed(e, step="extending the online expiry") from e
    return extended


SWEEP_SHARE = 4
"""A sweep cycle is sized to take at most ``ttl / SWEEP_SHARE`` of wall time."""

MIN_SLICE = 10_000
"""Keys a run's sweep resets at least (about 70 ms): small stores are swept whole each run."""


def slice_size(population: int, interval: float | None, ttl_seconds: int) -> int:
    """How many keys a run's sweep resets so that a cycle takes about ``ttl / SWEEP_SHARE``.

    Args:
        population: An upper bound of the keys to walk (``DBSIZE``).
        interval: Seconds since the sweep last ran; ``None`` (never): the whole population.
        ttl_seconds: The online expiry.

    Returns:
        At least :data:`MIN_SLICE`; the whole population when runs are a cycle apart or more.

    Example:
        >>> slice_size(1_000_000, 900, 86_400)  # every 15 minutes, a 1-day expiry
        41667
        >>> slice_size(1_000_000, None, 86_400)
        1000000
    """
    cycle = max(ttl_seconds, 1) / SWEEP_SHARE
    if interval is None or interval >= cycle:
        return max(population, MIN_SLICE)
    return max(MIN_SLICE, math.ceil(population * max(interval, 0.0) / cycle))


@dataclass(frozen=True)
class SweepResult:
    """What one run's sweep did over one layout's keys."""

    extended: int
    """Keys whose expiry was reset."""
    limit: int
    """The slice the run was given (keys)."""
    completed: bool
    """The run finished a cycle (every key was reset since ``sweep.covered_since``)."""
    sweep: ExpirySweep
    """Where the sweep stands now (to store)."""


def sweep_online_expiry(
    client: RedisClient,
    layout: RedisLayout,
    ttl_seconds: int,
    sweep: ExpirySweep | None,
    *,
    now: datetime,
    limit: int | None = None,
    full_since: datetime | None = None,
) -> SweepResult:
    """Reset the expiry of the next slice of ``layout``'s keys, resuming ``sweep``'s cursor.

    With ``full_since`` (the start of the last full reads, :func:`full_reads_since`), a key that
    expires before ``full_since + ttl - EXPIRY_SLACK`` is left alone: no write since then touched
    it, so it belongs to a customer gone from every source (the module docstring).

    Args:
        client: The online store's Redis (on a cluster every primary is walked in turn).
        layout: The project's key layout for one set of join keys.
        ttl_seconds: The online expiry (above 0).
        sweep: Where the sweep stands (``None``: never run; a new cycle begins).
        now: This run's clock (the start of a new cycle, the interval since the last run).
        limit: Keys to reset at least (default :func:`slice_size` from ``DBSIZE`` and the interval
            since the sweep last ran).
        full_since: When the last full reads of every view of these keys began; ``None`` (not
            known): every key is extended.

    Returns:
        What was done, and the sweep to store.

    Raises:
        OnlineStoreError: Redis could not be reached or refused a command.
    """
    from redis.exceptions import RedisError

    from xiva_source.feast_plugin.redis_scan import primary_clients, scan_slice

    try:
        nodes = primary_clients(client)
        if sweep is None or sweep.fresh or sweep.nodes != len(nodes) or sweep.node >= len(nodes):
            covered = sweep.covered_since if sweep is not None else None
            swept = sweep.swept_at if sweep is not None else None
            sweep = ExpirySweep(
                nodes=len(nodes), cycle_began=now, covered_since=covered, swept_at=swept
            )
        if limit is None:
            interval = (now - sweep.swept_at).total_seconds() if sweep.swept_at else None
            limit = slice_size(int(client.dbsize()), interval, ttl_seconds)  # type: ignore[arg-type]
        deadline = (
            full_since + timedelta(seconds=ttl_seconds) - EXPIRY_SLACK if full_since else None
        )
        expire = _batch_expirer(client, ttl_seconds, deadline, now)
        node, cursor, walked, extended = sweep.node, sweep.cursor, 0, 0
        completed = False
        while walked < limit:
            want = min(EXPIRY_PIPELINE_SIZE, limit - walked)
            cursor, keys = scan_slice(nodes[node], layout, cursor, limit=want, count=want)
            walked += len(keys)
            for at in range(0, len(keys), EXPIRY_PIPELINE_SIZE):
                extended += expire(keys[at : at + EXPIRY_PIPELINE_SIZE])
            if cursor == 0:
                node += 1
                if node >= len(nodes):
                    completed = True
                    break
    except RedisError as e:
        raise OnlineStoreError.failed(e, step="extending the online expiry") from e
    if completed:
        after = ExpirySweep(nodes=len(nodes), covered_since=sweep.cycle_began, swept_at=now)
    else:
        after = ExpirySweep(
            node=node,
            nodes=len(nodes),
            cursor=cursor,
            cycle_began=sweep.cycle_began,
            covered_since=sweep.covered_since,
            swept_at=now,
        )
    return SweepResult(extended=extended, limit=limit, completed=completed, sweep=after)


def sweep_store_expiry(
    store: FeatureStore,
    client: RedisClient | None,
    ttl_seconds: int | None,
    views: Sequence[FeatureView],
    state: RunState,
    snapshot: StateSnapshot,
    *,
    now: datetime,
) -> tuple[int, datetime | None]:
    """One run's sweep slice over the entity keys of ``views`` (:func:`sweep_online_expiry`).

    Args:
        store: The feature store.
        client: The online store's Redis; ``None`` (not a Redis store) does nothing.
        ttl_seconds: The online store's ``key_ttl_seconds``; ``None`` or 0 (no expiry) does
            nothing.
        views: The views the run materialized (their join keys name the entities).
        state: Where the sweeps are stored.
        snapshot: The state as the run read it (where each sweep stood).
        now: The run's clock.

    Returns:
        How many keys got the new expiry, and since when every key's expiry counts (``None``:
        not known yet, e.g. before a first cycle completes; ``now`` when there is no expiry).

    Raises:
        OnlineStoreError: Redis could not be reached or refused a command.
    """
    from xiva_source.feast_plugin.redis_format import RedisLayout

    if client is None or not ttl_seconds:
        return 0, now
    extended, covered, known = 0, now, True
    for join_keys in sorted({tuple(sorted(fv.join_keys)) for fv in views}):
        layout = RedisLayout.of(store.config, join_keys)
        full_since = full_reads_since(store, join_keys, snapshot)
        result = sweep_online_expiry(
            client,
            layout,
            int(ttl_seconds),
            snapshot.sweep(join_keys),
            now=now,
            full_since=full_since,
        )
        state.save_sweep(join_keys, result.sweep)
        extended += result.extended
        since = result.sweep.covered_since
        if since is None:
            known = False
        else:
            covered = min(covered, since)
        logger.info(
            "expiry sweep over %s: %d keys reset to %ss (slice %d; %s)%s",
            ",".join(join_keys),
            result.extended,
            ttl_seconds,
            result.limit,
            f"keys not written since the full reads of {full_since.isoformat()} left to expire"
            if full_since
            else "no full read recorded: every key extended",
            ", cycle complete" if result.completed else "",
        )
    return extended, covered if known else None


def restart_store_sweeps(views: Sequence[FeatureView], state: RunState, *, at: datetime) -> None:
    """After a run that rewrote every customer: every key still in a source expires after ``at``.

    The sweeps start a new cycle (the keys not rewritten belong to customers gone from every
    source).
    """
    for join_keys in sorted({tuple(sorted(fv.join_keys)) for fv in views}):
        state.save_sweep(join_keys, ExpirySweep(covered_since=at, swept_at=at))


def _batch_expirer(
    client: RedisClient,
    ttl_seconds: int,
    deadline: datetime | None = None,
    now: datetime | None = None,
) -> Callable[[list[bytes]], int]:
    """``EXPIRE`` a batch of keys: one Lua call (3x a pipeline), or a pipeline on a cluster.

    With ``deadline``, only the keys that expire at it or later (or never) are extended: the
    least remaining life is ``deadline - now``, ``now`` advanced by the time since this call
    (monotonic), so a long sweep does not drift.
    """
    from redis.cluster import RedisCluster

    started = time.monotonic()

    def least_ms() -> int:
        assert deadline is not None and now is not None
        elapsed = time.monotonic() - started
        return math.floor(((deadline - now).total_seconds() - elapsed) * 1000)

    if isinstance(client, RedisCluster):  # a script's keys must share a slot there

        def pipelined(keys: list[bytes]) -> int:
            if deadline is not None:
                least = least_ms()
                check = client.pipeline(transaction=False)
                for key in keys:
                    check.pttl(key)
                lives = check.execute()
                keys = [
                    k for k, left in zip(keys, lives, strict=True) if left == -1 or left >= least
                ]
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.expire(key, ttl_seconds)
            return sum(bool(r) for r in pipe.execute())

        return pipelined
    if deadline is None:
        script = client.register_script(_EXPIRE_ALL)
        return lambda keys: int(script(keys=keys, args=[ttl_seconds]))
    written = client.register_script(_EXPIRE_WRITTEN)
    return lambda keys: int(written(keys=keys, args=[ttl_seconds, least_ms()]))


def full_reads_since(
    store: FeatureStore, join_keys: Sequence[str], snapshot: StateSnapshot
) -> datetime | None:
    """When the last full reads of every online view of ``join_keys`` began (the earliest).

    ``None`` when one of them has none recorded (every key is then extended).
    """
    wanted = tuple(sorted(join_keys))
    starts = [
        snapshot.full_read(fv.name)
        for fv in store.list_feature_views()
        if fv.online and tuple(sorted(fv.join_keys)) == wanted
    ]
    if not starts or any(start is None for start in starts):
        return None
    return min(start for start in starts if start is not None)
