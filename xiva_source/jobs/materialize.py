"""The cron-safe materialization run behind ``make materialize``.

One run moves every feature view of the repository from its sources into the online store,
incrementally:

1. Per feature view and source, the window starts at that source's watermark
   (:mod:`xiva_source.jobs.state`, :mod:`xiva_source.jobs.plan`) and ends now. A source never
   read for the view (first run, new mode), a wiped online store (its marker is missing) or
   ``--full`` start at the beginning of time: every customer is loaded, including those whose
   ``lastUpdate`` / ``updated_at`` is years old (stock Feast would start at ``now - ttl``).
2. :func:`xiva_source.pipeline.pull_batches` streams the window in chunks; each chunk is converted
   column-wise (:mod:`xiva_source.feast_plugin.online_rows`) and written by
   :class:`~xiva_source.jobs.writes.OnlineWriter` (on Redis, the bulk writer of
   :mod:`xiva_source.feast_plugin.bulk_writer`: a row older than the stored one is not written, an
   equal or newer one is, a reload overwrites), and a partial chunk (a source failed) is written
   cell by cell so the online store keeps what it does not know. With ``batch_engine: ray.engine``
   the window is read by Ray tasks, one per customer range (:mod:`xiva_source.feast_plugin.
   ray_support`), and written the same way; the summary line says ``engine=ray``.
3. Only after every chunk of a view was written do its watermarks move: each source's to the
   run's end unless it failed (or found nothing reading from the beginning), Feast's
   (``registry.apply_materialization``) to the slowest of them. A failed source is read again
   from its own watermark by the next run; Xiva rows that were not settled (written partially
   while the DWH was down, or not recorded in the snapshot table) leave a re-read mark, from
   which the pull reads Xiva again once the DWH and the snapshot database answer, until a run
   settles them (:func:`~xiva_source.jobs.plan.rereads_after`).
4. After a fully successful incremental run, the expiry sweep resets the expiry of its next
   slice of entity keys (:mod:`xiva_source.jobs.expiry`: a ``SCAN`` cursor spread over runs, so
   every key is reset within a fraction of the online expiry): online expiry measures the time
   since the last *successful run*, at a cost that follows the run interval, not the population.
   A run that read every online view in full restarts the sweep: its writes reset the expiry of
   every customer still in a source, and the others should expire. The marker is written last,
   expiring when the keys whose expiry was reset do (from the start of the sweep's last complete
   cycle, or the run's start after a full run); not renewed before a cycle completed or when the
   sweep failed.

Per view and source the window starts where the job's watermark is, or where a
``feast materialize[-incremental]`` since then left the source once Feast's registry confirms it
(:mod:`xiva_source.feast_plugin.feast_runs`): the state is shared. A watermark or mode the run
needs that does not parse stops it before anything is read (exit 4, the fix names the repair).

An ``--end-date`` more than :data:`END_DATE_SKEW` in the future is refused (exit 2): its
watermark would make every later run read nothing.

Two runs never overlap: the run holds a lock for its whole duration (:mod:`xiva_source.jobs.locks`).
A run started while one is going returns a ``skipped`` summary without touching anything.

Every run ends with one summary line (:mod:`xiva_source.jobs.summary`) and an exit status: 0
success, 1 failure (:class:`~xiva_source.jobs.errors.MaterializationFailedError`: the line names
the cause and the fix; also a fallback with ``fail_on_fallback``), 2 configuration error
(:class:`~xiva_source.jobs.errors.MaterializationConfigError`,
:class:`~xiva_source.errors.ConfigurationError`), 3 completed but degraded (``auto`` mode fell back
to one source, or customers are pending a retry: the line says which), 4 a corrupted run state
(:class:`~xiva_source.jobs.errors.MaterializationStateError`). Everything else the run
has to say goes to the log at INFO (the line is the one thing printed at the default level).

At its end a run (failed ones too) stores its result beside the watermarks
(:meth:`~xiva_source.jobs.state.RunState.save_run`, read by ``xiva-source status``) and, when
``METRICS_TEXTFILE`` is set, rewrites that Prometheus textfile (:mod:`xiva_source.jobs.metrics`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from xiva_source.errors import DataSourceError
from xiva_source.feast_plugin.errors import CorruptedStateError, OnlineStoreError, RepositoryError
from xiva_source.feast_plugin.foreign_errors import exception_chain
from xiva_source.feast_plugin.run_state import (
    FileRunState,
    LookbackCounts,
    RunState,
    StateSnapshot,
)
from xiva_source.jobs.errors import (
    LockLostError,
    MaterializationConfigError,
    MaterializationError,
    MaterializationFailedError,
    MaterializationStateError,
)
from xiva_source.jobs.expiry import restart_store_sweeps, sweep_store_expiry
from xiva_source.jobs.failures import explain_failure
from xiva_source.jobs.locks import (
    LockHolder,
    MaterializationLock,
    lock_for_store,
    takeover_message,
)
from xiva_source.jobs.plan import (
    ViewPlan,
    feast_watermark,
    plan_view,
    rereads_after,
    watermarks_after,
)
from xiva_source.jobs.repository import load_store, new_online_store, select_views
from xiva_source.jobs.state import needed_fields, state_for_store
from xiva_source.jobs.summary import RunSummary, StepCost, ViewRun
from xiva_source.jobs.writes import OnlineWriter
from xiva_source.pipeline.auto import is_partial
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.redaction import redact
from xiva_source.settings import Settings, load_settings
from xiva_source.timeutil import as_utc, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.infra.online_stores.online_store import OnlineStore

    from xiva_source.jobs.lookback import LookbackPlan
    from xiva_source.pipeline.report import PullReport
    from xiva_source.redis_client import RedisClient

__all__ = [
    "END_DATE_SKEW",
    "EPOCH",
    "MaterializationConfigError",
    "MaterializationError",
    "MaterializationFailedError",
    "RunSummary",
    "ViewRun",
    "run_materialization",
]

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Start recorded in the registry for a view's first run (it read everything up to then)."""

END_DATE_SKEW = timedelta(minutes=5)
"""How far in the future ``--end-date`` may lie (clock skew between hosts); later is refused."""


def run_materialization(
    repo_path: str | os.PathLike[str] = "feature_repo",
    *,
    end_date: datetime | None = None,
    views: Iterable[str] | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
    full: bool = False,
    fail_on_fallback: bool | None = None,
) -> RunSummary:
    """Materialize every (or the named) feature views incrementally up to ``end_date``.

    Args:
        repo_path: The Feast repository (its ``feature_store.yaml``).
        end_date: Window end; default now (UTC). Naive datetimes are taken as UTC.
        views: Feature view names; default all views of the project.
        settings: The settings the caller loaded; default
            ``load_settings(repo_path=repo_path)`` (the ``.env`` beside or above the repository).
        progress: Show a progress bar on stderr; ``None`` shows it only when stderr is a terminal.
        full: Ignore the watermark and read everything (a full reload); the interval is recorded
            as usual.
        fail_on_fallback: A fallback fails the run (``summary.exit_code`` 1, not 3); default
            ``settings.materialize_fail_on_fallback``.

    Returns:
        The summary; ``status`` is ``"ok"``, or ``"skipped"`` when another run holds the lock (then
        nothing was read or written); ``exit_code`` 3 (``outcome`` ``degraded``) when a fallback
        was used or customers are pending a retry, 1 for a fallback with ``fail_on_fallback``.

    Raises:
        ConfigurationError: A setting is invalid (exit 2).
        MaterializationConfigError: The repository or a view name is wrong (exit 2).
        MaterializationFailedError: A source, the online store or the registry failed (exit 1).
            Views finished before the failure keep their new watermark; the failing view and
            those after it keep their old one, so the next run repeats them. Its ``problem`` and
            ``fix`` come from the cause's.
        MaterializationStateError: A watermark or mode the run needs is corrupted in the run
            state (exit 4); nothing was read or written; the fix names the repair.

    Example:
        >>> summary = run_materialization("feature_repo")  # doctest: +SKIP
        >>> print(summary.line())  # doctest: +SKIP
        materialize ok mode=auto rows dwh=2000 xiva=1234 views=2 xiva_calls=1300 ...
    """
    from xiva_source.feast_plugin.online_store import online_redis_client

    started = time.monotonic()
    now = utc_now()
    end = as_utc(end_date) if end_date is not None else now
    if end > now + END_DATE_SKEW:
        raise MaterializationConfigError(
            f"--end-date {end.isoformat()} is in the future (now {now.isoformat()}).",
            "leave --end-date out (it defaults to now) or give a past moment: a watermark in the "
            "future would make later runs read nothing.",
        )
    if settings is None:
        settings = load_settings(repo_path=repo_path)
    loading = time.monotonic()
    store = load_store(repo_path)
    feature_views = select_views(store, views)
    online_store = new_online_store(store)
    client = online_redis_client(store.config, settings, online_store=online_store)
    loaded = time.monotonic() - loading
    run = _Run(
        store=store,
        online_store=online_store,
        client=client,
        settings=settings,
        end=end,
        full=full,
        show_progress=sys.stderr.isatty() if progress is None else progress,
        started=started,
        began=now,
        summary=RunSummary(
            status="ok",
            mode=settings.feature_store_data_source.value,
            engine=_engine(store),
            fail_on_fallback=(
                settings.materialize_fail_on_fallback
                if fail_on_fallback is None
                else fail_on_fallback
            ),
        ),
    )
    lock = lock_for_store(store, client)
    try:
        holder = _acquire(lock)
    except Exception as e:  # e.g. Redis unreachable: nothing was read or written
        error = run.failed(e, "the lock")
        run.finish(feature_views)
        raise error from e
    if holder is not None:
        logger.info("another run holds the lock: %s", holder.describe())
        return RunSummary(
            status="skipped",
            mode=run.summary.mode,
            holder=holder,
            duration=time.monotonic() - started,
        )
    run.summary.costs["load"] = StepCost(seconds=loaded)
    if lock.took_over is not None:  # a dead run's lock (docs/operations.md, runbook)
        run.summary.warnings.append(takeover_message(lock.took_over))
    try:
        try:
            run.state = state_for_store(store, client)
            run.materialize_views(feature_views, lock)
            with run.summary.timed("expiry", unit="keys") as cost:
                run.extend_expiry(feature_views)
                cost.count += run.summary.expiry_extended
            with run.summary.timed("state"):
                run.mark_loaded()
        finally:
            with run.summary.timed("state"):
                run.summary.duration = time.monotonic() - started
                run.finish(feature_views)  # still under the lock: the record is this run's
    finally:
        lock.release()
    logger.info("%s", run.summary.line())
    return run.summary


@dataclass
class _Run:
    """One run's state: what it works on and what it did so far (its summary)."""

    store: FeatureStore
    online_store: OnlineStore
    client: RedisClient | None
    settings: Settings
    end: datetime
    full: bool
    show_progress: bool
    started: float
    began: datetime
    """When the run started (wall clock)."""
    summary: RunSummary
    state: RunState | None = None
    loaded_at: datetime | None = None
    """From when every online key's expiry counts after this run (``None``: not all reset)."""
    consumed: dict[str, list[str]] = field(default_factory=dict)
    """Per view, the state's records of Feast's pulls to delete once the view is recorded."""
    feast_full: dict[str, datetime] = field(default_factory=dict)
    """Per view, when a ``feast materialize`` that read it in full began (``plan.full_read``)."""
    lookbacks: dict[str, LookbackCounts] = field(default_factory=dict)
    """Per view, the DWH lookback counts to store once the view is recorded (jobs/lookback.py)."""

    def materialize_views(
        self, feature_views: Sequence[FeatureView], lock: MaterializationLock
    ) -> None:
        """Materialize ``feature_views`` in turn under ``lock``.

        Raises:
            MaterializationFailedError: A view failed (in ``auto`` mode: all its sources did).
        """
        summary = self.summary
        last_error: DataSourceError | None = None
        try:
            with summary.timed("plan", unit="views"):
                state, reload = self._reload(feature_views)
        except Exception as e:  # the state lives in the online store: it failed, or is corrupted
            raise self.failed(e, "the run state") from e
        for selected in feature_views:
            where = f"view {selected.name}"
            try:
                fv = self._registry_view(selected.name)  # again under the lock: it may have moved
                view_run = self._view(fv, state, reload)
                if not lock.owned():
                    raise LockLostError()
                # The watermarks move only now, after every chunk of the view is online.
                with summary.timed("state"):
                    self._record(fv, view_run)
            except DataSourceError as e:
                if summary.mode != "auto" or isinstance(e, AllSourcesFailedError):
                    raise self.failed(e, where) from e
                # auto mode, one source down: this view reads only that source, so it keeps its
                # previous values and watermark while the others are served from the other source.
                summary.kept_views.append(selected.name)
                summary.report.fallbacks.append(
                    redact(f"{e.source} failed, {selected.name} kept its previous values")
                )
                logger.info("%s: %s", summary.report.fallbacks[-1], redact(str(e)))
                last_error = e
                continue
            except Exception as e:  # the job's contract: any failure -> summary line + exit 1
                raise self.failed(e, where) from e
            summary.views.append(view_run)
        if last_error is not None and not summary.views:  # nothing could be served at all
            raise self.failed(last_error, "every view") from last_error

    def extend_expiry(self, feature_views: Sequence[FeatureView]) -> None:
        """After a successful run: the next slice of the expiry sweep (a failure is a warning).

        ``loaded_at`` becomes the moment since which every key's expiry counts
        (:mod:`xiva_source.jobs.expiry`), ``None`` while no sweep cycle has completed.
        """
        from xiva_source.feast_plugin.online_store import bind_online_config

        assert self.state is not None
        try:
            # The views this run wrote in full: the sweep no longer extends a key none of the
            # last full reads wrote (a customer gone from every source, jobs.expiry).
            full = [v.name for v in self.summary.views if v.read_everything]
            self.state.save_full_reads(full, self.began)
            if self._rewrote_everything():
                # Every customer still in a source was just written (which resets its expiry);
                # a key not rewritten belongs to a customer gone from every source: let it expire.
                logger.info("full run: online expiry reset by the writes themselves")
                self.loaded_at = self.began  # no key was written before the run began
                if self.client is not None:
                    restart_store_sweeps(feature_views, self.state, at=self.began)
                return
            ttl = getattr(
                bind_online_config(self.store.config, self.settings), "key_ttl_seconds", None
            )
            self.summary.expiry_extended, self.loaded_at = sweep_store_expiry(
                self.store,
                self.client,
                ttl,
                feature_views,
                self.state,
                self.state.load(),
                now=utc_now(),
            )
        except Exception as e:  # the values are online and current; only their expiry is old
            self.summary.expiry_error = redact(str(e))
            logger.info("online expiry not extended: %s", self.summary.expiry_error)

    def failed(self, error: BaseException, where: str) -> MaterializationFailedError:
        """Mark the summary failed and build the error the run raises (exit 1)."""
        self.summary.status = "failed"
        self.summary.duration = time.monotonic() - self.started
        if where.startswith("view "):
            self.summary.failed_view = where[len("view ") :]
        corrupted = next(
            (e for e in exception_chain(error) if isinstance(e, CorruptedStateError)), None
        )
        if corrupted is not None:  # exit 4: the fix is a repair, not a rerun
            self.summary.state_corrupted = True
            cause = corrupted.problem
            fix = f"{corrupted.fix} Nothing was read or written."
        else:
            cause, fix = explain_failure(error, where)
        self.summary.error = f"{cause} Fix: {fix}"
        # The summary line says it (once); the log keeps the raw error at INFO.
        logger.info("materialization of %s failed: %s", where, redact(str(error)))
        if corrupted is not None:
            return MaterializationStateError(self.summary, cause, fix)
        return MaterializationFailedError(self.summary, cause, fix)

    def finish(self, feature_views: Sequence[FeatureView]) -> None:
        """Store the run's result and write the metrics textfile (each failure only a warning)."""
        now = utc_now()
        stored = StateSnapshot.empty()
        try:
            state = self.state or state_for_store(self.store, self.client)
            state.save_run(self.summary.record(now), self.summary.view_records(now))
            stored = state.load()
        except Exception as e:  # e.g. Redis down: the run's line says what happened anyway
            logger.info("run result not recorded: %s", redact(str(e)))
        path = self.settings.metrics_textfile
        if path is None:
            return
        from xiva_source.jobs.metrics import not_written, write_run_metrics

        try:
            write_run_metrics(path, self.summary, self.store, stored.watermarks(), now)
        except Exception as e:  # e.g. a directory not writable: the run's outcome stands
            self.summary.warnings.append(redact(not_written(path, e)))
            logger.info("metrics not written: %s", redact(repr(e)))

    def mark_loaded(self) -> None:
        """After a run that served every view: the marker says the online store is loaded.

        It expires when the keys whose expiry the run reset do (``loaded_at`` + the online
        expiry), never later; when the expiry could not be reset the old marker stays.
        """
        from xiva_source.feast_plugin.online_store import bind_online_config

        if self.state is None or self.summary.kept_views or self.loaded_at is None:
            return
        ttl = getattr(bind_online_config(self.store.config, self.settings), "key_ttl_seconds", None)
        try:
            self.state.set_marker(ttl, at=self.loaded_at)
        except Exception as e:  # the next run reloads everything: slow, never wrong
            self.summary.warnings.append(redact(f"online store marker not written: {e}"))
            logger.info("%s", self.summary.warnings[-1])

    def _reload(self, feature_views: Sequence[FeatureView]) -> tuple[StateSnapshot, str | None]:
        """The stored state, and why this run reads everything (``full``, ``wiped``) if it does.

        A missing marker while Feast's registry has a watermark: the online store was wiped
        (restarted empty, flushed, every key expired): reload all. An incremental run stops
        when a field it needs is corrupted (exit 4); a reload rewrites them.

        Raises:
            CorruptedStateError: A watermark or mode the run needs does not parse.
        """
        assert self.state is not None
        state = self.state.load()
        if self.full:
            self.summary.reload = "full"
            return self._past_corruptions(state).readable(), "full"
        if self.state.marker() is None and any(fv.most_recent_end_time for fv in feature_views):
            self.summary.reload = "wiped"
            self.summary.reload_reason = (
                "the online store's marker is missing although the registry has watermarks "
                "(Redis restarted empty or flushed, or keys expired after ONLINE_TTL_SECONDS "
                "without a successful run): full reload"
            )
            logger.info("%s", self.summary.reload_reason)
            self._past_corruptions(state)
            return StateSnapshot.empty(), "wiped"
        state.check(needed_fields(feature_views, self.summary.mode))
        return self._past_corruptions(state), None

    def _past_corruptions(self, state: StateSnapshot) -> StateSnapshot:
        """Corrupted fields this run does not need: each a warning (a reload rewrites them)."""
        assert self.state is not None
        if state.unreadable is not None and isinstance(self.state, FileRunState):
            aside = self.state.move_aside()  # a reload starts a new file; the old one is kept
            self.summary.warnings.append(f"{state.unreadable.problem} Moved to {aside}.")
            return StateSnapshot.empty()
        for error in state.corruptions():
            warning = f"{error.problem} (not used by this run). Fix: {error.fix}"
            self.summary.warnings.append(warning)
        return state

    def _view(self, fv: FeatureView, state: StateSnapshot, reload: str | None) -> ViewRun:
        """Stream one view's sources into the online store; returns what was done."""
        from xiva_source.pipeline.progress import progress_bar
        from xiva_source.pipeline.report import PullReport

        view_started = time.monotonic()
        with self.summary.timed("plan", count=1, unit="views"):
            plan = plan_view(fv, self.summary.mode, state, self.end, reload=reload, now=self.began)
            lookback = self._lookback(fv, plan, state)
        if plan.reload == "mode" and self.summary.reload == "no":
            self.summary.reload = "mode"
        self.summary.warnings.extend(plan.warnings)
        self.consumed[fv.name] = plan.consumed
        if plan.full_read is not None:
            self.feast_full[fv.name] = plan.full_read
        for source, mark in sorted(plan.carried.items()):
            logger.info(
                "%s: %s carried on from `feast materialize` up to %s", fv.name, source, mark
            )
        starts = plan.starts
        known = [m for m in starts.values() if m is not None]
        start = min(known) if len(known) == len(starts) and known else None
        logger.info("materializing %s from %s to %s", fv.name, starts, self.end)
        view_run = ViewRun(name=fv.name, start=start, end=self.end, starts=dict(starts))
        report = PullReport(mode=self.summary.mode)
        join_keys = {column.name: column.dtype.to_value_type() for column in fv.entity_columns}
        # A reload (full, wiped, mode) rewrites whatever is stored (jobs/writes.py, the rule).
        writer = OnlineWriter(
            self.store, self.online_store, client=self.client, force=plan.reload is not None
        )
        with progress_bar(fv.name, show=self.show_progress) as progress:
            report.progress = progress  # the Xiva pull moves it per customer
            pulls = self.summary.costs.setdefault("pulls", StepCost(unit="rows"))
            writes = self.summary.costs.setdefault("writes", StepCost(unit="rows"))
            try:
                chunks = iter(self._pull(fv, start, plan, report, lookback))
                while True:
                    began = time.monotonic()
                    try:
                        table = next(chunks)
                    except StopIteration:
                        break
                    finally:
                        pulls.seconds += time.monotonic() - began
                    pulls.count += table.num_rows
                    began = time.monotonic()
                    written = writer.write(fv, table, join_keys)
                    writes.seconds += time.monotonic() - began
                    writes.count += written
                    view_run.rows += written
                    if is_partial(table):
                        view_run.partial_rows += written
                    progress.rows(table.num_rows)
                began = time.monotonic()
                writer.flush()  # every chunk in the online store before the watermarks move
                writes.seconds += time.monotonic() - began
            finally:
                self.summary.report.merge(report)
        view_run.marks, warnings = watermarks_after(plan, report, self.end)
        view_run.rereads, unsettled = rereads_after(plan, report)
        warnings.extend(unsettled)
        view_run.mode = plan.mode
        view_run.rows_by_source = dict(report.rows_by_source)
        view_run.duration = time.monotonic() - view_started
        self.summary.warnings.extend(warnings)
        if view_run.partial_rows or report.fallbacks:
            self.summary.partial_views.append(fv.name)
        return view_run

    def _lookback(
        self, fv: FeatureView, plan: ViewPlan, state: StateSnapshot
    ) -> LookbackPlan | None:
        """What of the lookback the view's DWH read takes again (``None``: all of it).

        Counts the DWH rows per bucket of the lookback (:mod:`xiva_source.jobs.lookback`) for a
        view read from the DWH alone on the local engine: compared with the last run's to find
        the first bucket where rows arrived late, and kept to be stored once the view is
        recorded. A reload counts only (the next run compares with it). A failed count reads the
        whole lookback.
        """
        from xiva_source.jobs.lookback import plan_lookback
        from xiva_source.pipeline.pull import dwh_read

        source = dwh_read(fv.batch_source, self.settings)  # type: ignore[arg-type]
        if (
            source is None
            or self.summary.engine != "local"
            or self.settings.dwh_lookback_seconds <= 0
            or "dwh" not in plan.starts
        ):
            return None
        start = plan.starts["dwh"]
        compare = plan.reload is None and start is not None and "dwh" not in plan.rereads
        try:
            found = plan_lookback(
                source,
                self.settings,
                start=start if compare and start is not None else self.end,
                end=self.end,
                previous=state.lookback(fv.name) if compare else None,
            )
        except Exception as e:  # the read itself reports a DWH failure; this only costs rows
            logger.info("%s: DWH lookback counts not read (%s): the whole lookback", fv.name, e)
            return None
        self.lookbacks[fv.name] = found.counts
        if not compare:
            return None
        if found.ranges is None:
            logger.info("%s: DWH lookback: all of it (nothing to compare with)", fv.name)
            return None
        if found.written_since is not None:
            logger.info(
                "%s: DWH lookback: the rows written by transactions from %d on or in %s",
                fv.name,
                found.written_since[1][0],
                found.written_since[1][1],
            )
        else:
            logger.info(
                "%s: DWH lookback: %d buckets changed, read again: %s",
                fv.name,
                found.changed,
                found.ranges,
            )
        return found

    def _pull(
        self,
        fv: FeatureView,
        start: datetime | None,
        plan: ViewPlan,
        report: PullReport,
        lookback: LookbackPlan | None = None,
    ) -> Iterator[Any]:
        from xiva_source.pipeline.context import PullOptions
        from xiva_source.pipeline.pull import pull_batches

        assert fv.batch_source is not None  # select_views keeps only views with a batch source
        config = self.store.config
        starts = plan.starts
        # A reload reads everything: no re-read mark applies.
        rereads = plan.rereads if plan.reload is None else {}
        if self.summary.engine == "ray":
            return _pull_on_ray(self, fv, start, starts, rereads, report)
        return pull_batches(
            fv.batch_source,  # type: ignore[arg-type]  # our sources satisfy the pipeline's specs
            settings=self.settings,
            feature_names=[f.name for f in fv.features],
            start_date=start,
            end_date=self.end,
            options=PullOptions.from_repo_config(config),
            chunk_size=config.materialization_config.online_write_batch_size or 10_000,
            report=report,
            source_starts=starts,
            rereads=rereads,
            dwh_lookback=lookback.ranges if lookback is not None else None,
            dwh_written_since=lookback.written_since if lookback is not None else None,
        )

    def _registry_view(self, name: str) -> FeatureView:
        try:
            fv: FeatureView = self.store.registry.get_feature_view(name, self.store.project)
        except Exception as e:  # Feast raises many types for an unreadable registry
            raise RepositoryError(
                f"the registry of project {self.store.project!r} cannot be read: {e}"
            ) from e
        return fv

    def _record(self, fv: FeatureView, view_run: ViewRun) -> None:
        """Store the view's watermarks per source, then move Feast's to the slowest of them."""
        assert self.state is not None
        try:
            self.state.save_view(fv.name, view_run.marks, view_run.mode, view_run.rereads)
            if fv.name in self.lookbacks:  # comparable next time only if the DWH mark moved here
                moved = view_run.marks.get("dwh") == self.end
                self.state.save_lookback(fv.name, self.lookbacks[fv.name] if moved else None)
            if fv.name in self.feast_full:  # a feast materialize read it in full: the sweep
                self.state.save_full_reads([fv.name], self.feast_full[fv.name])
            # Feast's pulls now behind the view's watermarks (or void): their records go.
            self.state.forget(self.consumed.get(fv.name, ()))
        except Exception as e:
            raise OnlineStoreError(f"the run state could not be stored: {e}") from e
        mark = feast_watermark(view_run.marks)
        previous = as_utc(fv.most_recent_end_time) if fv.most_recent_end_time else None
        if mark is None or (previous is not None and mark <= previous):
            return
        try:
            self.store.registry.apply_materialization(
                fv, self.store.project, previous or EPOCH, mark, commit=True
            )
        except Exception as e:  # Feast raises many types for an unwritable registry
            raise RepositoryError(
                f"the materialization interval of {fv.name} could not be recorded in the "
                f"registry: {e}",
                "Check that the registry (feature_store.yaml: registry) is writable.",
            ) from e

    def _rewrote_everything(self) -> bool:
        """True when this run read every online view of the project in full (no window start)."""
        full = {v.name for v in self.summary.views if v.read_everything}
        online = {fv.name for fv in self.store.list_feature_views() if fv.online}
        return bool(online) and online <= full


def _engine(store: FeatureStore) -> str:
    """``ray`` when ``feature_store.yaml`` sets ``batch_engine: ray.engine``, else ``local``."""
    engine = getattr(store.config, "batch_engine_config", None)
    kind = engine.get("type") if isinstance(engine, dict) else getattr(engine, "type", engine)
    return "ray" if kind == "ray.engine" else "local"


def _pull_on_ray(
    run: _Run,
    fv: FeatureView,
    start: datetime | None,
    starts: dict[str, datetime | None],
    rereads: dict[str, datetime | None],
    report: PullReport,
) -> Iterator[Any]:
    """The view's pull read by Ray tasks on Feast's Ray engine's cluster (``ray_address``).

    The same rows as :func:`~xiva_source.pipeline.pull.pull_batches` in-process (a DWH read cut
    by customer range, one task per range; a pull with a Xiva side in one task), written here by
    the job's own writer, so the lock, the watermarks (from the merged report) and partial rows
    written cell by cell are those of a local run (:mod:`xiva_source.feast_plugin.ray_support`).
    """
    from xiva_source.feast_plugin.ray_support import (
        PullSpec,
        connect_ray,
        default_parallelism,
        stream_on_ray,
    )
    from xiva_source.pipeline.context import PullOptions

    config = run.store.config
    connect_ray(config)
    spec = PullSpec(
        source=fv.batch_source,
        settings=run.settings,
        feature_names=tuple(f.name for f in fv.features),
        start=start,
        end=run.end,
        options=PullOptions.from_repo_config(config),
        chunk_size=config.materialization_config.online_write_batch_size or 10_000,
        source_starts=starts,
        rereads=rereads,
    )
    task_options = getattr(config.batch_engine, "worker_task_options", None)
    return stream_on_ray(spec, report, default_parallelism(config), task_options)


def _acquire(lock: MaterializationLock) -> LockHolder | None:
    """``lock.acquire()`` with Redis failures as :class:`OnlineStoreError`."""
    from redis.exceptions import RedisError

    from xiva_source.feast_plugin.foreign_errors import project_error_for

    try:
        return lock.acquire()
    except RedisError as e:
        # MOVED / CLUSTERDOWN from a cluster node: the fix is REDIS_TYPE (foreign_errors says so).
        mapped = project_error_for(e)
        if mapped is not None:
            raise mapped from e
        raise OnlineStoreError.failed(e) from e
