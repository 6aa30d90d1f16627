"""The run's progress bar, driven by the pull: Xiva customers with a total and an ETA, else rows.

A Xiva pull knows its total after the list's first page (``X-Total-Count`` or the DRF ``count``,
plus the pending retries) and reports each customer as it is handled, so the bar moves during the
slow, rate-limited part and tqdm shows an ETA. A DWH-only pull reports nothing: the bar counts the
rows of each chunk written instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BarProgress"]


class BarProgress:
    """:class:`~xiva_source.pipeline.report.Progress` over a tqdm bar.

    Args:
        bar: A ``tqdm`` instance (disabled when stderr is not a terminal: then nothing shows).
    """

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self.driven = False
        """True once the pull reported customers: chunk rows no longer move the bar."""

    def set_total(self, total: int) -> None:
        """The customers the pull expects: the bar shows a fraction and an ETA."""
        self.driven = True
        self._bar.unit = "customers"
        self._bar.total = total
        self._bar.refresh()

    def advance(self, n: int = 1) -> None:
        """``n`` more customers handled."""
        self.driven = True
        self._bar.update(n)

    def rows(self, n: int) -> None:
        """A chunk of ``n`` rows was written: moves the bar unless the pull drives it."""
        if not self.driven:
            self._bar.update(n)
