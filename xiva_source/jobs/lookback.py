"""The DWH lookback that re-reads only where late rows landed.

An ETL may commit a row late: stamped before the previous run's end, committed after it. So an
incremental DWH read starts ``DWH_LOOKBACK_SECONDS`` (6 h) before its watermark, and each run
re-read every row of those hours (about 1.7% of a telecom's customers per run), whether or not
anything arrived late.

Here the database counts first (:func:`~xiva_source.dwh.reads.window_counts`: one query, no row
sent): the rows per time bucket (``DWH_LOOKBACK_SECONDS / BUCKETS`` wide, aligned to the epoch)
from the lookback's start to the run's end. The counts are stored with the view
(:class:`~xiva_source.feast_plugin.run_state.LookbackCounts`). The next run counts the same
buckets up to its start (the previous run's end) and reads again only from the first bucket whose
count changed (a row committed late, or moved there by an update) besides its own window
(``ts >= start OR ts in (lo, hi] ...``); no change: only its own window. A late row anywhere in
the lookback is read, as before; rows re-read are those of the buckets where something arrived
late.

On a PostgreSQL table the database's own clock does better: before its read the run records
what a snapshot could not see (:func:`~xiva_source.dwh.reads.xid_horizon`: the transactions from
its ``xmax`` on and those in progress), and the next run reads again exactly the rows of the
lookback those transactions wrote (``xmin``):
what was committed since, late rows included, whatever bucket they landed in. Rows updated since
(moved out of the lookback to now) cost nothing extra, where they change a bucket's count.

What the counts cannot see: within one bucket between two runs, a row deleted and another
committed late (the count stays the same). The whole lookback is read (as before) when there
are no comparable counts: the first incremental run, a watermark that did not move to the last
run's end, a changed ``DWH_LOOKBACK_SECONDS``, or a state field that does not parse. Rows
committed between the count and the read are read now or by the next run, never lost.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from xiva_source.feast_plugin.run_state import LookbackCounts

if TYPE_CHECKING:
    from xiva_source.pipeline.sources import DwhSourceSpec
    from xiva_source.settings import Settings

__all__ = ["BUCKETS", "LookbackPlan", "bucket_seconds", "plan_lookback"]

logger = logging.getLogger(__name__)

BUCKETS = 36
"""Buckets per lookback (10 minutes each for the default 6 hours)."""


@dataclass(frozen=True)
class LookbackPlan:
    """Which part of the lookback the view's DWH read takes again, and the counts to store."""

    ranges: tuple[tuple[datetime, datetime], ...] | None
    """The buckets ``(lo, hi]`` before the start to read again (``None``: the whole lookback,
    as without counts; empty: none)."""
    counts: LookbackCounts
    """This run's counts (to store with the view)."""
    changed: int
    """Buckets whose count changed since the last run (``-1``: nothing to compare with)."""
    written_since: tuple[datetime, tuple[int, tuple[int, ...]]] | None = None
    """PostgreSQL tables: ``(lo, horizon)``, the rows stamped from ``lo`` that the last run's
    snapshot could not see are read again (``ranges`` is then empty)."""


def bucket_seconds(lookback_seconds: float) -> int:
    """The bucket width for a lookback: ``lookback / BUCKETS``, at least a minute.

    Example:
        >>> bucket_seconds(21_600)
        600
    """
    return max(60, math.ceil(lookback_seconds / BUCKETS))


def _floor(moment: datetime, width: int) -> datetime:
    seconds = math.floor(moment.timestamp() / width) * width
    return datetime.fromtimestamp(seconds, tz=UTC)


def _key(moment: datetime) -> int:
    return int(moment.timestamp())


def plan_lookback(
    source: DwhSourceSpec,
    settings: Settings,
    *,
    start: datetime,
    end: datetime,
    previous: LookbackCounts | None,
) -> LookbackPlan:
    """Count the DWH rows per bucket and find where this run's read must start.

    Args:
        source: The view's DWH source.
        settings: Its ``DWH_URL`` and ``DWH_LOOKBACK_SECONDS``.
        start: The read's start (the DWH watermark).
        end: The read's end (the run's).
        previous: The counts the last run stored for the view.

    Returns:
        The plan: ``ranges`` are the changed buckets (adjacent ones joined), ``None`` when
        there was nothing to compare with.

    Raises:
        DwhError: The DWH failed.
    """
    from xiva_source.dwh.reads import window_counts, xid_horizon

    lookback = settings.dwh_lookback_seconds
    width = bucket_seconds(lookback)
    url = source.url(settings)
    xid = xid_horizon(url, source.spec)  # before the read: what it cannot see, the next one reads
    if xid is not None:
        mark = LookbackCounts(until=end, bucket=width, counts={}, xid=xid)
        if previous is None or previous.xid is None or previous.until != start:
            return LookbackPlan(ranges=None, counts=mark, changed=-1)
        since = (start - timedelta(seconds=lookback), previous.xid)
        return LookbackPlan(ranges=(), counts=mark, changed=0, written_since=since)
    low = _floor(start - timedelta(seconds=lookback), width)
    keep = _floor(end - timedelta(seconds=lookback), width)  # the next run compares from here
    edges = [low]
    edge = low + timedelta(seconds=width)
    while edge < start:
        edges.append(edge)
        edge += timedelta(seconds=width)
    if start > low:
        edges.append(start)
    if keep > edges[-1]:  # a long gap: the buckets the next run will not compare are one
        edges.append(keep)
    edge = max(_floor(edges[-1], width) + timedelta(seconds=width), edges[-1])
    while edge < end:
        if edge > edges[-1]:
            edges.append(edge)
        edge += timedelta(seconds=width)
    if end > edges[-1]:
        edges.append(end)
    counts = window_counts(url, source.spec, source.timestamp_field, edges)
    stored: dict[int, int] = {}
    compared: dict[int, tuple[datetime, datetime, int]] = {}
    for (lo, hi), n in zip(itertools.pairwise(edges), counts, strict=True):
        bucket = _key(_floor(lo, width))
        if hi <= start:
            first, _, seen = compared.get(bucket, (lo, hi, 0))
            compared[bucket] = (first, hi, seen + n)
        if bucket >= _key(keep):
            stored[bucket] = stored.get(bucket, 0) + n
    plan_counts = LookbackCounts(until=end, bucket=width, counts=stored)
    if previous is None or previous.bucket != width or previous.until != start:
        return LookbackPlan(ranges=None, counts=plan_counts, changed=-1)
    changed = [
        (lo, hi)
        for bucket, (lo, hi, n) in sorted(compared.items())
        if previous.counts.get(bucket, 0) != n
    ]
    ranges: list[tuple[datetime, datetime]] = []
    for lo, hi in changed:
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return LookbackPlan(ranges=tuple(ranges), counts=plan_counts, changed=len(changed))
