"""The run report of one pull: what was read from where, and which failures were tolerated."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

__all__ = ["FAILED_IDS_KEPT", "PullReport", "record_fallback"]

logger = logging.getLogger(__name__)

FAILED_IDS_KEPT = 5
"""How many ids of failed 360 fetches a report keeps (enough to look into, not a flood)."""


@dataclass
class PullReport:
    """What one pull did; filled in as the pull runs (read it after the iterator is exhausted).

    Attributes:
        mode: ``xiva``, ``dwh`` or ``auto``.
        rows_by_source: Rows read from each source (``xiva``, ``dwh``).
        xiva_calls: Xiva HTTP requests made by the pull (auth and retries included).
        fallbacks: One sentence per source that failed in ``auto`` mode and was skipped.
        failed_customers: Customers whose 360 fetch failed (below the failure threshold).
        errors: Source (or ``snapshot``) -> the error that was tolerated.
        failed_customer_ids: The first few customers whose 360 fetch failed.
    """

    mode: str = ""
    rows_by_source: dict[str, int] = field(default_factory=dict)
    xiva_calls: int = 0
    fallbacks: list[str] = field(default_factory=list)
    failed_customers: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    failed_customer_ids: list[str] = field(default_factory=list)

    def add_rows(self, source: str, n: int) -> None:
        """Count ``n`` rows read from ``source``."""
        self.rows_by_source[source] = self.rows_by_source.get(source, 0) + n

    def add_failed_customers(self, ids: list[str]) -> None:
        """Count customers whose 360 fetch failed; keep the first :data:`FAILED_IDS_KEPT` ids."""
        self.failed_customers += len(ids)
        room = max(0, FAILED_IDS_KEPT - len(self.failed_customer_ids))
        self.failed_customer_ids.extend(ids[:room])


def record_fallback(report: PullReport, failed: str, serving: str, error: BaseException) -> None:
    """Record (WARNING log + report) that ``failed`` was skipped and ``serving`` is used.

    Args:
        report: The pull's report.
        failed: The source that failed (``xiva`` or ``dwh``).
        serving: The source the pull serves from instead.
        error: What ``failed`` raised.
    """
    message = f"{failed} failed, serving from {serving} only: {error}"
    report.fallbacks.append(message)
    report.errors[failed] = str(error)
    logger.warning("auto mode fallback: %s", message)
