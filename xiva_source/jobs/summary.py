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

__all__ = ["RunStatus", "RunSummary", "ViewRun"]

RunStatus = Literal["ok", "skipped", "failed"]
"""``ok``, ``skipped`` (another run holds the lock) or ``failed``."""


@dataclass
class ViewRun:
    """What one run did for one feature view."""

    name: str
    """Feature view name."""
    start: datetime | None
    """Window start (``None``: the view was never materialized, everything was read)."""
    end: datetime
    """Window end (the run's end date)."""
    rows: int = 0
    """Rows written to the online store."""


@dataclass
class RunSummary:
    """The outcome of one run; :meth:`line` is the one line the job prints.

    Example:
        >>> RunSummary(status="ok", mode="dwh", rows_by_source={"dwh": 3}).line()
        'materialize ok mode=dwh rows dwh=3 views=0 xiva_calls=0 fallbacks=0 failed_customers=0 duration=0.0s'
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
    expiry_extended: int = 0
    """Entity keys whose online expiry was extended after the run."""
    duration: float = 0.0
    """Seconds the run took."""
    holder: LockHolder | None = None
    """For a skipped run: who holds the lock."""
    error: str | None = None
    """For a failed run: the cause and the fix (``<cause> Fix: <fix>``)."""

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
            f"duration={self.duration:.1f}s"
        )
        for fallback in self.fallbacks:
            text += f"; fallback: {fallback}"
        if "expiry" in self.errors:
            text += f"; warning: online expiry not extended: {self.errors['expiry']}"
        if self.error:
            text += f"; error: {self.error}"
        return redact(text)
