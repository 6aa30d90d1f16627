"""The run's progress bar, driven by the pull: Xiva customers with a total and an ETA, else rows.

A Xiva pull knows its total after the list's first page (``X-Total-Count`` or the DRF ``count``,
plus the pending retries) and reports each customer as it is handled, so the bar moves during the
slow, rate-limited part and tqdm shows an ETA. A DWH-only pull reports nothing: the bar counts the
rows of each chunk written instead.

Both runners use it: ``xiva-source materialize`` (:mod:`xiva_source.jobs.materialize`) and
Feast's own ``feast materialize`` through the offline store (:mod:`xiva_source.feast_plugin`),
through :func:`progress_bar`: shown on stderr when it is a terminal, silent otherwise (cron, pipes).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["BarProgress", "progress_bar"]


@contextmanager
def progress_bar(desc: str, *, show: bool | None = None) -> Iterator[BarProgress]:
    """A tqdm bar on stderr, cleared when done, as a :class:`BarProgress`.

    Args:
        desc: The bar's label (the view or source name).
        show: Show it; ``None`` shows it only when stderr is a terminal.
    """
    from tqdm import tqdm

    shown = sys.stderr.isatty() if show is None else show
    with tqdm(desc=desc, unit="rows", file=sys.stderr, disable=not shown, leave=False) as bar:
        yield BarProgress(bar)


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
