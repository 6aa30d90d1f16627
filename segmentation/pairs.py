"""How many pairs of segments there are, and how many one listing may hold.

``n`` segments make ``n (n - 1) / 2`` pairs (2,000 segments: 1,999,000), so what lists pairs
(``segmentation overlap``, the report, :meth:`~segmentation.overlap.Overlap.to_dict`) lists the
:data:`DEFAULT_TOP_PAIRS` most overlapping by default and never more than
:data:`MAX_LISTED_PAIRS`; :func:`check_pair_listing` refuses more before anything is evaluated.
Light on purpose (no numpy): the command line reads these bounds while it builds its parser.
"""

from __future__ import annotations

from segmentation.errors import SegmentationError

__all__ = ["DEFAULT_TOP_PAIRS", "MAX_LISTED_PAIRS", "check_pair_listing", "pair_count"]

DEFAULT_TOP_PAIRS = 20
"""Pairs listed by default (``segmentation overlap``, the report): the most overlapping."""
MAX_LISTED_PAIRS = 100_000
"""Most pairs one listing may hold (``--top K``, ``--all``; 447 segments have 99,681 pairs), and
the number of pairs up to which ``Overlap.to_dict`` includes the ``n x n`` matrix."""


def pair_count(segments: int) -> int:
    """How many unordered pairs ``segments`` distinct segments make."""
    return segments * (segments - 1) // 2


def check_pair_listing(segments: int, top: int | None) -> None:
    """Refuse, before any work, a listing of more than :data:`MAX_LISTED_PAIRS` pairs.

    Args:
        segments: How many segments.
        top: The number of pairs asked for; None: every pair.

    Raises:
        SegmentationError: Too many pairs (the problem, and the fix: ``--top K`` or fewer
            segments).
    """
    pairs = pair_count(segments)
    if top is None and pairs > MAX_LISTED_PAIRS:
        raise SegmentationError(
            f"{segments:,} segments make {pairs:,} pairs, more than the {MAX_LISTED_PAIRS:,} "
            "that one listing holds",
            f"list the most overlapping ones with --top K (K up to {MAX_LISTED_PAIRS:,}), or name "
            "fewer segments (`segmentation overlap SEGMENT ...`)",
        )
    if top is not None and not 0 <= top <= MAX_LISTED_PAIRS:
        raise SegmentationError(
            f"--top {top:,} is outside 0 to {MAX_LISTED_PAIRS:,}",
            f"ask for at most {MAX_LISTED_PAIRS:,} pairs (the default is {DEFAULT_TOP_PAIRS})",
        )
