"""What a materialization run did: per view (:class:`ViewRun`) and in total (:class:`RunSummary`).

:meth:`RunSummary.line` is the one line every run prints; its format is part of the operations
contract (docs/operations.md: cron logs are grepped for it), so change it only with the docs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from xiva_source.redaction import redact

if TYPE_CHECKING:
    from xiva_source.jobs.locks import LockHolder
    from xiva_source.pipeline.report import PullReport

__all__ = ["RunStatus", "RunSummary", "ViewRun"]

RunStatus = Literal["ok", "skipped", "failed"]
"""``ok``, ``skipped`` (another run holds the lock) or ``failed``."""


@dataclass
class ViewRun:
    """What one run did for one feature view."""

    name: str
    """Feature view name."""
    start: datetime | None
    """Window start: the oldest source start (``None``: a source read everything)."""
    end: datetime
    """Window end (the run's end date)."""
    rows: int = 0
    """Rows written to the online store."""
    starts: dict[str, datetime | None] = field(default_factory=dict)
    """Each source's start (``xiva``, ``dwh``; ``None``: from the beginning)."""
    partial_rows: int = 0
    """Rows written partially (one source unknown: only the cells the other owns)."""
    marks: dict[str, datetime | None] = field(default_factory=dict)
    """Each source's watermark after the run (a failed source keeps its old one)."""
    mode: str = ""
    """The mode recorded for the view (a change reloads it)."""

    @property
    def read_everything(self) -> bool:
        """Every source read from the beginning and was served (so every customer was written)."""
        return bool(self.starts) and all(
            self.starts[s] is None and self.marks.get(s) is not None for s in self.starts
        )


@dataclass
class RunSummary:
    """The outcome of one run; :meth:`line` is the one line the job prints.

    Example:
        >>> RunSummary(status="ok", mode="dwh", rows_by_source={"dwh": 3}).line()
        'materialize ok mode=dwh rows dwh=3 views=0 xiva_calls=0 fallbacks=0 failed_customers=0 pending_retries=0 malformed=0 partial=0 reload=no duration=0.0s'
    """  # noqa: E501

    status: RunStatus
    """``ok``, ``skipped`` (another run holds the lock) or ``failed``."""
    mode: str
    """The data-source mode the run used (``xiva``, ``dwh`` or ``auto``)."""
    views: list[ViewRun] = field(default_factory=list)
    """Views materialized (for a failed run: the ones that finished)."""
    rows_by_source: dict[str, int] = field(default_factory=dict)
    """Rows read per source, summed over the views."""
    xiva_calls: int = 0
    """HTTP calls made to Xiva."""
    fallbacks: list[str] = field(default_factory=list)
    """One sentence per fallback in ``auto`` mode (e.g. ``xiva failed (...), served from dwh``)."""
    kept_views: list[str] = field(default_factory=list)
    """Views that read only a source that failed in ``auto`` mode: they kept their old values."""
    failed_customers: int = 0
    """Customers whose Xiva data could not be read (served from the other source, or skipped)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Per-source error messages the pull reported (and ``expiry`` when that step failed)."""
    pending_retries: int | None = 0
    """Xiva customers waiting for a retry after the run (``None``: the pending table failed)."""
    retried: int = 0
    """Pending customers from earlier runs fetched again; ``recovered`` of them were read."""
    recovered: int = 0
    """Pending customers read at last (no longer pending)."""
    gone: int = 0
    """Customers Xiva answered 404 for: forgotten (deleted in Xiva)."""
    gone_ids: list[str] = field(default_factory=list)
    """The first few of them."""
    malformed: int = 0
    """Xiva records skipped as malformed (kept pending for retry)."""
    malformed_ids: list[str] = field(default_factory=list)
    """The first few of them."""
    late_changes: int = 0
    """Xiva changes the overlap caught that the previous run had not seen (they arrived late)."""
    max_lateness_seconds: float = 0.0
    """How far before the window start the latest of them was stamped."""
    overlap_seconds: float = 0.0
    """The Xiva re-read overlap the run used."""
    partial_views: list[str] = field(default_factory=list)
    """Views written partially because a source failed (their other cells kept their values)."""
    reload: str = "no"
    """Why the run read everything: ``no``, ``full`` (asked), ``wiped`` (marker missing),
    ``mode`` (a view's data-source mode changed)."""
    reload_reason: str | None = None
    """For ``wiped``: what the run found."""
    warnings: list[str] = field(default_factory=list)
    """What the operator should know (an empty pull that kept a watermark, ...)."""
    expiry_extended: int = 0
    """Entity keys whose online expiry was extended after the run."""
    duration: float = 0.0
    """Seconds the run took."""
    holder: LockHolder | None = None
    """For a skipped run: who holds the lock."""
    error: str | None = None
    """For a failed run: the cause and the fix (``<cause> Fix: <fix>``)."""

    def absorb(self, report: PullReport) -> None:
        """Add one pull's Xiva retry, malformed and lateness counts to the run's."""
        if report.pending_retries is None or self.pending_retries is None:
            self.pending_retries = None
        else:
            # Counted after the pull; views reading different sources each have their own.
            self.pending_retries += report.pending_retries
        self.retried += report.retried
        self.recovered += report.recovered
        self.gone += report.gone
        self.gone_ids.extend(report.gone_ids[: max(0, 5 - len(self.gone_ids))])
        self.malformed += report.malformed
        self.malformed_ids.extend(report.malformed_ids[: max(0, 5 - len(self.malformed_ids))])
        self.late_changes += report.late_changes
        self.max_lateness_seconds = max(self.max_lateness_seconds, report.max_lateness_seconds)
        self.overlap_seconds = max(self.overlap_seconds, report.overlap_seconds)

    @property
    def rows(self) -> int:
        """Rows written to the online store, over all views."""
        return sum(view.rows for view in self.views)

    @property
    def exit_code(self) -> int:
        """0 for ``ok`` and ``skipped``, 1 for ``failed``."""
        return 1 if self.status == "failed" else 0

    def line(self) -> str:
        """The run's summary line (no secrets: every message is redacted)."""
        if self.status == "skipped":
            held = f" ({self.holder.describe()})" if self.holder else ""
            return f"skipped: another materialization holds the lock{held}"
        sources = " ".join(f"{name}={n}" for name, n in sorted(self.rows_by_source.items()))
        text = (
            f"materialize {self.status} mode={self.mode} rows {sources or 'none=0'} "
            f"views={len(self.views)} xiva_calls={self.xiva_calls} "
            f"fallbacks={len(self.fallbacks)} failed_customers={self.failed_customers} "
            f"pending_retries={'unknown' if self.pending_retries is None else self.pending_retries}"
            f" malformed={self.malformed} partial={len(self.partial_views)} reload={self.reload}"
            f" duration={self.duration:.1f}s"
        )
        for fallback in self.fallbacks:
            text += f"; fallback: {fallback}"
        if self.reload_reason:
            text += f"; reload: {self.reload_reason}"
        for warning in self.warnings:
            text += f"; warning: {warning}"
        text += self._xiva_clauses()
        if "expiry" in self.errors:
            text += f"; warning: online expiry not extended: {self.errors['expiry']}"
        if self.error:
            text += f"; error: {self.error}"
        return redact(text)

    def _xiva_clauses(self) -> str:
        """What the Xiva pull tolerated, one clause each (only when it happened)."""
        text = ""
        if self.retried:
            text += f"; retried: {self.recovered} of {self.retried} pending customers read"
        if self.malformed:
            text += f"; malformed: {', '.join(self.malformed_ids)} (skipped, retried next run)"
        if self.gone:
            text += f"; gone: {self.gone} customers no longer in Xiva ({', '.join(self.gone_ids)})"
        if self.late_changes:
            text += (
                f"; late: {self.late_changes} changes up to {self.max_lateness_seconds:.0f} s late "
                f"(overlap {self.overlap_seconds:.0f} s)"
            )
        if "pending" in self.errors:
            text += f"; warning: pending-retry table: {self.errors['pending']}"
        return text
