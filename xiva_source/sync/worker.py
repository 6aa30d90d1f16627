"""``xiva-source sync``: the long-running worker that keeps the online store and segments current.

One active worker per project: it holds the one lock of the house (:mod:`xiva_source.locking`,
key :func:`~xiva_source.sync.status.sync_lock_key`); a second worker waits as a standby
(``acquire`` in a loop) and takes over at once when the active one died on the same host, within
the lock's TTL (10 s) otherwise. A worker that loses its lock (Redis unreachable for a TTL) stops
writing and becomes a standby again.

The loop, every ``interval`` seconds while nothing is waiting (at once while changes are):

1. **Xiva.** The customer list from the checkpoint (``lastUpdate.gte``, paged by the client's
   cursor: both list shapes, the shared request rate, ``Retry-After``, the breaker). Only
   *settled* changes are taken: a ``lastUpdate`` whose second is over on Xiva's clock (the
   client's measured skew), so no later change can share it once the worker has read it (the
   one-second ties). For each changed customer of the batch (at most ``batch_size``):
   the live-refresh path (:func:`xiva_source.jobs.refresh_customer`:
   the 360 view, the features written newer-wins as partial rows per the mode, the pull recorded
   in the snapshot table), then :func:`segmentation.update_customer` (the segments re-evaluated,
   joined/left events published exactly once). The checkpoint
   (:mod:`xiva_source.sync.checkpoint`) moves past a customer only when both are done, and is
   saved after the batch. A customer Xiva no longer knows (404) or answers malformed is passed
   over (counted ``skipped``; the job's pending-retry table reads it again).
2. **DWH** (``auto`` / ``dwh`` modes), every ``dwh_interval``: :class:`~xiva_source.sync.dwh.
   DwhFollower`; when it wrote rows, an incremental segment refresh (its writes marked the
   changed-customers journal: the refresh costs those customers) publishes their events.
3. **Time-driven transitions.** When the injected clock's UTC day differs from the checkpoint's
   (and at the first start, which sets the baseline real-time updates compare with: a segment
   never refreshed is not updated in real time), the batch segment refresh
   (:meth:`segmentation.SegmentEngine.refresh`) runs once and publishes
   the joined/left events of customers whose membership changed because time passed (a rule over
   ``last_purchase_days_ago``): **such an event is published at the first day boundary after the
   rule crosses, so at most a day late** (its event time is the boundary's run).
4. The status record, the metrics and, every ``summary_every``, one summary line.

Failures degrade, never stop the worker: Xiva or the DWH failing is recorded (status, metrics,
one warning per outage and one on recovery) and the other parts go on; the position of the
failing source stays, so it catches up once the source is back. Redis failing stops every write
(the features, the checkpoint, the segments) until it answers again; a checkpoint lost with a
Redis that restarted empty is replaced by the one in memory.

:meth:`SyncWorker.stop` (the CLI's SIGTERM / SIGINT handler) ends the loop between two customers:
the batch in flight is abandoned after the customer being written, the position saved, the lock
released (a standby takes over at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from xiva_source.locking import DEFAULT_TTL_SECONDS, RedisLock
from xiva_source.redaction import redact
from xiva_source.sync.checkpoint import Checkpoint, CheckpointStore
from xiva_source.sync.errors import SyncConfigError
from xiva_source.sync.metrics import MetricsServer, SyncMetrics
from xiva_source.sync.status import STATUS_TTL_SECONDS, SyncStatus, sync_lock_key
from xiva_source.timeutil import Clock, parse_iso, to_iso, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore

    from segmentation.engine import SegmentEngine
    from segmentation.segment import Segment
    from xiva_source.redis_client import RedisClient
    from xiva_source.settings import Settings
    from xiva_source.sync.dwh import DwhFollower
    from xiva_source.xiva_api.client import XivaClient

__all__ = ["SyncHook", "SyncOptions", "SyncWorker"]

logger = logging.getLogger(__name__)

SECOND = timedelta(seconds=1)

SyncHook = Callable[[str, datetime, datetime, datetime, int], None]
"""``hook(customer_id, last_update, online_at, segments_at, events)``: called after each change
is followed (the benchmark measures latencies with it)."""


@dataclass(frozen=True)
class SyncOptions:
    """How the worker runs.

    Attributes:
        interval: Seconds between Xiva polls while caught up.
        dwh_interval: Seconds between DWH reads.
        batch_size: Most changed customers per batch (one checkpoint save per batch).
        summary_every: Seconds between summary lines (0: none).
        status_every: Seconds between status / metrics rewrites while idle.
        lock_ttl: The lock's TTL (a silent worker on another host is replaced after it).
        metrics_textfile: The job's ``METRICS_TEXTFILE``; the worker writes ``<stem>_sync.prom``
            beside it (``None``: no file).
        metrics_port: Serve ``/metrics`` on this port (``None``: no server).
    """

    interval: float = 1.0
    dwh_interval: float = 300.0
    batch_size: int = 50
    summary_every: float = 300.0
    status_every: float = 5.0
    lock_ttl: float = DEFAULT_TTL_SECONDS
    metrics_textfile: Path | None = None
    metrics_port: int | None = None


@dataclass
class _Due:
    """A periodic part: when it runs next (monotonic seconds)."""

    every: float
    at: float = 0.0

    def ready(self, now: float) -> bool:
        return self.every > 0 and now >= self.at

    def done(self, now: float) -> None:
        self.at = now + self.every


@dataclass
class _Window:
    """The summary line's counts since the last line."""

    started: float = field(default_factory=time.monotonic)
    customers: int = 0
    events: int = 0
    dwh_rows: int = 0
    skipped: int = 0


class SyncWorker:
    """Follows Xiva and the DWH into the online store and the segments (module docstring).

    Args:
        store: The feature store (its online store must be Redis).
        settings: The settings.
        options: Intervals, batch size, metrics.
        clock: The moment segments are evaluated at and whose UTC day drives the time-driven
            transitions (injected in tests).
        wall_clock: This host's real time (settling Xiva's seconds; Xiva stamps real time).
        xiva: The Xiva client (default one from the settings, closed by :meth:`close`).
        segments: The segments (default the ``SEGMENTS_DIR`` ones; ``[]``: no segments).
        on_summary: Where the summary line goes (the CLI prints it on stdout).
        hook: Called after each change followed (see :data:`SyncHook`).

    Raises:
        SyncConfigError: The online store is not Redis.
    """

    def __init__(
        self,
        store: FeatureStore,
        settings: Settings,
        *,
        options: SyncOptions | None = None,
        clock: Clock = utc_now,
        wall_clock: Clock = utc_now,
        xiva: XivaClient | None = None,
        segments: Sequence[Segment] | None = None,
        on_summary: Callable[[str], None] | None = None,
        hook: SyncHook | None = None,
    ) -> None:
        from xiva_source.feast_plugin.online_store import online_redis_client
        from xiva_source.settings import DataSourceMode

        self.store = store
        self.settings = settings
        self.options = options or SyncOptions()
        self.clock = clock
        self.wall_clock = wall_clock
        self.project = store.project
        redis = online_redis_client(store.config, settings)
        if redis is None:
            raise SyncConfigError(
                f"The online store of project {self.project!r} is not Redis: the sync worker "
                "keeps its lock, checkpoint and status in Redis.",
                "use the Redis online store (REDIS_URL), or run `xiva-source materialize` from "
                "cron instead.",
            )
        self.redis: RedisClient = redis
        self.mode = settings.feature_store_data_source
        self.follows_xiva = self.mode is not DataSourceMode.DWH
        self._own_xiva = xiva is None and self.follows_xiva
        if xiva is None and self.follows_xiva:
            from xiva_source.xiva_api.client import XivaClient

            xiva = XivaClient(settings=settings)
        self.xiva = xiva
        self._segments = segments
        self.on_summary = on_summary
        self.hook = hook
        self.lock = RedisLock(
            self.redis,
            sync_lock_key(self.project),
            ttl=self.options.lock_ttl,
            purpose="sync worker",
            log=logger,
        )
        self.checkpoints = CheckpointStore(self.redis, self.project)
        self.checkpoint: Checkpoint | None = None
        self.status = SyncStatus(mode=self.mode.value)
        self.metrics = SyncMetrics(
            _sync_textfile(self.options.metrics_textfile or settings.metrics_textfile)
        )
        self.server: MetricsServer | None = None
        self.active = False
        self._stop = threading.Event()
        self._engine: SegmentEngine | None = None
        self._engine_failed = False
        self._resume = False
        self._malformed: set[str] = set()
        self._follower: DwhFollower | None = None
        self._dwh = _Due(self.options.dwh_interval)
        self._publish = _Due(self.options.status_every)
        self._summary = _Due(self.options.summary_every)
        self._window = _Window()

    # -- the life cycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """End the loop (thread- and signal-safe): the customer being written is finished."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self) -> None:
        """Wait for the lock (standby), follow the sources while holding it, until stopped."""
        if self.options.metrics_port is not None and self.server is None:
            self.server = MetricsServer(self.metrics, self.options.metrics_port)
        self.status.started = self.wall_clock()
        self._summary.done(time.monotonic())
        try:
            while not self.stopping:
                if not self._acquire():
                    break
                try:
                    self._active()
                finally:
                    self._release()
        finally:
            self.close()

    def close(self) -> None:
        """Release the lock, stop the metrics server, close the Xiva client."""
        self._release()
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._own_xiva and self.xiva is not None:
            self.xiva.close()
            self._own_xiva = False

    def _acquire(self) -> bool:
        """Take the lock, waiting as a standby; ``False`` when stopped first."""
        from redis.exceptions import RedisError

        waiting = False
        while not self.stopping:
            try:
                holder = self.lock.acquire(timeout=self.lock.poll)
            except RedisError as e:
                self._degraded("redis", e)
                self._stop.wait(self.options.interval)
                continue
            self._recovered("redis")
            if holder is None:
                logger.warning(
                    "sync worker of project %s active (pid %s)", self.project, self.status.pid
                )
                self.active = True
                return True
            if not waiting:
                logger.warning("sync worker standby: %s is active", holder.describe())
                waiting = True
            self._publish_metrics(write_file=False)
        return False

    def _release(self) -> None:
        if self.active:
            self.active = False
            self.lock.release()
            self._publish_metrics()

    def _active(self) -> None:
        """Follow the sources while the lock is held (from the saved position: another worker
        may have moved it while this one stood by)."""
        self._resume = True
        while not self.stopping:
            if self.lock.lost:
                logger.error("sync worker lost its lock: stopping writes, standing by")
                return
            busy = self.step()
            if not busy:
                self._stop.wait(self.options.interval)

    # -- one step ------------------------------------------------------------------------------

    def step(self) -> bool:
        """One pass: a Xiva batch, the DWH and the day boundary when due, status and metrics.

        Returns:
            Whether more Xiva changes are waiting (the loop goes on without sleeping).
        """
        from redis.exceptions import RedisError

        from xiva_source.feast_plugin.errors import OnlineStoreError

        busy = False
        try:
            if self.checkpoint is None or self._resume:
                self.checkpoint = self._load_checkpoint()
                self._resume = False
            if self.follows_xiva:
                busy = self._xiva_part()
            if not self.stopping:
                self._dwh_part()
            if not self.stopping:
                self._day_part()
            self._recovered("redis")
        except (RedisError, OnlineStoreError) as e:
            self._degraded("redis", e)
        now = time.monotonic()
        if self._publish.ready(now) or busy:
            self._publish_status()
        if self._summary.ready(now):
            self._summary.done(now)
            self._summary_line()
        return busy and not self.stopping

    def _load_checkpoint(self) -> Checkpoint:
        """The saved checkpoint; else the one in memory (Redis restarted empty); else a start."""
        saved = self.checkpoints.load()
        if saved is not None:
            logger.info("sync: resuming from %s", _describe(saved))
            return saved
        if self.checkpoint is not None:
            return self.checkpoint
        start = self._start_position()
        checkpoint = Checkpoint(since=start, dwh_since=start)
        logger.warning(
            "sync: no checkpoint for project %s: following changes from %s",
            self.project,
            to_iso(start) if start else "the beginning",
        )
        self.checkpoints.save(checkpoint)
        return checkpoint

    def _start_position(self) -> datetime:
        """Where a first worker starts: the job's Xiva watermark, else its DWH one, else now.

        Raises:
            RedisError: The state cannot be read now: the loop degrades and tries again (never
                "now" instead: the changes since the job's watermark would be skipped).
            CorruptedStateError: The watermark does not parse: the worker stops with the repair
                (exit 4), as the job does.
        """
        from xiva_source.jobs.refresh import CUSTOMER_VIEW
        from xiva_source.jobs.state import state_for_store

        state = state_for_store(self.store, self.redis).load()
        mark = state.watermark(CUSTOMER_VIEW, "xiva") or state.watermark(CUSTOMER_VIEW, "dwh")
        return mark or self.wall_clock()

    # -- Xiva ----------------------------------------------------------------------------------

    def _xiva_part(self) -> bool:
        from xiva_source.xiva_api.errors import XivaError

        try:
            busy = self._xiva_batch()
        except XivaError as e:
            self._degraded("xiva", e)
            return False
        self._recovered("xiva")
        return busy

    def _xiva_batch(self) -> bool:
        """Follow one batch of settled changes; whether more are waiting."""
        assert self.xiva is not None and self.checkpoint is not None
        checkpoint = self.checkpoint
        polled = self.wall_clock()
        skew = self.xiva.clock_skew() or timedelta(0)
        settled = polled + skew  # Xiva's clock at least: a second before it is over
        batch: list[tuple[str, datetime]] = []
        more = False
        for customer in self.xiva.iter_customers(updated_since=checkpoint.since):
            try:
                last_update = parse_iso(customer.get("lastUpdate"))
            except (TypeError, ValueError):
                # Listed at every poll while it stays malformed: passed over, reported once.
                if customer["id"] not in self._malformed:
                    if len(self._malformed) >= 10_000:
                        self._malformed.clear()
                    self._malformed.add(customer["id"])
                    self._skip(customer["id"], "its lastUpdate is not a timestamp")
                continue
            if _second_of(last_update) + SECOND > settled:
                break  # its second is not over: the next poll takes it (and its ties)
            if checkpoint.is_done(customer["id"], last_update):
                continue
            batch.append((customer["id"], last_update))
            if len(batch) >= self.options.batch_size:
                more = True
                break
        done = 0
        try:
            for customer_id, last_update in batch:
                if self.stopping or self.lock.lost:
                    return False
                if self._follow(customer_id, last_update):
                    done += 1
                checkpoint.done(customer_id, last_update)
        finally:
            if done or batch:
                self.checkpoints.save(checkpoint)
                self.status.counters.batches += 1
                self.status.position = checkpoint.since
        if not more:
            self.status.caught_up["xiva"] = polled
        return more

    def _follow(self, customer_id: str, last_update: datetime) -> bool:
        """The live-refresh path and the segments for one change; ``False`` when passed over.

        Raises:
            XivaError: Xiva failed (not for this customer alone): the batch stops here.
            OnlineStoreError, RedisError: Redis failed: the batch stops here.
        """
        from xiva_source.jobs.refresh import refresh_customer
        from xiva_source.xiva_api.errors import XivaBadResponseError, XivaNotFoundError

        try:
            refresh_customer(customer_id, self.store, client=self.xiva, settings=self.settings)
        except XivaNotFoundError:
            self._skip(customer_id, "Xiva no longer knows it (404)")
            return False
        except XivaBadResponseError as e:
            self._skip(customer_id, f"its 360 view is malformed: {e.problem}")
            return False
        online_at = self.wall_clock()
        events = self._update_segments(customer_id)
        segments_at = self.wall_clock()
        self.status.counters.customers += 1
        self.status.counters.events += events
        self._window.customers += 1
        self._window.events += events
        if self.hook is not None:
            self.hook(customer_id, last_update, online_at, segments_at, events)
        return True

    def _skip(self, customer_id: str, why: str) -> None:
        logger.warning("sync: customer %s passed over: %s", customer_id, why)
        self.status.counters.skipped += 1
        self._window.skipped += 1

    # -- segments ------------------------------------------------------------------------------

    def _engine_for_segments(self) -> SegmentEngine | None:
        if self._engine is None and not self._engine_failed:
            from segmentation.engine import SegmentEngine
            from segmentation.loader import check_segments_dir

            segments = self._segments
            if segments is None:
                loaded, errors = check_segments_dir(settings=self.settings)
                for error in errors:
                    logger.error("sync: segments: %s", error)
                segments = loaded
            if not segments:
                logger.warning("sync: no segments: memberships are not followed")
                self._engine_failed = True
                return None
            self._engine = SegmentEngine(self.store, segments, settings=self.settings)
        return self._engine

    def _update_segments(self, customer_id: str) -> int:
        """Re-evaluate one customer's segments; the events published."""
        from segmentation.realtime import update_customer

        engine = self._engine_for_segments()
        if engine is None:
            return 0
        return len(update_customer(engine, customer_id, now=self.clock()).events)

    def _day_part(self) -> None:
        """At a UTC day boundary of the injected clock: the batch refresh, once per day."""
        assert self.checkpoint is not None
        now = self.clock()
        today = now.date()
        if self.checkpoint.day == today:
            return
        # The first start refreshes too: the baseline real-time updates compare with.
        events = self._refresh_segments(now)
        if events is not None:
            self.status.counters.day_refreshes += 1
            logger.warning("sync: day %s: segments refreshed, %d time-driven events", today, events)
        self.checkpoint.day = today
        self.checkpoints.save(self.checkpoint)

    def _refresh_segments(self, now: datetime) -> int | None:
        """The batch segment refresh (incremental: the journal's customers and the time flips);
        the events it published, ``None`` without segments."""
        engine = self._engine_for_segments()
        if engine is None:
            return None
        results = engine.refresh(now=now)
        events = sum(len(r.joined) + len(r.left) for r in results.values())
        self.status.counters.events += events
        self._window.events += events
        return events

    # -- DWH -----------------------------------------------------------------------------------

    def _dwh_part(self) -> None:
        from xiva_source.settings import DataSourceMode

        assert self.checkpoint is not None
        if self.mode is DataSourceMode.XIVA or not self._dwh.ready(time.monotonic()):
            return
        from xiva_source.dwh.errors import DwhError

        self._dwh.done(time.monotonic())
        if self._follower is None:
            from xiva_source.sync.dwh import DwhFollower

            self._follower = DwhFollower(self.store, self.settings, self.redis)
        now = self.wall_clock()
        try:
            rows = self._follower.follow(self.checkpoint.dwh_since, now)
        except DwhError as e:
            self._degraded("dwh", e)
            return
        self._recovered("dwh")
        self.checkpoint.dwh_since = now
        self.checkpoints.save(self.checkpoint)
        self.status.dwh_position = now
        self.status.caught_up["dwh"] = now
        self.status.counters.dwh_rows += rows
        self._window.dwh_rows += rows
        if rows and self.checkpoint.day is not None:
            # The rows marked the journal as they were written: an incremental refresh costs them.
            self._refresh_segments(self.clock())

    # -- reporting -----------------------------------------------------------------------------

    def _degraded(self, part: str, error: BaseException) -> None:
        text = redact(str(error))
        first = part not in self.status.degraded
        self.status.error(part, text, self.wall_clock())
        if first:
            logger.warning("sync: %s failing, degraded until it answers: %s", part, text)
        else:
            logger.info("sync: %s still failing: %s", part, text)
        if part == "redis":
            self._engine, self._engine_failed = None, False  # rebuilt once Redis answers

    def _recovered(self, part: str) -> None:
        if self.status.recovered(part):
            logger.warning("sync: %s answers again; catching up", part)

    def _publish_status(self) -> None:
        from redis.exceptions import RedisError

        self._publish.done(time.monotonic())
        self.status.updated = self.wall_clock()
        if self.active:
            try:
                self.status.publish(
                    self.redis, self.project, STATUS_TTL_SECONDS + self.options.interval
                )
            except RedisError as e:
                self._degraded("redis", e)
        self._publish_metrics()

    def _publish_metrics(self, *, write_file: bool = True) -> None:
        try:
            self.metrics.update(
                self.status, self.wall_clock(), active=self.active, write_file=write_file
            )
        except OSError as e:
            logger.warning("sync: metrics textfile not written: %s", e)

    def _summary_line(self) -> None:
        window, self._window = self._window, _Window()
        now = self.wall_clock()
        lags = " ".join(
            f"{source}={lag:.1f}s"
            for source in ("xiva", "dwh")
            if (lag := self.status.lag(source, now)) is not None
        )
        degraded = ", ".join(sorted(self.status.degraded)) or "none"
        line = (
            f"sync {self.project}: {'active' if self.active else 'standby'}; last "
            f"{time.monotonic() - window.started:.0f}s: {window.customers} changes followed, "
            f"{window.events} events, {window.dwh_rows} DWH rows, {window.skipped} skipped; "
            f"lag {lags or 'unknown'}; degraded: {degraded}"
        )
        if self.on_summary is not None:
            self.on_summary(line)
        else:
            logger.warning("%s", line)


def _second_of(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _describe(checkpoint: Checkpoint) -> str:
    since = to_iso(checkpoint.since) if checkpoint.since else "the beginning"
    return f"{since} ({len(checkpoint.seen)} customers done at that second)"


def _sync_textfile(job_textfile: Path | None) -> Path | None:
    from xiva_source.sync.metrics import sync_textfile

    return sync_textfile(job_textfile) if job_textfile is not None else None
