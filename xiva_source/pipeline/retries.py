"""Customers a Xiva pull could not read, retried by the next pull until read or gone.

:class:`PendingRetries` is one pull's view of the pending-retry table
(:mod:`xiva_source.dwh.pending`): it loads who is pending, records new failures at once (an extra
pending row costs one fetch next time, a lost one costs a customer), and forgets the customers
read only in :meth:`commit`, which the pull calls once the consumer has taken their rows (so a run
that fails before writing them online retries them again).

A failure of the table itself never fails the pull: it is logged and reported
(``report.errors["pending"]``), and the customers concerned are retried by a later pull.
"""

from __future__ import annotations

import logging

from xiva_source.dwh import pending as store
from xiva_source.dwh.errors import DwhError
from xiva_source.pipeline.context import PullOptions
from xiva_source.pipeline.report import PullReport
from xiva_source.settings import Settings
from xiva_source.timeutil import Clock, utc_now

__all__ = ["PendingRetries"]

logger = logging.getLogger(__name__)


class PendingRetries:
    """The pending customers of one source, for one pull.

    Args:
        url: Database of the snapshot table.
        table: The pending table (``<snapshot table>_pending``).
        source: The feature source the pull serves (keys the rows).
        report: The pull's report (counts, errors).
        clock: The current time (stamps of failures).
    """

    def __init__(self, url: str, table: str, source: str, report: PullReport, clock: Clock) -> None:
        self.url, self.table, self.source = url, table, source
        self._report = report
        self._clock = clock
        self._loaded: set[str] = set()
        self._to_forget: set[str] = set()
        self._usable = True

    @classmethod
    def beside_snapshots(
        cls,
        settings: Settings,
        options: PullOptions,
        source: str,
        report: PullReport,
        clock: Clock = utc_now,
    ) -> PendingRetries:
        """The pending table beside the pull's snapshot table (same database), for ``source``."""
        return cls(
            options.snapshot_database(settings),
            store.pending_table_name(options.snapshot_table),
            source or "xiva",
            report,
            clock,
        )

    def load(self) -> list[str]:
        """The customers pending from earlier pulls (none when the table cannot be read)."""
        try:
            pending = store.read_pending(self.url, self.table, self.source)
        except DwhError as e:
            self._fail(e)
            return []
        self._loaded = set(pending)
        return sorted(pending)

    @property
    def readable(self) -> bool:
        """The pending table answered (so far): the database of the snapshot table is up."""
        return self._usable

    def is_pending(self, customer_id: str) -> bool:
        """True when the customer was pending at the start of this pull."""
        return customer_id in self._loaded

    def failed(self, failures: dict[str, str]) -> None:
        """Remember customers not read this time (``id -> reason``), now."""
        if not failures:
            return
        for cid in failures:
            self._to_forget.discard(cid)
        try:
            store.remember_pending(self.url, self.table, self.source, failures, now=self._clock())
        except DwhError as e:
            self._fail(e)

    def read(self, customer_id: str) -> None:
        """The customer was read (or is gone): forget it at :meth:`commit`."""
        if customer_id in self._loaded:
            self._to_forget.add(customer_id)

    def keep(self, customer_ids: list[str]) -> None:
        """Read, but not settled (written partially, or not recorded): keep them pending.

        They stay in the table as they were, so the next pull reads them again whether or not
        they change (a customer not pending is read again through the job's re-read mark).
        """
        self._to_forget.difference_update(customer_ids)

    def commit(self) -> None:
        """Forget the customers read so far and count who is still pending (into the report)."""
        if not self._usable:
            self._report.pending_retries = None
            return
        try:
            store.forget_pending(self.url, self.table, self.source, sorted(self._to_forget))
            self._loaded -= self._to_forget
            self._to_forget.clear()
            self._report.pending_retries = store.count_pending(self.url, self.table, self.source)
        except DwhError as e:
            self._fail(e)
            self._report.pending_retries = None

    def _fail(self, error: DwhError) -> None:
        self._usable = False
        self._report.errors["pending"] = str(error)
        logger.info(  # the run's summary line says it (pending_retries=unknown)
            "pending-retry table unavailable (customers not read are retried later): %s", error
        )
