"""What the report shows: sizes and overlaps, the stored size history, and each segment's members
per group against the fractions it asks for (:func:`build_report`, one pass over the population).
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from segmentation.memberships import HistoryEntry
from segmentation.overlap import Overlap, overlap

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine
    from segmentation.segment import Segment

__all__ = ["GroupBalance", "ReportData", "build_report"]


@dataclass(frozen=True)
class GroupBalance:
    """One segment's eligible members per group.

    Attributes:
        segment: The segment.
        counts: Group -> eligible members in it (``target``, ``holdout``, arms,
            ``global_control``).
        expected: Group -> the fraction the segment's definition asks for (before the global
            control group), or empty when it defines none.
    """

    segment: str
    counts: dict[str, int]
    expected: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Eligible members (every group)."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows.

    Attributes:
        project: The Feast project.
        generated: When the data was computed (UTC, ISO 8601).
        overlap: Sizes, population and pairwise overlaps (one pass).
        history: Segment -> its stored refresh history, newest first.
        balance: Per segment, eligible members per group.
        notes: Remarks shown at the top (e.g. how groups were computed).
    """

    project: str
    generated: str
    overlap: Overlap
    history: dict[str, list[HistoryEntry]]
    balance: list[GroupBalance]
    notes: list[str] = field(default_factory=list)


def _expected(seg: Segment, global_control: float) -> dict[str, float]:
    """Group -> the fraction of eligible members the definition asks for (global control first:
    it takes its share of every segment, the segment's own groups share the rest)."""
    holdout, arms = seg.holdout, list(seg.splits.items())
    if not holdout and not arms and not global_control:
        return {}
    rest = 1.0 - global_control
    out = {"global_control": global_control} if global_control else {}
    if holdout:
        out["holdout"] = rest * holdout
    if arms:
        for arm, fraction in arms:
            out[arm] = rest * (1.0 - holdout) * fraction
    else:
        out["target"] = rest * (1.0 - holdout)
    return out


def build_report(
    engine: SegmentEngine,
    segments: Sequence[str] | None = None,
    *,
    global_control: float = 0.0,
    history_limit: int = 500,
    now: _dt.datetime | None = None,
) -> ReportData:
    """Compute what the report shows, in one pass over the population.

    Args:
        engine: The engine.
        segments: Segment names (default: all).
        global_control: The global control fraction (``SEGMENTS_GLOBAL_CONTROL``).
        history_limit: Refresh history entries per segment (newest).
        now: Reference time for staleness, and the report's time.

    Returns:
        The report's data (see :func:`~segmentation.report.render.render_report`).
    """
    names = list(segments or list(engine.segments))
    chosen = [engine.segment(n) for n in names]
    counters = {n: Counter[str]() for n in names}

    def count_groups(ids: pd.Index, m: np.ndarray) -> None:
        for j, seg in enumerate(chosen):
            members = [str(c) for c in ids[m[:, j]]]
            if not members:
                continue
            # The pinned hash of segmentation.groups: the groups a refresh stores.
            groups = seg.groups(members, global_control=global_control)
            names_, counts = np.unique(np.asarray(groups), return_counts=True)
            counters[seg.name].update({str(g): int(c) for g, c in zip(names_, counts, strict=True)})

    result = overlap(engine, names, now=now, on_chunk=count_groups)
    notes = []
    if global_control > 0:
        notes.append(
            f"Global control group: {100 * global_control:g}% of all customers "
            "(SEGMENTS_GLOBAL_CONTROL), group 'global_control' in every segment, never targeted."
        )
    balance = [
        GroupBalance(s.name, dict(counters[s.name]), _expected(s, global_control)) for s in chosen
    ]
    history = {n: engine.history(n, history_limit) for n in names}
    moment = (now or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC)
    return ReportData(
        engine.project, moment.isoformat(timespec="seconds"), result, history, balance, notes
    )
