"""Which sources a view reads in a run, from where, and where their watermarks go afterwards.

The rules (docs/operations.md, "Watermarks per source"):

- A view's sources: a ``CustomerSource`` reads Xiva, the DWH or both (``auto``) by mode; a
  ``XivaSource`` / ``DwhSource`` its one source. Each has its own watermark (:mod:`.state`).
- A source starts at its watermark; none (never read, a new mode, a wiped store, ``--full``),
  or one later than the run's end (a run once given a future ``--end-date``): the beginning.
- After the run a source's watermark moves to the run's end, unless it failed (or, for the DWH
  in ``auto``, its changes could not be merged because Xiva's last known values were
  unreadable), or it read from the beginning and found nothing (an empty first or full pull
  never moves a watermark: it is reported).
- Feast's watermark (``most_recent_end_time``) moves to the oldest of the view's source
  watermarks: every source of the view is online up to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xiva_source.pipeline.auto import DWH_UNMERGED, LAST_KNOWN
from xiva_source.pipeline.report import PullReport
from xiva_source.pipeline.sources import source_kind
from xiva_source.timeutil import as_utc

__all__ = ["ViewPlan", "feast_watermark", "plan_view", "watermarks_after"]

_MODE_SOURCES: dict[str, tuple[str, ...]] = {
    "xiva": ("xiva",),
    "dwh": ("dwh",),
    "auto": ("xiva", "dwh"),
}


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

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources the view reads, in order."""
        return tuple(self.starts)


def plan_view(
    fv: Any,
    mode: str,
    fields: Mapping[str, str],
    end: datetime,
    *,
    reload: str | None,
) -> ViewPlan:
    """The plan of ``fv`` for a run ending at ``end``.

    Args:
        fv: The feature view (its ``name`` and ``batch_source``).
        mode: ``FEATURE_STORE_DATA_SOURCE`` of the run.
        fields: The stored state (:meth:`~xiva_source.jobs.state.RunState.load`).
        end: The run's end.
        reload: Read everything, and why (``full``, ``wiped``); ``None`` for incremental.
    """
    from xiva_source.jobs.state import RunState

    kind = source_kind(fv.batch_source)
    view_mode = kind if kind in ("xiva", "dwh") else mode  # (a foreign source fails in the pull)
    assert view_mode is not None
    sources = _MODE_SOURCES[view_mode]
    stored_mode = RunState.mode(fields, fv.name)
    if reload is None and stored_mode is not None and stored_mode != view_mode:
        reload = "mode"
    previous = {s: RunState.watermark(fields, fv.name, s) for s in sources}
    plan = ViewPlan(fv.name, view_mode, {}, previous, reload)
    for source in sources:
        mark = previous[source]
        if mark is not None and mark > end:
            plan.warnings.append(
                f"{fv.name}: the {source} watermark {mark.isoformat()} is after the run's end "
                "(a run was given a future --end-date?): read from the beginning"
            )
            mark = None
        plan.starts[source] = None if reload is not None else mark
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
        failed = source in report.errors or (
            source == "dwh" and (LAST_KNOWN in report.errors or DWH_UNMERGED in report.errors)
        )
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


def feast_watermark(marks: Mapping[str, datetime | None]) -> datetime | None:
    """Feast's watermark for the view: the oldest source watermark, ``None`` if one is missing."""
    if not marks or any(m is None for m in marks.values()):
        return None
    return min(as_utc(m) for m in marks.values() if m is not None)
