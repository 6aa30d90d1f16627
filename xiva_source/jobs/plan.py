"""Which sources a view reads in a run, from where, and where their watermarks go afterwards.

The rules (docs/operations.md, "Watermarks per source"):

- A view's sources: a ``CustomerSource`` reads Xiva, the DWH or both (``auto``) by mode; a
  ``XivaSource`` / ``DwhSource`` its one source. Each has its own watermark (:mod:`.state`).
- A source starts at its watermark; none (never read, a new mode, a wiped store, ``--full``),
  or one later than the run's end (a run once given a future ``--end-date``): the beginning.
  A source whose rows of an earlier run were not *settled* is read again from its re-read mark
  (below) as soon as the parts that settle it answer.
- Its watermark is the job's own, or where a ``feast materialize[-incremental]`` since then left
  the source, once Feast's registry confirms that pull
  (:func:`~xiva_source.feast_plugin.feast_runs.carry_on`); a Feast pull made in another mode
  reloads the view (``reload=mode``). A Feast pull never touches a re-read mark: it records
  none (its unsettled Xiva rows are not carried on from, so the job reads them again), and a
  watermark it moved leaves the job's mark where it was.
- After the run a source's watermark moves to the run's end, unless it failed (or, for the DWH
  in ``auto``, its changes could not be merged because Xiva's last known values were
  unreadable), or it read from the beginning and found nothing (an empty first or full pull
  never moves a watermark: it is reported).
- Feast's watermark (``most_recent_end_time``) moves to the oldest of the view's source
  watermarks: every source of the view is online up to it.

Settled rows, the re-read mark (:func:`rereads_after`). Xiva's rows of a run are *settled* when
they were merged with the DWH's current rows and recorded in the snapshot table: later runs rely
on both (the DWH window is merged with Xiva's last known values, which are the snapshot table).
A run whose Xiva rows were not settled (the DWH was down, so they were written partially:
``xiva_unmerged``; or the snapshot table refused them: ``snapshot``) still moves Xiva's watermark
(its changes are online, and the next run reads only the newer ones while the outage lasts), but
records a re-read mark, the start of its Xiva read (``None``: the beginning; an older mark
stays). The mark goes to the pull (``pull_batches(rereads=)``), which reads Xiva from it instead
of the watermark once the parts that settle its rows answer (the DWH in ``auto``, the snapshot
database: ``PullReport.reread``), and from the watermark while they are still down (so the runs
during an outage read only the newer changes). A run that re-read and settled removes the mark.
So a source's values survive any outage of another part: what could not be recorded is read
again and recorded later, never dropped, and the merge precedence holds after the run that
settles it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xiva_source.feast_plugin.feast_runs import carry_on, unmerged, unsettled, view_mode
from xiva_source.feast_plugin.run_state import MODE_SOURCES, StateSnapshot
from xiva_source.pipeline.report import PullReport
from xiva_source.timeutil import as_utc, to_iso

__all__ = ["ViewPlan", "feast_watermark", "plan_view", "rereads_after", "watermarks_after"]


@dataclass
class ViewPlan:
    """One view's run: its sources and where each starts."""

    view: str
    """Feature view name."""
    mode: str
    """The mode stored for the view (the data-source mode; a single source's own kind)."""
    starts: dict[str, datetime | None]
    """Each source's start (``None``: the beginning)."""
    previous: dict[str, datetime | None]
    """Each source's stored watermark before the run."""
    reload: str | None = None
    """Why every source reads from the beginning (``full``, ``wiped``, ``mode``), if so."""
    warnings: list[str] = field(default_factory=list)
    """What the plan had to correct (a watermark in the future)."""
    rereads: dict[str, datetime | None] = field(default_factory=dict)
    """The stored re-read marks of the view's sources (``None``: the beginning): those sources'
    rows since then are not settled (the module docstring); the pull reads them again from
    there once it can settle them (``pull_batches(rereads=)``)."""
    carried: dict[str, datetime] = field(default_factory=dict)
    """The sources whose watermark a ``feast materialize`` moved since the job's last run."""
    consumed: list[str] = field(default_factory=list)
    """The state's records of Feast's pulls to delete once the view's run is recorded."""
    full_read: datetime | None = None
    """When a ``feast materialize`` that read the view in full began, if later than the stored
    ``full:<view>`` (recorded with the view's run, for the expiry sweep)."""

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources the view reads, in order."""
        return tuple(self.starts)


def plan_view(
    fv: Any,
    mode: str,
    state: StateSnapshot,
    end: datetime,
    *,
    reload: str | None,
    now: datetime | None = None,
) -> ViewPlan:
    """The plan of ``fv`` for a run ending at ``end``.

    Args:
        fv: The feature view (its ``name``, ``batch_source``, ``materialization_intervals``).
        mode: ``FEATURE_STORE_DATA_SOURCE`` of the run.
        state: The stored state (:meth:`~xiva_source.feast_plugin.run_state.RunState.load`).
        end: The run's end.
        reload: Read everything, and why (``full``, ``wiped``); ``None`` for incremental.
        now: The run's start (the age of Feast's pull records); default ``end``.

    Raises:
        CorruptedStateError: A watermark or the mode of the view does not parse.
    """
    own_mode = view_mode(fv.batch_source, mode)
    sources = MODE_SOURCES[own_mode]  # (a foreign source fails in the pull)
    stored_mode = state.mode(fv.name)
    if reload is None and stored_mode is not None and stored_mode != own_mode:
        reload = "mode"
    stored = {s: state.watermark(fv.name, s) for s in sources}
    intervals = getattr(fv, "materialization_intervals", None) or []
    carried = carry_on(state, fv.name, own_mode, stored, intervals, now or end)
    plan = ViewPlan(fv.name, own_mode, {}, stored, reload, consumed=carried.consumed)
    if carried.other_mode is not None:
        if plan.reload is None:
            plan.reload = "mode"
        plan.warnings.append(
            f"{fv.name}: `feast materialize` loaded it in mode {carried.other_mode}, the job "
            f"reads it in mode {own_mode}: the view is reloaded"
        )
    else:
        plan.previous = carried.marks
        plan.carried = carried.carried
        last_full = state.full_read(fv.name)
        if carried.full_read is not None and (last_full is None or carried.full_read > last_full):
            plan.full_read = carried.full_read
    # The job's re-read marks, whatever Feast's pulls moved (they never settle the job's rows).
    rereads = state.rereads(fv.name)
    plan.rereads = {s: rereads[s] for s in sources if s in rereads}
    for source, raw in sorted(state.unreadable_rereads(fv.name).items()):
        if source in plan.rereads and plan.reload is None:  # a reload reads it all anyway
            plan.warnings.append(
                f"{fv.name}: the {source} re-read mark {raw!r} is not a time: read as the "
                "beginning (re-reading costs calls, never data; the run rewrites it)"
            )
    for source in sources:
        mark = plan.previous[source]
        if mark is not None and mark > end:
            plan.warnings.append(
                f"{fv.name}: the {source} watermark {mark.isoformat()} is after the run's end "
                "(a run was given a future --end-date?): read from the beginning"
            )
            mark = None
        plan.starts[source] = None if plan.reload is not None else mark
    return plan


def watermarks_after(
    plan: ViewPlan, report: PullReport, end: datetime
) -> tuple[dict[str, datetime | None], list[str]]:
    """Each source's watermark after the run, and the warnings to report.

    Args:
        plan: The view's plan.
        report: What the view's pull did (``errors``, ``rows_by_source``).
        end: The run's end.
    """
    marks: dict[str, datetime | None] = {}
    warnings: list[str] = []
    for source in plan.sources:
        failed = unmerged(report, source)
        empty = plan.starts[source] is None and not report.rows_by_source.get(source, 0)
        # A failed source keeps its watermark; after a wipe or a mode switch there is none.
        kept = plan.previous[source] if plan.reload in (None, "full") else None
        if failed:
            marks[source] = kept
        elif empty:
            marks[source] = kept
            warnings.append(
                f"{plan.view}: {source} returned no rows reading from the beginning: its "
                "watermark did not move (check the source; the next run reads it all again)"
            )
        else:
            marks[source] = end
    return marks, warnings


def rereads_after(
    plan: ViewPlan, report: PullReport
) -> tuple[dict[str, datetime | None], list[str]]:
    """Each source to read again from a moment after the run (``None``: the beginning).

    Only Xiva's rows can be unsettled (the module docstring): merged with nothing (the DWH was
    down) or not recorded (the snapshot table failed). Then the mark is the older of the
    previous one and this run's Xiva start. Otherwise a run that read Xiva again from the mark
    (or from the beginning) and did not fail removes it; any other keeps it.

    Args:
        plan: The view's plan.
        report: What the view's pull did (``errors``).

    Returns:
        ``({source: moment or None}, warnings)``: a source absent from the mapping is settled.
    """
    if "xiva" not in plan.sources:
        return {}, []
    kept = plan.rereads if plan.reload in (None, "full") else {}
    start = plan.starts["xiva"]
    why = unsettled(report)
    if why is not None:
        if "xiva" in kept:
            older = kept["xiva"]
            start = None if start is None or older is None else min(start, older)
        when = "the beginning" if start is None else to_iso(start)
        return {"xiva": start}, [
            f"{plan.view}: xiva's rows were not settled ({why}): Xiva is read again from "
            f"{when} once the DWH and the snapshot table answer"
        ]
    reread = start is None or "xiva" in report.reread
    if "xiva" in kept and (not reread or "xiva" in report.errors):
        return {"xiva": kept["xiva"]}, []
    return {}, []


def feast_watermark(marks: Mapping[str, datetime | None]) -> datetime | None:
    """Feast's watermark for the view: the oldest source watermark, ``None`` if one is missing."""
    if not marks or any(m is None for m in marks.values()):
        return None
    return min(as_utc(m) for m in marks.values() if m is not None)
