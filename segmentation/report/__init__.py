"""The self-contained HTML report of the segments, read like a dashboard (no network, no script).

==========  ======================================================================================
``data``    :func:`build_report` -> :class:`ReportData` (sizes, overlaps, history, and each carded
            segment's :class:`GroupBalance`), one pass over the population
``words``   rules, groups and overlaps in plain words (:func:`rule_in_words`, ...)
``render``  :func:`render_report` (the page: a card per segment, its SVG charts),
            :func:`write_report` (both, to a file)
==========  ======================================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from segmentation.report.data import (
        HISTORY_LIMIT,
        MAX_CARDS,
        GroupBalance,
        ReportData,
        build_report,
    )
    from segmentation.report.render import (
        MAX_BARS,
        MAX_HEATMAP_SEGMENTS,
        MAX_HISTORY_SERIES,
        SPARKLINE_POINTS,
        render_report,
        write_report,
    )
    from segmentation.report.words import (
        groups_in_words,
        pair_in_words,
        rule_in_words,
        rules_in_words,
    )

__all__ = lazy.attach(__name__, __file__)
