"""A look at one segment before a campaign: how many pass each rule, and who the members are.

For every named rule: how many customers pass it alone, and how many pass it *and* every rule
before it (the running intersection, so the last one is the segment's size). A sample of members
comes with it: the first ``sample`` member ids in sorted order (deterministic across runs and
machines, whatever the order Redis returns the population in).

Example:
    >>> p = preview(engine, "lapsed_high_value", sample=5)  # doctest: +SKIP
    >>> [(r.name, r.passing, r.cumulative) for r in p.rules]  # doctest: +SKIP
    [('high_value', 412, 412), ('lapsed', 3020, 97)]
"""

from __future__ import annotations

import datetime as _dt
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from segmentation.dependencies import required
from segmentation.rules import reference_key
from segmentation.segment import evaluate_frame

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine

__all__ = ["DEFAULT_SAMPLE", "Preview", "RuleCount", "preview"]

DEFAULT_SAMPLE = 10
"""Member ids shown by default."""


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class RuleCount:
    """One rule's counts over the population.

    Attributes:
        name: The rule's name.
        rule: The JSONLogic rule.
        passing: Customers for whom this rule alone holds.
        cumulative: Customers for whom this rule and every rule before it hold.
    """

    name: str
    rule: dict[str, Any]
    passing: int
    cumulative: int


@dataclass(frozen=True)
class Preview:
    """What :func:`preview` found.

    Attributes:
        segment: The segment's name.
        population: Customers evaluated.
        rules: Per rule, in the segment's order.
        size: Members (every rule holds).
        sample: Up to ``sample`` member ids, the smallest in sorted order.
    """

    segment: str
    population: int
    rules: tuple[RuleCount, ...]
    size: int
    sample: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``segmentation preview --json``)."""
        return {
            "segment": self.segment,
            "population": self.population,
            "size": self.size,
            "percent": round(_percent(self.size, self.population), 4),
            "rules": [
                {
                    "name": r.name,
                    "rule": r.rule,
                    "passing": r.passing,
                    "percent": round(_percent(r.passing, self.population), 4),
                    "cumulative": r.cumulative,
                    "cumulative_percent": round(_percent(r.cumulative, self.population), 4),
                }
                for r in self.rules
            ],
            "sample": list(self.sample),
        }


def preview(
    engine: SegmentEngine,
    segment: str,
    *,
    sample: int = DEFAULT_SAMPLE,
    customer_ids: Sequence[str] | None = None,
    now: _dt.datetime | None = None,
) -> Preview:
    """Per-rule counts and a sample of members of one segment, in one pass over the population.

    Args:
        engine: The engine (its segments and online store).
        segment: The segment's name.
        sample: How many member ids to return (0: none).
        customer_ids: The customers (default: the whole population, SCAN).
        now: Reference time for staleness.

    Returns:
        The counts and the sample.

    Raises:
        UnknownSegmentError: No such segment.
        ValueError: ``sample`` is negative.
    """
    if sample < 0:
        raise ValueError(f"sample must be 0 or more, got {sample}")
    seg = engine.segment(segment)
    # Segments this one references ({"segment": name}): their eligibility becomes a column.
    deps = [s for s in required([seg.name], engine.segments) if s.name != seg.name]
    n = len(seg.rules)
    passing = np.zeros(n, dtype=np.int64)
    cumulative = np.zeros(n, dtype=np.int64)
    population = 0
    best: list[str] = []
    for frame in engine.frames(customer_ids, now=now):
        population += len(frame)
        if deps:
            eligible = evaluate_frame(deps, frame)
            frame = frame.copy(deep=False)
            for dep in deps:
                frame[reference_key(dep.name)] = eligible[dep.name].to_numpy(dtype=bool)
        cache: dict[str, Any] = {}  # columns converted once for all the rules of this chunk
        running = np.ones(len(frame), dtype=bool)
        for i, r in enumerate(seg.rules):
            mask = np.asarray(r.compiled.mask(frame, cache), dtype=bool)
            passing[i] += int(np.count_nonzero(mask))
            running &= mask
            cumulative[i] += int(np.count_nonzero(running))
        if sample:
            members = [str(c) for c in frame.index[running]]
            best = heapq.nsmallest(sample, best + members)
    rules = tuple(
        RuleCount(r.name, r.rule, int(passing[i]), int(cumulative[i]))
        for i, r in enumerate(seg.rules)
    )
    return Preview(seg.name, population, rules, int(cumulative[-1]), tuple(best))
