"""What a materialization run did: per view (:class:`ViewRun`) and in total (:class:`RunSummary`).

:meth:`RunSummary.line` is the one line every run prints; its format is part of the operations
contract (docs/operations.md: cron logs are grepped for it), so change it only with the docs.

The exit status (:attr:`RunSummary.exit_code`): 0 ok (or skipped), 1 failed, 3 completed but
degraded (:attr:`RunSummary.degraded_reasons`: a fallback was used, or customers are pending a
retry), 4 stopped on a corrupted run state; with ``fail_on_fallback`` a fallback is a failure
(1). Exit 2 (usage, configuration) is raised before a run exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from xiva_source.feast_plugin.errors import EXIT_CORRUPTED_STATE
from xiva_source.pipeline.report import PullReport
from xiva_source.redaction import redact
from xiva_source.timeutil import to_iso

if TYPE_CHECKING:
    from xiva_source.jobs.locks import LockHolder

__all__ = [
    "CLOCK_SKEW_NOTED_SECONDS",
    "EXIT_DEGRADED",
    "EXIT_FAILED",
    "EXIT_OK",
    "STEPS",
    "RunStatus",
    "RunSummary",
    "StepCost",
    "ViewRun",
]

logger = logging.getLogger(__name__)

STEPS = ("load", "plan", "pulls", "writes", "expiry", "state")
"""The steps whose cost the line gives at ``--log-level INFO``, in this order: ``load`` (the
repository, the online store's client), ``plan`` (the state, the windows, the DWH lookback
counts), ``pulls`` (reading the sources), ``writes`` (into the online store), ``expiry`` (the
sweep), ``state`` (watermarks, registry, the run's record, the marker)."""

RunStatus = Literal["ok", "skipped", "failed"]
"""``ok``, ``skipped`` (another run holds the lock) or ``failed``."""

EXIT_OK, EXIT_FAILED, EXIT_DEGRADED = 0, 1, 3
"""The run's exit statuses (2, usage or configuration, never reaches a summary)."""

CLOCK_SKEW_NOTED_SECONDS = 60.0
"""A Xiva clock this far (or farther) from this host's is named on the line (the pull followed
it: no change is lost, but the operator should know, e.g. to fix NTP on one side)."""


@dataclass
class StepCost:
    """What one step of a run cost: wall time, and how much it handled."""

    seconds: float = 0.0
    """Wall time spent in the step (summed over views)."""
    count: int = 0
    """What it handled (:attr:`unit`)."""
    unit: str = ""
    """``rows``, ``keys``, ``views``, ... (empty: time only)."""

    def text(self) -> str:
        """``1.23s`` or ``1.23s/456rows``."""
        amount = f"/{self.count}{self.unit}" if self.unit else ""
        return f"{self.seconds:.2f}s{amount}"


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
    rereads: dict[str, datetime | None] = field(default_factory=dict)
    """Sources the next run reads again from a moment (``None``: the beginning) because their
    rows were not settled (:func:`xiva_source.jobs.plan.rereads_after`)."""
    mode: str = ""
    """The mode recorded for the view (a change reloads it)."""
    rows_by_source: dict[str, int] = field(default_factory=dict)
    """Rows read per source for this view."""
    duration: float = 0.0
    """Seconds the view took."""

    @property
    def read_everything(self) -> bool:
        """Every source read from the beginning and was served (so every customer was written)."""
        return bool(self.starts) and all(
            self.starts[s] is None and self.marks.get(s) is not None for s in self.starts
        )


@dataclass
class RunSummary:
    """The outcome of one run; :meth:`line` is the one line the job prints.

    What the run read (rows per source, Xiva calls, fallbacks, failed, pending, malformed and
    late customers) is :attr:`report`: every view's pull report merged
    (:meth:`~xiva_source.pipeline.report.PullReport.merge`).

    Example:
        >>> from xiva_source.pipeline.report import PullReport
        >>> RunSummary(status="ok", mode="dwh", report=PullReport(rows_by_source={"dwh": 3})).line()
        'materialize ok mode=dwh rows dwh=3 views=0 xiva_calls=0 fallbacks=0 failed_customers=0 pending_retries=0 malformed=0 partial=0 reload=no engine=local duration=0.0s'
    """  # noqa: E501

    status: RunStatus
    """``ok``, ``skipped`` (another run holds the lock) or ``failed``."""
    mode: str
    """The data-source mode the run used (``xiva``, ``dwh`` or ``auto``)."""
    views: list[ViewRun] = field(default_factory=list)
    """Views materialized (for a failed run: the ones that finished)."""
    report: PullReport = field(default_factory=PullReport)
    """The views' pull reports merged; its ``fallbacks`` also name the views kept in ``auto``
    mode (e.g. ``dwh failed, v kept its previous values``)."""
    kept_views: list[str] = field(default_factory=list)
    """Views that read only a source that failed in ``auto`` mode: they kept their old values."""
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
    expiry_error: str | None = None
    """Why the online expiry could not be extended (the run's outcome stands)."""
    duration: float = 0.0
    """Seconds the run took."""
    holder: LockHolder | None = None
    """For a skipped run: who holds the lock."""
    error: str | None = None
    """For a failed run: the cause and the fix (``<cause> Fix: <fix>``)."""
    fail_on_fallback: bool = False
    """A fallback makes the run fail (exit 1) instead of degraded (exit 3)."""
    failed_view: str | None = None
    """For a failed run: the view it failed on (``None``: before or after the views)."""
    state_corrupted: bool = False
    """The run stopped on a corrupted field of the run state (exit 4)."""
    engine: str = "local"
    """Where the views were read: ``local`` (this process) or ``ray`` (``batch_engine:
    ray.engine`` in ``feature_store.yaml``: parts of each pull read by Ray tasks)."""
    costs: dict[str, StepCost] = field(default_factory=dict)
    """Per step of :data:`STEPS`, what it cost (:meth:`timed`); on the line at INFO."""

    @contextmanager
    def timed(self, step: str, count: int = 0, unit: str = "") -> Iterator[StepCost]:
        """Add the time spent in the ``with`` block (and ``count``) to ``step``'s cost.

        The block may add to the yielded cost's ``count`` itself.
        """
        cost = self.costs.setdefault(step, StepCost(unit=unit))
        cost.unit = cost.unit or unit
        cost.count += count
        began = time.monotonic()
        try:
            yield cost
        finally:
            cost.seconds += time.monotonic() - began

    def costs_text(self) -> str:
        """``load=0.41s plan=0.02s/2views pulls=...``: the steps in :data:`STEPS` order."""
        return " ".join(f"{step}={self.costs[step].text()}" for step in STEPS if step in self.costs)

    @property
    def rows(self) -> int:
        """Rows written to the online store, over all views."""
        return sum(view.rows for view in self.views)

    @property
    def degraded_reasons(self) -> list[str]:
        """Why a completed run is degraded, in words (empty: it is not)."""
        if self.status != "ok":
            return []
        reasons = []
        fallbacks, pending = len(self.report.fallbacks), self.report.pending_retries
        if fallbacks:
            reasons.append(f"{fallbacks} fallback{'s' if fallbacks > 1 else ''} to one source")
        if pending is None:
            reasons.append("the pending-retry table could not be read")
        elif pending:
            reasons.append(
                f"{pending} customer{'s' if pending > 1 else ''} pending "
                "a retry (xiva-source pending lists them)"
            )
        return reasons

    @property
    def outcome(self) -> str:
        """The line's first word after ``materialize``: ``ok``, ``degraded`` or ``failed``."""
        if self.status == "failed" or (self.fail_on_fallback and self.report.fallbacks):
            return "failed"
        return "degraded" if self.degraded_reasons else str(self.status)

    @property
    def exit_code(self) -> int:
        """0 ok or skipped, 1 failed (also a fallback with ``fail_on_fallback``), 3 degraded,
        4 stopped on a corrupted run state."""
        outcome = self.outcome
        if outcome == "failed":
            return EXIT_CORRUPTED_STATE if self.state_corrupted else EXIT_FAILED
        return EXIT_DEGRADED if outcome == "degraded" else EXIT_OK

    def record(self, finished_at: datetime) -> dict[str, Any]:
        """The run's result as stored (``RunState.save_run``), shown by ``xiva-source status``."""
        report = self.report
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "finished_at": to_iso(finished_at),
            "duration_seconds": round(self.duration, 3),
            "mode": self.mode,
            "engine": self.engine,
            "rows_by_source": dict(report.rows_by_source),
            "views": [view.name for view in self.views],
            "kept_views": list(self.kept_views),
            "fallbacks": [redact(f) for f in report.fallbacks],
            "pending_retries": report.pending_retries,
            "failed_customers": report.failed_customers,
            "xiva_calls": report.xiva_calls,
            "xiva_throttled": report.xiva_throttled,
            "degraded": self.degraded_reasons,
            "dwh_lookback_rows": report.dwh_lookback_rows,
            "costs": {
                step: {"seconds": round(c.seconds, 3), "count": c.count, "unit": c.unit}
                for step, c in self.costs.items()
            },
            "error": redact(self.error) if self.error else None,
        }

    def view_records(self, finished_at: datetime) -> dict[str, dict[str, Any]]:
        """Each view the run touched: outcome (``ok``, ``partial``, ``kept``, ``failed``), rows."""
        at = to_iso(finished_at)
        records: dict[str, dict[str, Any]] = {
            view.name: {
                # partial: a source failed (auto mode), only the other's cells were written
                "outcome": "partial" if view.name in self.partial_views else "ok",
                "finished_at": at,
                "rows": view.rows,
                "rows_by_source": dict(view.rows_by_source),
                "duration_seconds": round(view.duration, 3),
            }
            for view in self.views
        }
        for name in self.kept_views:
            records[name] = {"outcome": "kept", "finished_at": at, "rows": 0}
        if self.failed_view:
            records[self.failed_view] = {"outcome": "failed", "finished_at": at, "rows": 0}
        return records

    def line(self, *, costs: bool | None = None) -> str:
        """The run's summary line (no secrets: every message is redacted).

        Args:
            costs: Add ``; costs: <step>=<time>/<amount> ...`` (:meth:`costs_text`, and the
                DWH rows read again from before the watermark); default: when this module's
                logger logs INFO (``--log-level INFO``).
        """
        if self.status == "skipped":
            held = f" ({self.holder.describe()})" if self.holder else ""
            return f"skipped: another materialization holds the lock{held}"
        report = self.report
        sources = " ".join(f"{name}={n}" for name, n in sorted(report.rows_by_source.items()))
        pending = "unknown" if report.pending_retries is None else report.pending_retries
        text = (
            f"materialize {self.outcome} mode={self.mode} rows {sources or 'none=0'} "
            f"views={len(self.views)} xiva_calls={report.xiva_calls} "
            f"fallbacks={len(report.fallbacks)} failed_customers={report.failed_customers} "
            f"pending_retries={pending}"
            f" malformed={report.malformed} partial={len(self.partial_views)} reload={self.reload}"
            f" engine={self.engine} duration={self.duration:.1f}s"
        )
        if (costs if costs is not None else logger.isEnabledFor(logging.INFO)) and self.costs:
            text += f"; costs: {self.costs_text()} dwh_lookback_rows={report.dwh_lookback_rows}"
        if self.outcome == "degraded":  # why, first: the clauses after it give the details
            text += f"; degraded: {', '.join(self.degraded_reasons)}"
        for fallback in report.fallbacks:
            text += f"; fallback: {fallback}"
        if self.reload_reason:
            text += f"; reload: {self.reload_reason}"
        for warning in self.warnings:
            text += f"; warning: {warning}"
        text += self._xiva_clauses()
        if self.expiry_error:
            text += f"; warning: online expiry not extended: {self.expiry_error}"
        if self.error:
            text += f"; error: {self.error}"
        elif self.outcome == "failed":  # a fallback with fail_on_fallback
            text += (  # the fallback clause above names the cause and its fix
                "; error: a source failed and the run fell back to the other one, which "
                "MATERIALIZE_FAIL_ON_FALLBACK (--fail-on-fallback) makes a failure; the failed "
                "source's watermark did not move"
            )
        return _single_periods(redact(text))

    def _xiva_clauses(self) -> str:
        """What the Xiva pull tolerated, one clause each (only when it happened)."""
        report, text = self.report, ""
        if report.retried:
            text += f"; retried: {report.recovered} of {report.retried} pending customers read"
        if report.malformed:
            text += f"; malformed: {', '.join(report.malformed_ids)} (skipped, retried next run)"
        if report.gone:
            gone = ", ".join(report.gone_ids)
            text += f"; gone: {report.gone} customers no longer in Xiva ({gone})"
        skew = report.xiva_clock_skew_seconds
        if skew is not None and abs(skew) >= CLOCK_SKEW_NOTED_SECONDS:
            text += (
                f"; xiva clock: {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} this "
                "host's (its Date header; the pull window followed Xiva's clock)"
            )
        if report.late_changes:
            text += (
                f"; late: {report.late_changes} changes up to "
                f"{report.max_lateness_seconds:.0f} s late "
                f"(overlap {report.overlap_seconds:.0f} s)"
            )
        if "pending" in report.errors:
            text += f"; warning: pending-retry table: {report.errors['pending']}"
        if "snapshot" in report.errors:
            snapshot = report.errors["snapshot"]
            text += f"; warning: Xiva pull not recorded in the snapshot table: {snapshot}"
        return text


def _single_periods(text: str) -> str:
    """``..`` (a sentence ending in a period, then one more) -> ``.``; ``...`` is kept."""
    import re

    return re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)
