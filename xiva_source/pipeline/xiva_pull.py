"""Pull from Xiva, streamed: changed and pending customers -> 360 views -> rows, chunk by chunk.

The customer list is read lazily, its ids flow into a bounded window of concurrent 360 fetches
(:func:`~xiva_source.xiva_api.fanout.fetch_concurrently`), each view goes through the extractor,
and every ``chunk_size`` customers become one Arrow table, appended to the snapshot table and
yielded: memory holds one chunk (plus the ids the list cursor has seen), however many customers.

Per customer:

- read: a row (event timestamp = its ``lastUpdate``); if it was pending, forgotten at commit;
- 360 fetch failed: skipped, remembered in the pending-retry table (:mod:`~.retries`) with the
  reason, fetched again by the next pull whether it changed or not;
- 404: gone from Xiva (deleted since it was listed or pending): forgotten and reported, not failed;
- malformed (``lastUpdate`` missing, unparsable or further in the future than the overlap, a
  field of the wrong type, or the view answering another customer's record: its ``customer.id``
  differs from the id asked for, so it is written under neither): skipped, reported and kept
  pending: a wrong value is worse than a missing one, and one bad record never fails the view.

A pull that cannot finish stops cleanly, never hangs: when Xiva stops answering (the client's
circuit breaker opens: no more customers are asked for) or the run passes
``XIVA_RUN_DEADLINE_SECONDS``, the customers read so far are yielded (kept), the failed ones are
pending, and the pull raises :class:`~xiva_source.errors.DataSourceError`: the watermark does not
move, so the next run lists the window again and fetches the rest.

The window is on Xiva's clock: the job's window (this host's clock) shifted by the skew the
``Date`` header of Xiva's answers shows (:meth:`~xiva_source.xiva_api.client.XivaClient.
clock_skew`; ``report.xiva_clock_skew_seconds``), so a Xiva clock behind or ahead of ours by more
than the overlap loses no change.

Changes stamped before the window start minus the overlap cannot be listed (``lastUpdate.gte``):
what can be seen is how late the changes inside the overlap arrived (stamped before the previous
pull's end, not in its snapshot); they are counted, with the worst lateness, so an operator can
widen ``XIVA_PULL_OVERLAP_SECONDS`` or run ``--full`` before changes fall out of the overlap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from xiva_source import dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP
from xiva_source.pipeline.context import PullContext
from xiva_source.pipeline.report import FAILED_IDS_KEPT
from xiva_source.pipeline.retries import PendingRetries
from xiva_source.pipeline.tables import concat, conform
from xiva_source.settings import DataSourceMode
from xiva_source.timeutil import as_utc, parse_iso
from xiva_source.xiva_api.errors import XivaCircuitOpenError, XivaError, XivaNotFoundError
from xiva_source.xiva_api.server_clock import PRECISION

if TYPE_CHECKING:
    from xiva_source.xiva_api.client import XivaClient

__all__ = ["SNAPSHOT", "iter_xiva", "pull_xiva", "window_end"]

logger = logging.getLogger(__name__)

SNAPSHOT = "snapshot"
"""``PullReport.errors`` key: the snapshot table failed (a chunk not recorded, or unreadable).
The pull's rows are then not *settled*: the job keeps a re-read mark at this pull's start, from
which a later pull reads Xiva again (:func:`xiva_source.jobs.plan.rereads_after`), and the
pending customers among them stay pending."""


def iter_xiva(ctx: PullContext, *, commit_retries: bool | None = None) -> Iterator[pa.Table]:
    """Every customer changed in ``[ctx.start - overlap, ctx.end]`` and every pending one, streamed.

    Args:
        ctx: The pull (settings, options, window, types, report, clock, retries).
        commit_retries: Forget the pending customers read as soon as the consumer took their
            chunk. Default: when ``ctx.retries`` is ``None`` (this pull owns its retry store);
            otherwise whoever set ``ctx.retries`` commits it.

    Yields:
        Tables of at most ``ctx.chunk_size`` rows: ``customer_id``, every Xiva feature
        (``feature_schema()``), ``event_timestamp`` (UTC).

    Raises:
        DataSourceError: Xiva failed (the list failed, or more than ``max_failed_fraction`` of
            the 360 fetches failed; chunks already yielded hold true values).
    """
    from xiva_source.xiva_api.client import XivaClient

    retries = ctx.retries or PendingRetries.beside_snapshots(
        ctx.settings, ctx.options, "", ctx.report, ctx.clock
    )
    commit = ctx.retries is None if commit_retries is None else commit_retries
    client = XivaClient(settings=ctx.settings, clock=ctx.clock)
    try:
        yield from _XivaPull(ctx, client, retries, commit).run()
    except XivaError as e:
        fix = e.fix
        if ctx.settings.feature_store_data_source != DataSourceMode.AUTO:
            fix += " Meanwhile FEATURE_STORE_DATA_SOURCE=auto serves the DWH's values."
        raise DataSourceError("xiva", e.problem, hint=fix) from e
    finally:
        ctx.report.xiva_calls += client.counts.requests
        ctx.report.xiva_throttled += client.counts.throttled
        client.close()


def window_end(ctx: PullContext) -> datetime:
    """The pull's window end on Xiva's clock, once the pull measured the skew (else ``ctx.end``).

    The measured skew is a lower bound (:mod:`xiva_source.xiva_api.server_clock`): the end moves
    by its upper bound, so a change stamped just before the run is in it, not deferred. Whatever
    reads the snapshots this pull recorded (``auto``'s last known values) ends there too.
    """
    skew = ctx.report.xiva_clock_skew_seconds
    if skew is None:
        return ctx.end
    return ctx.end + timedelta(seconds=skew) + PRECISION


def pull_xiva(ctx: PullContext) -> pa.Table:
    """The whole Xiva pull as one table (``auto`` mode keeps Xiva's side in memory to merge).

    Pending customers read are forgotten only when ``ctx.retries`` is committed by the caller
    (``pull_batches`` does, after the last chunk); without ``ctx.retries`` they are kept
    pending (retried once more next time, never lost).
    """
    tables = list(iter_xiva(ctx, commit_retries=False))
    return concat(tables) or conform(None, _names(), ctx.feature_types)


def _names() -> list[str]:
    from xiva_source.features.extractor import feature_schema

    return list(feature_schema())


class _XivaPull:
    """One streamed Xiva pull: its ids, its chunk, its failures."""

    def __init__(
        self, ctx: PullContext, client: XivaClient, retries: PendingRetries, commit: bool
    ) -> None:
        self.ctx, self.client, self.retries, self.commit = ctx, client, retries, commit
        self.names = _names()
        self.columns = [ENTITY, *self.names, EVENT_TIMESTAMP]
        self.overlap = ctx.options.overlap_seconds(ctx.settings)
        ctx.report.overlap_seconds = self.overlap
        # The window on Xiva's clock (it stamps lastUpdate): set by _start_window.
        self.skew = timedelta(0)
        self.start, self.end = ctx.start, ctx.end
        self.late_from = ctx.start  # changes stamped before it (and unrecorded) arrived late
        # A lastUpdate further ahead of Xiva's clock than the overlap is not skew: it is wrong.
        self.future = timedelta(seconds=self.overlap)
        self.listed = 0  # customers whose 360 view was asked for (listed and pending)
        self.failed: list[str] = []
        self.first_error: XivaError | None = None
        self.rows: list[list[Any]] = []
        self.chunk_failures: dict[str, str] = {}
        self.in_overlap: dict[str, datetime] = {}
        self.run_deadline = ctx.settings.xiva_run_deadline_seconds
        self.started = time.monotonic()
        self.stopped: str | None = None  # why no more customers are asked for

    def run(self) -> Iterator[pa.Table]:
        ctx = self.ctx
        pending = self.retries.load()
        try:
            self._start_window()
            ids = self._ids(pending)
            for cid, result in self.client.iter_customers_360(
                ids, max_workers=ctx.settings.xiva_max_workers
            ):
                self._handle(cid, result)
                if ctx.report.progress is not None:
                    ctx.report.progress.advance(1)
                if len(self.rows) >= ctx.chunk_size:
                    yield from self._flush()
        except XivaError:
            yield from self._flush(last=True)  # what was read is kept, the failed stay pending
            raise
        yield from self._flush(last=True)
        if self.stopped is not None:
            kept = ctx.report.rows_by_source.get("xiva", 0)
            raise DataSourceError(
                "xiva",
                f"the pull stopped early: {self.stopped}; {kept} "
                f"customers read were kept, {len(self.failed)} failed ones are pending a retry",
                hint="The next run lists this window again and fetches the rest; check Xiva's "
                "health, or raise XIVA_RUN_DEADLINE_SECONDS if the pull only needs longer.",
            )
        attempted = self.listed
        if self.failed and len(self.failed) > ctx.options.max_failed_fraction * max(1, attempted):
            error = self.first_error.problem if self.first_error else "unknown"
            raise DataSourceError(
                "xiva",
                f"{len(self.failed)} of {attempted} customer 360 fetches failed (first: "
                f"{', '.join(self.failed[:FAILED_IDS_KEPT])}; e.g. {error})",
                hint="Xiva is failing too often to trust this pull (the customers read are "
                "online, the failed ones are retried by the next run); check its status and "
                "XIVA_REQUESTS_PER_SECOND"
                + (
                    "."
                    if ctx.settings.feature_store_data_source == DataSourceMode.AUTO
                    else ", or set FEATURE_STORE_DATA_SOURCE=auto meanwhile."
                ),
            )
        if self.failed:  # the summary line counts them (failed_customers=): details at INFO
            logger.info(
                "Xiva pull: %d of %d customer 360 fetches failed and were skipped (first: %s); "
                "they are retried by the next run",
                len(self.failed),
                attempted,
                ", ".join(self.failed[:FAILED_IDS_KEPT]),
            )

    # -- which customers -------------------------------------------------------------------------

    def _start_window(self) -> None:
        """Where the pull starts: the re-read mark when it can settle it; on Xiva's clock.

        A re-read mark (``ctx.rereads``: the job's, for rows an earlier pull could not merge
        or record) is used when the snapshot database answers (the pending table was read; a
        caller that merges with the DWH passes the mark only when the DWH answers too), else
        the watermark: re-reading could not settle anything yet.

        The job's window is on this host's clock; Xiva stamps ``lastUpdate`` on its own. A Xiva
        running 30 minutes behind stamps a change made just after the previous run 30 minutes
        before that run's end: outside a 15-minute overlap, lost. Shifted by the measured skew,
        the window holds every change whatever the skew (:mod:`xiva_source.xiva_api.server_clock`).
        """
        ctx = self.ctx
        start = ctx.start
        if "xiva" in ctx.rereads and (not ctx.options.write_snapshots or self.retries.readable):
            again = ctx.rereads["xiva"]
            start = None if start is None or again is None else min(start, again)
            ctx.report.reread.append("xiva")
            self.late_from = None  # the snapshot table is known to miss them: not "late"
            logger.info(
                "Xiva read again from %s: rows of an earlier run were not settled",
                "the beginning" if start is None else start.isoformat(),
            )
        measured = self.client.clock_skew()
        if measured is not None:
            self.skew = measured
            ctx.report.xiva_clock_skew_seconds = measured.total_seconds()
            if abs(measured.total_seconds()) >= 1:
                logger.info(
                    "Xiva's clock runs %.0f s %s this host's: the pull window follows Xiva's",
                    abs(measured.total_seconds()),
                    "ahead of" if measured > timedelta(0) else "behind",
                )
        self.start = None if start is None else start + self.skew
        if self.late_from is not None:
            self.late_from += self.skew
        self.end = window_end(ctx)

    def _ids(self, pending: list[str]) -> Iterator[str]:
        """The listed customers in the window, then the pending ones the list did not hold."""
        report = self.ctx.report
        left = dict.fromkeys(pending)
        since = None if self.start is None else self.start - timedelta(seconds=self.overlap)
        cursor = self.client.iter_customers(updated_since=since)
        first = True
        for customer in cursor:
            if self._should_stop():
                return
            if first and report.progress is not None and cursor.total is not None:
                report.progress.set_total(cursor.total + len(left))  # no count: no ETA
            first = False
            cid = customer["id"]
            if cid in left:
                del left[cid]
                report.retried += 1  # pending and changed again: fetched once, as a listed one
            try:
                updated = parse_iso(customer.get("lastUpdate"))
            except (TypeError, ValueError):
                updated = None  # the 360 view decides (it is re-read there)
            if updated is not None and updated > self.end and not self._future(updated):
                continue  # changed after this window's end: the next run's window holds it
            self.listed += 1
            yield cid
        if first and report.progress is not None:
            report.progress.set_total(len(left))
        for cid in left:
            if self._should_stop():
                return  # the rest stay pending, untouched
            report.retried += 1
            self.listed += 1
            yield cid

    def _should_stop(self) -> bool:
        """True when no more customers should be asked for (Xiva gone, or past the deadline)."""
        if (
            self.stopped is None
            and self.run_deadline
            and (time.monotonic() - self.started > self.run_deadline)
        ):
            self.stopped = f"XIVA_RUN_DEADLINE_SECONDS={self.run_deadline:g} s passed"
            logger.info("Xiva pull: %s; no more customers are fetched", self.stopped)
        return self.stopped is not None

    def _future(self, moment: datetime) -> bool:
        return moment > self.ctx.clock() + self.skew + self.future

    # -- one customer ----------------------------------------------------------------------------

    def _handle(self, cid: str, result: dict[str, Any] | XivaError) -> None:
        report = self.ctx.report
        if isinstance(result, XivaNotFoundError):
            report.add_gone(cid)
            self.retries.read(cid)
            return
        if isinstance(result, XivaCircuitOpenError) and self.stopped is None:
            self.stopped = "Xiva stopped answering (its circuit breaker opened)"
            logger.info("Xiva pull: %s; no more customers are fetched", self.stopped)
        if isinstance(result, XivaError):
            self.failed.append(cid)
            report.add_failed_customers([cid])
            self.first_error = self.first_error or result
            self.chunk_failures[cid] = f"360 fetch failed: {result.problem}"
            return
        problems: list[str] = []
        values = _extract(result, cid, self.ctx.end, problems)
        raw_ts = values.get(EVENT_TIMESTAMP)
        ts = as_utc(raw_ts) if isinstance(raw_ts, datetime) else None
        if ts is None and not problems:
            problems.append("lastUpdate missing")
        elif ts is not None and self._future(ts):
            problems.insert(0, f"lastUpdate {ts.isoformat()} is in the future")
        if problems or ts is None:
            report.add_malformed(cid)
            self.chunk_failures[cid] = "malformed record: " + "; ".join(problems)
            logger.info("Xiva customer %s skipped, malformed: %s", cid, "; ".join(problems))
            return
        if ts > self.end:
            return  # changed after the window's end (a pending one stays pending): next run
        values[EVENT_TIMESTAMP] = ts
        if self.retries.is_pending(cid):
            report.recovered += 1
        elif self.late_from is not None and ts < self.late_from:
            self.in_overlap[cid] = ts
        self.retries.read(cid)
        self.rows.append([values.get(c) for c in self.columns])

    # -- one chunk -------------------------------------------------------------------------------

    def _flush(self, *, last: bool = False) -> Iterator[pa.Table]:
        ctx = self.ctx
        self.retries.failed(self.chunk_failures)
        self.chunk_failures = {}
        if self.rows:
            table = dwh.rows_to_arrow(self.columns, self.rows, types=ctx.feature_types)
            self.rows = []
            self._count_late(table)
            ctx.report.add_rows("xiva", table.num_rows)
            if ctx.options.write_snapshots:
                self._record_snapshot(table)
            yield table
        if self.commit:
            # Only now did the consumer take the chunk: the customers read may leave the table.
            self.retries.commit()
        if last and not self.commit and ctx.retries is None:
            ctx.report.pending_retries = None  # not committed by anyone: count unknown

    def _count_late(self, table: pa.Table) -> None:
        """Count changes inside the overlap that the previous pull had not recorded."""
        ctx = self.ctx
        if not self.in_overlap or not ctx.options.write_snapshots or self.late_from is None:
            self.in_overlap = {}
            return
        ids, self.in_overlap = self.in_overlap, {}
        try:
            known = dwh.read_latest_snapshots(
                ctx.options.snapshot_database(ctx.settings),
                ctx.options.snapshot_table,
                list(ids),
                [],
                end_date=self.end,
            )
        except DwhError as e:
            ctx.report.errors[SNAPSHOT] = str(e)
            return
        recorded: dict[str, datetime] = {}
        if known is not None:
            for cid, ts in zip(
                known.column(ENTITY).to_pylist(),
                known.column(EVENT_TIMESTAMP).to_pylist(),
                strict=True,
            ):
                recorded[cid] = as_utc(ts)
        for cid, ts in ids.items():
            seen = recorded.get(cid)
            if seen is None or seen < ts:
                ctx.report.add_late((self.late_from - ts).total_seconds())

    def _record_snapshot(self, table: pa.Table) -> None:
        """Append the chunk to the snapshot table; a failure is reported, not raised."""
        ctx = self.ctx
        try:
            dwh.append_snapshots(
                ctx.options.snapshot_database(ctx.settings),
                ctx.options.snapshot_table,
                table,
                {n: ctx.feature_types[n] for n in self.names},
            )
        except DwhError as e:
            ctx.report.errors[SNAPSHOT] = str(e)
            # Read but not recorded: a pending customer among them is read again next run.
            self.retries.keep(table.column(ENTITY).to_pylist())
            logger.info("Xiva pull not recorded in the snapshot table: %s", e)  # in the line


def _extract(
    view: dict[str, Any], customer_id: str, now: datetime, problems: list[str]
) -> dict[str, Any]:
    """``customer_id``'s row from ``view``; ``{}`` (and the problem) for another's record."""
    from xiva_source.features.extractor import features_from_360, wrong_customer

    swapped = wrong_customer(view, customer_id)
    if swapped is not None:  # written under neither id: malformed, pending a retry
        problems.append(swapped)
        return {}
    values = features_from_360(view, now=now, problems=problems)
    values[ENTITY] = customer_id
    return values
