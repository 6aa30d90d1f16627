"""The per-source watermark rules (pure logic): where each source starts and where it moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from xiva_source.feast_plugin.run_state import StateSnapshot
from xiva_source.jobs.plan import feast_watermark, plan_view, watermarks_after
from xiva_source.pipeline.report import PullReport

END = datetime(2026, 5, 1, 12, tzinfo=UTC)
T1 = END - timedelta(hours=1)
T2 = END - timedelta(hours=2)


def _view(kind: str = "customer") -> SimpleNamespace:
    return SimpleNamespace(name="v", batch_source=SimpleNamespace(source_kind=kind))


def _fields(**marks: datetime) -> StateSnapshot:
    out = {f"wm:v:{s}": m.isoformat() for s, m in marks.items()}
    out["mode:v"] = "auto"
    return StateSnapshot(out)


def test_each_source_starts_at_its_own_watermark() -> None:
    plan = plan_view(_view(), "auto", _fields(xiva=T1, dwh=T2), END, reload=None)
    assert plan.starts == {"xiva": T1, "dwh": T2} and plan.reload is None


def test_a_failed_source_keeps_its_watermark_the_other_moves() -> None:
    plan = plan_view(_view(), "auto", _fields(xiva=T1, dwh=T2), END, reload=None)
    report = PullReport(rows_by_source={"xiva": 3}, errors={"dwh": "down"})
    marks, warnings = watermarks_after(plan, report, END)
    assert marks == {"xiva": END, "dwh": T2} and not warnings
    assert feast_watermark(marks) == T2  # Feast's: the slowest source


def test_unreadable_last_known_values_hold_the_dwh_watermark() -> None:
    plan = plan_view(_view(), "auto", _fields(xiva=T1, dwh=T2), END, reload=None)
    report = PullReport(errors={"xiva_last_known": "snapshot table down"})
    assert watermarks_after(plan, report, END)[0] == {"xiva": END, "dwh": T2}


def test_a_mode_switch_reloads_and_forgets_old_watermarks() -> None:
    plan = plan_view(_view(), "dwh", _fields(dwh=T2), END, reload=None)
    assert plan.reload == "mode" and plan.starts == {"dwh": None}
    marks, _ = watermarks_after(plan, PullReport(errors={"dwh": "x"}), END)
    assert marks == {"dwh": None}  # failed during the reload: read it all next time


def test_an_empty_pull_from_the_beginning_does_not_move_and_warns() -> None:
    plan = plan_view(_view("dwh"), "auto", StateSnapshot({}), END, reload=None)
    marks, warnings = watermarks_after(plan, PullReport(), END)
    assert marks == {"dwh": None} and "returned no rows" in warnings[0]
    assert feast_watermark(marks) is None


def test_a_watermark_in_the_future_is_ignored_and_reported() -> None:
    plan = plan_view(
        _view("xiva"),
        "dwh",
        StateSnapshot({"wm:v:xiva": "2030-01-01T00:00:00+00:00"}),
        END,
        reload=None,
    )
    assert plan.starts == {"xiva": None} and "after the run's end" in plan.warnings[0]


def test_full_reads_everything_but_a_failure_keeps_the_old_watermark() -> None:
    plan = plan_view(_view(), "auto", _fields(xiva=T1, dwh=T2), END, reload="full")
    assert plan.starts == {"xiva": None, "dwh": None}
    report = PullReport(rows_by_source={"xiva": 5}, errors={"dwh": "down"})
    assert watermarks_after(plan, report, END)[0] == {"xiva": END, "dwh": T2}
