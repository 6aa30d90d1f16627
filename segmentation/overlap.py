"""Sizes and pairwise overlaps of segments, in one vectorized pass over the population.

The population is read chunk by chunk (:meth:`SegmentEngine.frames`); each chunk's memberships form
a boolean matrix ``M`` (customers x segments) and ``M.T @ M`` adds, for every pair of segments at
once, the customers in both (its diagonal: each segment's size). Memory is bounded by one chunk and
an ``n x n`` matrix of counts, whatever the population.

Example:
    >>> result = overlap(engine)  # doctest: +SKIP
    >>> result.both("gold_vip", "at_risk"), result.jaccard("gold_vip", "at_risk")  # doctest: +SKIP
    (12, 0.031)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from segmentation.engine import SegmentEngine

__all__ = [
    "Overlap",
    "SizeTable",
    "jaccard_matrix",
    "membership_chunks",
    "overlap",
    "overlap_counts",
    "population_sizes",
]

ChunkCallback = Callable[[pd.Index, np.ndarray], None]
"""Called with each chunk's customer ids and its boolean membership matrix (ids x segments)."""


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class SizeTable:
    """Segment sizes with the population they were counted in.

    Attributes:
        population: Customers evaluated (every customer of the online store by default).
        sizes: Segment name -> customers whose rules all hold, in the order asked for.
    """

    population: int
    sizes: dict[str, int]

    def percent(self, segment: str) -> float:
        """The segment's share of the population, in percent (0 for an empty population)."""
        return _percent(self.sizes[segment], self.population)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"population", "segments": [{"name", "size", "percent"}]}``."""
        return {
            "population": self.population,
            "segments": [
                {"name": n, "size": s, "percent": round(self.percent(n), 4)}
                for n, s in self.sizes.items()
            ],
        }


@dataclass(frozen=True)
class Overlap:
    """Pairwise overlaps of segments.

    Attributes:
        segments: The segment names, in matrix order.
        population: Customers evaluated.
        counts: ``counts[i][j]``: customers in both segment ``i`` and segment ``j`` (the diagonal:
            each segment's size), an ``n x n`` int64 array.
    """

    segments: tuple[str, ...]
    population: int
    counts: np.ndarray

    def _index(self, segment: str) -> int:
        return self.segments.index(segment)

    @property
    def sizes(self) -> dict[str, int]:
        """Segment name -> size (the diagonal)."""
        return {n: int(self.counts[i, i]) for i, n in enumerate(self.segments)}

    def both(self, a: str, b: str) -> int:
        """Customers in both ``a`` and ``b``."""
        return int(self.counts[self._index(a), self._index(b)])

    def jaccard(self, a: str, b: str) -> float | None:
        """``|a & b| / |a | b|``; ``None`` when both segments are empty (undefined)."""
        value = self.jaccard_matrix[self._index(a), self._index(b)]
        return None if np.isnan(value) else float(value)

    @property
    def jaccard_matrix(self) -> np.ndarray:
        """The Jaccard index of every pair (NaN where both segments are empty)."""
        return jaccard_matrix(self.counts)

    def pairs(self) -> Iterator[tuple[str, str, int, float | None]]:
        """``(a, b, both, jaccard)`` for every unordered pair of distinct segments."""
        jac = self.jaccard_matrix
        n = len(self.segments)
        for i in range(n):
            for j in range(i + 1, n):
                value = jac[i, j]
                yield (
                    self.segments[i],
                    self.segments[j],
                    int(self.counts[i, j]),
                    None if np.isnan(value) else float(value),
                )

    def size_table(self) -> SizeTable:
        """The sizes and population (what ``segmentation sizes`` prints)."""
        return SizeTable(self.population, self.sizes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: population, segments, sizes, the count matrix and every pair."""
        return {
            "population": self.population,
            "segments": list(self.segments),
            "sizes": self.sizes,
            "matrix": self.counts.astype(int).tolist(),
            "pairs": [
                {"a": a, "b": b, "both": both, "jaccard": jac} for a, b, both, jac in self.pairs()
            ],
        }


def overlap_counts(chunks: Iterable[np.ndarray], n: int) -> tuple[np.ndarray, int]:
    """Sum ``M.T @ M`` over boolean membership chunks (rows: customers, columns: segments).

    Args:
        chunks: Boolean arrays of shape ``(customers, n)``.
        n: The number of segments (the columns).

    Returns:
        The ``n x n`` int64 matrix of customers in both segments, and the number of rows seen.
    """
    total = np.zeros((n, n), dtype=np.int64)
    rows = 0
    for m in chunks:
        if m.shape[0] == 0:
            continue
        # float64 goes through BLAS and is exact below 2**53 rows per chunk.
        dense = np.asarray(m, dtype=np.float64)
        total += np.rint(dense.T @ dense).astype(np.int64)
        rows += m.shape[0]
    return total, rows


def jaccard_matrix(counts: np.ndarray) -> np.ndarray:
    """``counts[i, j] / (counts[i, i] + counts[j, j] - counts[i, j])``; NaN where the union is
    empty."""
    sizes = np.diag(counts).astype(np.float64)
    union = sizes[:, None] + sizes[None, :] - counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, counts / np.where(union > 0, union, 1), np.nan)


def membership_chunks(
    engine: SegmentEngine,
    segments: Sequence[str] | None = None,
    *,
    customer_ids: Sequence[str] | None = None,
    now: _dt.datetime | None = None,
) -> Iterator[tuple[pd.Index, np.ndarray]]:
    """The population's memberships chunk by chunk: ``(ids, M)`` with ``M[i, j]`` True when
    customer ``i`` is in segment ``j`` (in the order of ``segments``, default all)."""
    names = list(segments or list(engine.segments))
    for table in engine.chunk_masks(customer_ids, names, now=now):
        yield table.index, table[names].to_numpy(dtype=bool)


def overlap(
    engine: SegmentEngine,
    segments: Sequence[str] | None = None,
    *,
    customer_ids: Sequence[str] | None = None,
    now: _dt.datetime | None = None,
    on_chunk: ChunkCallback | None = None,
) -> Overlap:
    """Pairwise overlaps (and sizes) of segments, in one pass over the population.

    Args:
        engine: The engine (its segments and online store).
        segments: Segment names (default: all, in load order).
        customer_ids: The customers (default: the whole population, SCAN).
        now: Reference time for staleness.
        on_chunk: Also called with each chunk's ids and membership matrix (the report counts
            groups in the same pass).

    Returns:
        The overlap counts of every pair.

    Raises:
        UnknownSegmentError: A name is not a loaded segment.
    """
    names = list(segments or list(engine.segments))
    for name in names:
        engine.segment(name)

    def matrices() -> Iterator[np.ndarray]:
        for ids, m in membership_chunks(engine, names, customer_ids=customer_ids, now=now):
            if on_chunk is not None:
                on_chunk(ids, m)
            yield m

    counts, rows = overlap_counts(matrices(), len(names))
    return Overlap(tuple(names), rows, counts)


def population_sizes(
    engine: SegmentEngine,
    segments: Sequence[str] | None = None,
    *,
    customer_ids: Sequence[str] | None = None,
    now: _dt.datetime | None = None,
) -> SizeTable:
    """Every segment's size and the population, in one pass (bounded memory).

    Args:
        engine: The engine.
        segments: Segment names (default: all).
        customer_ids: The customers (default: the whole population).
        now: Reference time for staleness.
    """
    names = list(segments or list(engine.segments))
    sizes = np.zeros(len(names), dtype=np.int64)
    rows = 0
    for _, m in membership_chunks(engine, names, customer_ids=customer_ids, now=now):
        sizes += np.count_nonzero(m, axis=0)
        rows += m.shape[0]
    return SizeTable(rows, {n: int(s) for n, s in zip(names, sizes, strict=True)})
