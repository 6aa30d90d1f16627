"""The run report of one pull: what was read from where, and which failures were tolerated."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["FAILED_IDS_KEPT", "Progress", "PullReport", "record_fallback"]

logger = logging.getLogger(__name__)

FAILED_IDS_KEPT = 5
"""How many ids of failed 360 fetches a report keeps (enough to look into, not a flood)."""


class Progress(Protocol):
    """What a pull tells a progress display (the job's bar); customers, not rows."""

    def set_total(self, total: int) -> None:
        """The customers this pull expects to fetch (known after the list's first page)."""
        ...

    def advance(self, n: int = 1) -> None:
        """``n`` more customers handled (read, failed or skipped)."""
        ...


@dataclass
class PullReport:
    """What one pull did; filled in as the pull runs (read it after the iterator is exhausted).

    Attributes:
        mode: ``xiva``, ``dwh`` or ``auto``.
        rows_by_source: Rows read from each source (``xiva``, ``dwh``).
        xiva_calls: Xiva HTTP requests made by the pull (auth and retries included).
        xiva_throttled: Of them, the answers ``429`` (Xiva's rate limit).
        fallbacks: One sentence per source that failed in ``auto`` mode and was skipped.
        failed_customers: Customers whose 360 fetch failed (below the failure threshold).
        errors: Source (or ``snapshot``) -> the error that was tolerated.
        failed_customer_ids: The first few customers whose 360 fetch failed.
        pending_retries: Customers waiting for a retry after this pull (failed or malformed,
            this run or before); ``None`` when the pending table could not be read.
        retried: Customers pending from earlier runs that this pull fetched again.
        recovered: Of those, the ones read successfully (no longer pending).
        gone: Customers Xiva answered 404 for (deleted): forgotten, not failed.
        gone_ids: The first few of them.
        malformed: Records skipped as malformed (bad or future ``lastUpdate``, a field of the
            wrong type); they stay pending for retry.
        malformed_ids: The first few of them.
        late_changes: Changes stamped before the window start (inside the overlap) that the
            previous pull had not recorded: they arrived late, the overlap caught them.
        max_lateness_seconds: How far before the window start the latest of them was stamped.
        overlap_seconds: The overlap this pull re-read.
        reread: Sources this pull read again from the job's re-read mark (their rows of an
            earlier run were not settled, and the parts that settle them answered).
        dwh_lookback_rows: DWH rows read from before the window start (the lookback re-reading
            what may have arrived late; ``jobs.lookback`` keeps it to where counts changed).
        xiva_clock_skew_seconds: How far Xiva's clock runs ahead of this host's (negative:
            behind), measured from its ``Date`` header; the pull's window followed it.
            ``None``: not measured (no Xiva pull, or no ``Date`` header).
        progress: Where the pull reports progress (the job's bar), if anywhere.
    """

    mode: str = ""
    rows_by_source: dict[str, int] = field(default_factory=dict)
    xiva_calls: int = 0
    xiva_throttled: int = 0
    fallbacks: list[str] = field(default_factory=list)
    failed_customers: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    failed_customer_ids: list[str] = field(default_factory=list)
    pending_retries: int | None = 0
    retried: int = 0
    recovered: int = 0
    gone: int = 0
    gone_ids: list[str] = field(default_factory=list)
    malformed: int = 0
    malformed_ids: list[str] = field(default_factory=list)
    late_changes: int = 0
    max_lateness_seconds: float = 0.0
    overlap_seconds: float = 0.0
    reread: list[str] = field(default_factory=list)
    dwh_lookback_rows: int = 0
    xiva_clock_skew_seconds: float | None = None
    progress: Progress | None = field(default=None, repr=False, compare=False)

    def add_rows(self, source: str, n: int) -> None:
        """Count ``n`` rows read from ``source``."""
        self.rows_by_source[source] = self.rows_by_source.get(source, 0) + n

    def add_failed_customers(self, ids: list[str]) -> None:
        """Count customers whose 360 fetch failed; keep the first :data:`FAILED_IDS_KEPT` ids."""
        self.failed_customers += len(ids)
        _keep_first(self.failed_customer_ids, ids)

    def add_malformed(self, customer_id: str) -> None:
        """Count one malformed record; keep the first :data:`FAILED_IDS_KEPT` ids."""
        self.malformed += 1
        if len(self.malformed_ids) < FAILED_IDS_KEPT:
            self.malformed_ids.append(customer_id)

    def add_gone(self, customer_id: str) -> None:
        """Count one customer Xiva no longer has; keep the first :data:`FAILED_IDS_KEPT` ids."""
        self.gone += 1
        if len(self.gone_ids) < FAILED_IDS_KEPT:
            self.gone_ids.append(customer_id)

    def add_late(self, lateness_seconds: float) -> None:
        """Count one late change, stamped ``lateness_seconds`` before the window start."""
        self.late_changes += 1
        self.max_lateness_seconds = max(self.max_lateness_seconds, lateness_seconds)

    def merge(self, other: PullReport) -> None:
        """Add ``other`` to this report: the parts of one pull (Ray tasks), or a run's pulls.

        Counts add up; ``pending_retries`` is unknown (``None``) when either is, else summed
        (views reading different sources each count their own); the lateness and the overlap
        are the larger (the clock skew: the larger in size); fallbacks and re-read sources are
        joined (each once),
        errors updated; the id lists keep their first :data:`FAILED_IDS_KEPT`; ``mode`` stays
        this report's when it has one.
        ``progress`` is this report's own.

        Args:
            other: The report added (left unchanged).
        """
        self.mode = self.mode or other.mode
        for source, n in other.rows_by_source.items():
            self.add_rows(source, n)
        self.xiva_calls += other.xiva_calls
        self.xiva_throttled += other.xiva_throttled
        self.fallbacks.extend(f for f in other.fallbacks if f not in self.fallbacks)
        self.failed_customers += other.failed_customers
        self.errors.update(other.errors)
        _keep_first(self.failed_customer_ids, other.failed_customer_ids)
        if self.pending_retries is None or other.pending_retries is None:
            self.pending_retries = None
        else:
            self.pending_retries += other.pending_retries
        self.retried += other.retried
        self.recovered += other.recovered
        self.gone += other.gone
        _keep_first(self.gone_ids, other.gone_ids)
        self.malformed += other.malformed
        _keep_first(self.malformed_ids, other.malformed_ids)
        self.late_changes += other.late_changes
        self.max_lateness_seconds = max(self.max_lateness_seconds, other.max_lateness_seconds)
        self.overlap_seconds = max(self.overlap_seconds, other.overlap_seconds)
        self.reread.extend(s for s in other.reread if s not in self.reread)
        self.dwh_lookback_rows += other.dwh_lookback_rows
        skews = [s for s in (self.xiva_clock_skew_seconds, other.xiva_clock_skew_seconds) if s]
        if skews or other.xiva_clock_skew_seconds is not None:
            self.xiva_clock_skew_seconds = max(skews, key=abs) if skews else 0.0


def _keep_first(ids: list[str], more: list[str]) -> None:
    """Append ``more`` to ``ids`` up to :data:`FAILED_IDS_KEPT` ids in all."""
    ids.extend(more[: max(0, FAILED_IDS_KEPT - len(ids))])


def record_fallback(report: PullReport, failed: str, serving: str, error: BaseException) -> None:
    """Record (report + INFO log: the summary line says it) that ``failed`` was skipped.

    Args:
        report: The pull's report.
        failed: The source that failed (``xiva`` or ``dwh``).
        serving: The source the pull serves from instead.
        error: What ``failed`` raised.
    """
    message = f"{failed} failed, serving from {serving} only: {error}"
    report.fallbacks.append(message)
    report.errors[failed] = str(error)
    logger.info("auto mode fallback: %s", message)
