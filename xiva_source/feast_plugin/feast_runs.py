"""What Feast's own materialization leaves in the shared state, and how the job carries on from it.

``feast materialize`` / ``materialize-incremental`` (on the local or the Ray engine) reads through
the offline store and writes through Feast's online store; on the local engine Feast records the
window in its registry only after the writes succeeded. The shared state
(:mod:`~xiva_source.feast_plugin.run_state`) is kept true on that path too:

1. When a pull begins (:func:`begin_feast_pull`, in Feast's process): the registry is read once;
   a source never materialized reads everything (Feast would start at ``now - ttl``); on a store
   nothing was ever loaded into (no view of the project has a registry interval, the state holds
   no watermark) the marker is set, if missing, before the first write.
2. When a pull, or one of its parts on Ray, ends (:meth:`FeastPullRecord.save`): which sources
   were merged into the rows Feast writes (every source of the mode; none after a fallback, since
   Feast leaves the partial rows out; not Xiva when its rows were not settled, :func:`unsettled`:
   a Feast pull records no re-read mark, so the job reads that window of Xiva again), the
   window and the rows per source.
3. A write of Feast's engine that fails (:func:`note_write_failure`, from the online store) is
   noted with its time: Feast's Ray engine logs such a failure and records the interval anyway,
   so the job never carries on from a pull begun before it.
4. The job (:func:`carry_on`): a source's watermark moves to a recorded pull's end when the
   registry holds that pull's interval, every part of it is recorded, the source was merged, and
   the pull read from the watermark or earlier (or everything); pulls chain. A pull made in
   another mode than the job's reloads the view (its rows were merged another way). The job's
   re-read marks are never moved or cleared by a Feast pull: only a run of the job that re-read
   and settled the rows clears one.

Every write here is best effort: a Feast run never fails for its bookkeeping; without it the job
reads the window again (slower, never wrong).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from xiva_source.feast_plugin.run_state import (
    MODE_SOURCES,
    FeastPart,
    RunState,
    StateSnapshot,
    state_for_config,
)
from xiva_source.pipeline.auto import DWH_UNMERGED, LAST_KNOWN, XIVA_UNMERGED
from xiva_source.pipeline.report import PullReport
from xiva_source.pipeline.sources import source_kind
from xiva_source.pipeline.xiva_pull import SNAPSHOT
from xiva_source.redaction import redact
from xiva_source.settings import Settings
from xiva_source.timeutil import as_utc, utc_now

__all__ = [
    "CarryOn",
    "FeastPullRecord",
    "begin_feast_pull",
    "carry_on",
    "note_write_failure",
    "unmerged",
    "unsettled",
    "view_mode",
]

logger = logging.getLogger(__name__)

CONFIRM_TOLERANCE = timedelta(milliseconds=1)
"""How close the registry's interval end must be to a pull's end to confirm it."""

DEAD_AFTER = timedelta(days=1)
"""A pull record the registry has not confirmed after this long belongs to a failed run."""


def view_mode(source: Any, mode: str) -> str:
    """The mode a view is loaded in: a single source's own kind, else the data-source mode.

    Args:
        source: The view's batch source.
        mode: ``FEATURE_STORE_DATA_SOURCE`` (``xiva``, ``dwh``, ``auto``).
    """
    kind = source_kind(source)
    return kind if kind in ("xiva", "dwh") else mode


def unmerged(report: PullReport, source: str) -> bool:
    """True when the pull behind ``report`` did not merge ``source``'s changes.

    It failed; or, for the DWH in ``auto``, Xiva's side of its rows was unknown (Xiva's last
    known values unreadable, or Xiva never read in full).
    """
    return source in report.errors or (
        source == "dwh" and (LAST_KNOWN in report.errors or DWH_UNMERGED in report.errors)
    )


def unsettled(report: PullReport) -> str | None:
    """Why the Xiva rows of the pull behind ``report`` are not *settled*; ``None`` when they are.

    Settled: merged with the DWH's current rows and recorded in the snapshot table, on which
    later pulls rely (:mod:`xiva_source.jobs.plan`, "the re-read mark"). The job keeps a re-read
    mark for unsettled rows; a Feast pull's unsettled Xiva rows are not carried on from.
    """
    reasons = []
    if XIVA_UNMERGED in report.errors:
        reasons.append("written partially, the DWH being unavailable")
    if SNAPSHOT in report.errors:
        reasons.append("not recorded in the snapshot table")
    return " and ".join(reasons) or None


@dataclass(frozen=True)
class FeastPullRecord:
    """A pull of Feast's materialization, to record in the state when it (or a part) ends.

    Picklable: Feast's Ray engine reads a pull in Ray tasks, each saving its part.

    Attributes:
        config: The Feast ``RepoConfig`` (the state is the online store's).
        settings: The settings of the pull.
        views: The views whose batch source the pull reads.
        pull: The pull's id (shared by its parts).
        start: The window start read from (``None``: everything).
        end: Feast's window end.
        began: When the pull began.
        mode: The mode the views are read in.
    """

    config: Any = field(repr=False)
    settings: Settings = field(repr=False)
    views: tuple[str, ...]
    pull: str
    start: datetime | None
    end: datetime
    began: datetime
    mode: str

    def save(self, report: PullReport, *, part: int = 0, parts: int = 1) -> None:
        """Record what the pull (or its part ``part`` of ``parts``) merged; never raises."""
        sources = MODE_SOURCES[self.mode]
        failed = bool(report.fallbacks) or any(unmerged(report, s) for s in sources)
        # Unsettled Xiva rows are online but not recorded or merged: the job must read them
        # again (it keeps re-read marks; a Feast pull leaves none), so Xiva was not merged.
        merged = () if failed else tuple(s for s in sources if s != "xiva" or not unsettled(report))
        rows = {s: int(report.rows_by_source.get(s, 0)) for s in sources}
        try:
            with _opened_state(self.config, self.settings) as state:
                for view in self.views:
                    state.record_feast_part(
                        FeastPart(
                            view=view,
                            pull=self.pull,
                            part=part,
                            parts=parts,
                            start=self.start,
                            end=self.end,
                            began=self.began,
                            mode=self.mode,
                            rows=rows,
                            merged=merged,
                        )
                    )
        except Exception as e:  # Feast's run goes on; the job reads the window again
            logger.warning(
                "the pull of %s was not recorded in the run state (%s): the next "
                "`xiva-source materialize` reads its window again",
                ", ".join(self.views),
                redact(str(e)),
            )


def begin_feast_pull(
    config: Any, settings: Settings, source: Any, start: datetime | None, end: datetime
) -> tuple[datetime | None, FeastPullRecord | None]:
    """Before a pull of Feast's materialization: where it starts, and its record.

    Args:
        config: The Feast ``RepoConfig``.
        settings: The repository's settings.
        source: The data source Feast pulls.
        start: Feast's window start (``now - ttl`` on a first ``materialize-incremental``).
        end: Feast's window end.

    Returns:
        The start to read from (``None``, everything, while no view of ``source`` was ever
        materialized and ``full_pull_when_never_materialized`` is on) and the record to save
        when the pull ends (``None`` when the registry cannot be read).
    """
    began = utc_now()
    try:
        views = _registry_views(config)
    except Exception as e:  # an unreadable registry must not block materialization
        logger.warning("cannot read the registry of %r: %s", config.project, redact(str(e)))
        return start, None
    batch = [fv for fv in views if fv.batch_source is not None]
    mine = [fv for fv in batch if fv.batch_source.name == source.name]
    full_when_new = getattr(config.offline_store, "full_pull_when_never_materialized", True)
    never = not any(fv.materialization_intervals for fv in mine)
    if start is not None and full_when_new and mine and never:
        logger.info(
            "no feature view of source %r was ever materialized: reading everything "
            "(ignoring the start %s Feast derived from the ttl)",
            source.name,
            start,
        )
        start = None
    if not any(fv.materialization_intervals for fv in batch):
        _mark_fresh_store(config, settings)
    if not mine:
        return start, None
    record = FeastPullRecord(
        config=config,
        settings=settings,
        views=tuple(sorted(fv.name for fv in mine)),
        pull=uuid.uuid4().hex[:12],
        start=start,
        end=as_utc(end),
        began=began,
        mode=view_mode(source, settings.feature_store_data_source.value),
    )
    return start, record


def note_write_failure(config: Any, view: str) -> None:
    """Note that a write of Feast's engine to ``view`` failed now (best effort, never raises)."""
    try:
        with _opened_state(config, None) as state:
            state.note_write_failure(view, utc_now())
    except Exception as e:
        logger.warning(
            "a failed write to %s could not be noted in the run state (%s): if `feast "
            "materialize` made it, run `xiva-source materialize --full --view %s` after it",
            view,
            redact(str(e)),
            view,
        )


@dataclass
class CarryOn:
    """Where a view's sources stand once Feast's recorded pulls are taken into account."""

    marks: dict[str, datetime | None]
    """Each source's watermark (the stored one, or a confirmed Feast pull's end)."""
    carried: dict[str, datetime] = field(default_factory=dict)
    """The sources moved by Feast's pulls, and to where."""
    other_mode: str | None = None
    """A Feast pull wrote the view in this mode, not the job's: the view must be reloaded."""
    consumed: list[str] = field(default_factory=list)
    """Pull records to delete once the view's run is recorded (used, void or corrupted)."""
    full_read: datetime | None = None
    """When the latest confirmed pull that read the view in full began (from the beginning, in
    the job's mode, every source merged with rows: it wrote every customer of the sources), for
    the expiry sweep (``full:<view>``, ``jobs.expiry``); ``None``: none."""


def carry_on(
    snapshot: StateSnapshot,
    view: str,
    mode: str,
    stored: Mapping[str, datetime | None],
    intervals: Iterable[tuple[datetime | None, datetime | None]],
    now: datetime,
) -> CarryOn:
    """``view``'s source watermarks after the Feast pulls recorded since the job's last run.

    Args:
        snapshot: The state.
        view: The feature view.
        mode: The mode the job loads it in.
        stored: Each source's stored watermark (``None``: none).
        intervals: The view's materialization intervals in Feast's registry.
        now: The run's start (records older than :data:`DEAD_AFTER` are dropped).

    Returns:
        The watermarks, what moved, a mode conflict, the records to delete.
    """
    ends = [as_utc(end) for _, end in intervals if end is not None]
    failure = snapshot.write_failure(view)
    result = CarryOn(dict(stored))
    pulls: dict[str, list[FeastPart]] = {}
    for part in snapshot.feast_parts(view):
        pulls.setdefault(part.pull, []).append(part)
    readable = {part.field for parts in pulls.values() for part in parts}
    result.consumed += [name for name in snapshot.feast_fields(view) if name not in readable]
    usable: list[tuple[datetime | None, datetime, set[str], dict[str, int]]] = []
    for parts in pulls.values():
        first = parts[0]
        same = all(
            (p.parts, p.start, p.end, p.began, p.mode)
            == (first.parts, first.start, first.end, first.began, first.mode)
            for p in parts
        )
        complete = same and sorted(p.part for p in parts) == list(range(first.parts))
        confirmed = complete and any(abs(end - first.end) <= CONFIRM_TOLERANCE for end in ends)
        if first.mode != mode:
            result.other_mode = first.mode
        if confirmed or first.mode != mode or first.began < now - DEAD_AFTER:
            result.consumed += [p.field for p in parts]
        if confirmed and (failure is None or first.began > failure):
            merged = set.intersection(*(set(p.merged) for p in parts))
            rows = {s: sum(p.rows.get(s, 0) for p in parts) for s in merged}
            usable.append((first.start, first.end, merged, rows))
            whole = set(MODE_SOURCES.get(first.mode, ())) <= merged and all(rows.values())
            later = result.full_read is None or first.began > result.full_read
            if first.start is None and first.mode == mode and whole and later:
                result.full_read = first.began
    if result.other_mode is not None:
        return result
    moved = True
    while moved:  # pulls chain: each may start where an earlier one ended
        moved = False
        for start, end, merged, rows in usable:
            for source, mark in result.marks.items():
                # An empty read from the beginning never moves a watermark (as the job's own).
                if source not in merged or (start is None and not rows.get(source)):
                    continue
                reaches = start is None or (mark is not None and start <= mark)
                if reaches and (mark is None or end > mark):
                    result.marks[source] = result.carried[source] = end
                    moved = True
    return result


def _registry_views(config: Any) -> list[Any]:
    from feast.infra.registry.registry import Registry

    registry = Registry(config.project, config.registry, config.repo_path)
    return list(registry.list_feature_views(config.project, allow_cache=False))


def _mark_fresh_store(config: Any, settings: Settings) -> None:
    """Set the marker of a store nothing was ever loaded into (if missing), before any write."""
    from xiva_source.feast_plugin.online_store import bind_online_config

    try:
        ttl = getattr(bind_online_config(config, settings), "key_ttl_seconds", None)
        with _opened_state(config, settings) as state:
            if not state.load().watermarks() and state.set_marker(ttl, only_if_missing=True):
                logger.info("first load of %r: the online store's marker is set", config.project)
    except Exception as e:  # the job then finds no marker and reloads: slow, never wrong
        logger.warning("the online store's marker was not set: %s", redact(str(e)))


@contextmanager
def _opened_state(config: Any, settings: Settings | None) -> Iterator[RunState]:
    from xiva_source.feast_plugin.online_store import online_redis_client

    client = online_redis_client(config, settings)
    try:
        yield state_for_config(config, client)
    finally:
        if client is not None:
            client.close()
