"""What the report shows: sizes and overlaps, the stored size history, and each segment's members
per group against the fractions it asks for (:func:`build_report`, one pass over the population).

Bounded whatever the number of segments: a card (definition, history, groups) for at most
:data:`MAX_CARDS` segments, the others as one line each; the ``top`` most overlapping pairs
(at most :data:`~segmentation.pairs.MAX_LISTED_PAIRS`), not every pair.
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
from segmentation.overlap import Overlap, PairOverlap, overlap
from segmentation.pairs import DEFAULT_TOP_PAIRS, check_pair_listing

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine
    from segmentation.segment import Segment

__all__ = ["HISTORY_LIMIT", "MAX_CARDS", "GroupBalance", "ReportData", "build_report"]

MAX_CARDS = 200
"""Segments shown as a card (definition, size history, groups); the others get one line each."""
HISTORY_LIMIT = 500
"""Refreshes read per carded segment (the newest)."""


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
        overlap: Sizes, population and pairwise overlaps (one pass), of every segment.
        history: Segment -> its stored refresh history, newest first (carded segments).
        balance: Per carded segment, eligible members per group: the segments that get a card,
            in order (the others are listed by size only).
        notes: Remarks shown at the top (e.g. how groups were computed).
        definitions: Segment name -> its definition (description, rules, holdout, splits).
        top: How many of the most overlapping pairs the report lists.
        global_control: The global control fraction the groups were computed with.
    """

    project: str
    generated: str
    overlap: Overlap
    history: dict[str, list[HistoryEntry]]
    balance: list[GroupBalance]
    notes: list[str] = field(default_factory=list)
    definitions: dict[str, Segment] = field(default_factory=dict)
    top: int = DEFAULT_TOP_PAIRS
    global_control: float = 0.0

    def top_pairs(self) -> list[PairOverlap]:
        """The :attr:`top` most overlapping pairs (see :meth:`Overlap.top_pairs`)."""
        return self.overlap.top_pairs(self.top)


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
    history_limit: int = HISTORY_LIMIT,
    top: int = DEFAULT_TOP_PAIRS,
    cards: int = MAX_CARDS,
    now: _dt.datetime | None = None,
) -> ReportData:
    """Compute what the report shows, in one pass over the population.

    Args:
        engine: The engine.
        segments: Segment names (default: all).
        global_control: The global control fraction (``SEGMENTS_GLOBAL_CONTROL``).
        history_limit: Refresh history entries per carded segment (newest).
        top: The most overlapping pairs to list (at most
            :data:`~segmentation.pairs.MAX_LISTED_PAIRS`).
        cards: Segments shown as a card (the first ones, in the order given); groups and history
            are read for these only.
        now: Reference time for staleness, and the report's time.

    Returns:
        The report's data (see :func:`~segmentation.report.render.render_report`).

    Raises:
        SegmentationError: ``top`` is over the cap.
        UnknownSegmentError: A name is not a loaded segment.
    """
    check_pair_listing(0, top)
    names = list(segments or list(engine.segments))
    definitions = {n: engine.segment(n) for n in names}
    chosen = [definitions[n] for n in names[: max(0, cards)]]
    counters = {s.name: Counter[str]() for s in chosen}

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
    if len(chosen) < len(names):
        notes.append(
            f"{len(names):,} segments: the first {len(chosen):,} are shown as cards (definition, "
            f"size over time, groups), the other {len(names) - len(chosen):,} by size only. Name "
            "the segments to see as cards: segmentation report FILE.html SEGMENT ..."
        )
    if global_control > 0:
        notes.append(
            f"Global control group: {100 * global_control:g}% of all customers "
            "(SEGMENTS_GLOBAL_CONTROL), group 'global_control' in every segment, never targeted."
        )
    balance = [
        GroupBalance(s.name, dict(counters[s.name]), _expected(s, global_control)) for s in chosen
    ]
    history = {s.name: engine.history(s.name, history_limit) for s in chosen}
    moment = (now or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC)
    return ReportData(
        engine.project,
        moment.isoformat(timespec="seconds"),
        result,
        history,
        balance,
        notes,
        definitions,
        top,
        global_control,
    )
