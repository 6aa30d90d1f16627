"""The self-contained HTML report of the segments (no network: inline CSS, SVG and script).

==========  ======================================================================================
``data``    :func:`build_report` -> :class:`ReportData` (sizes, overlaps, history, and each
            segment's :class:`GroupBalance`), one pass over the population
``render``  :func:`render_report` (the page, its SVG charts), :func:`write_report` (both, to a file)
==========  ======================================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from segmentation.report.data import GroupBalance, ReportData, build_report
    from segmentation.report.render import render_report, write_report

__all__ = lazy.attach(__name__, __file__)
