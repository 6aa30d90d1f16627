"""The per-source watermark rules (pure logic): where each source starts and where it moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from xiva_source.feast_plugin.run_state import FeastPart, StateSnapshot
from xiva_source.jobs.plan import feast_watermark, plan_view, rereads_after, watermarks_after
from xiva_source.pipeline.report import PullReport

END = datetime(2026, 5, 1, 12, tzinfo=UTC)
T1 = END - timedelta(hours=1)
T2 = END - timedelta(hours=2)


def _view(kind: str = "customer") -> SimpleNamespace:
    return SimpleNamespace(name="v", batch_source=SimpleNamespace(source_kind=kind))


def _fields(reread: str | None = None, **marks: datetime) -> StateSnapshot:
    out = {f"wm:v:{s}": m.isoformat() for s, m in marks.items()}
    out["mode:v"] = "auto"
    if reread is not None:
        out["reread:v:xiva"] = reread
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


def test_unsettled_xiva_rows_leave_a_reread_mark_at_the_pulls_start() -> None:
    plan = plan_view(_view(), "auto", _fields(xiva=T1, dwh=T2), END, reload=None)
    report = PullReport(rows_by_source={"xiva": 3}, errors={"dwh": "down", "xiva_unmerged": "x"})
    marks, _ = watermarks_after(plan, report, END)
    rereads, warnings = rereads_after(plan, report)
    assert marks == {"xiva": END, "dwh": T2}  # Xiva's changes are online: its watermark moves
    assert rereads == {"xiva": T1} and "Xiva is read again from" in warnings[0]


def test_a_first_run_not_recorded_rereads_xiva_from_the_beginning() -> None:
    plan = plan_view(_view(), "auto", StateSnapshot({}), END, reload=None)
    report = PullReport(rows_by_source={"xiva": 3}, errors={"snapshot": "down"})
    assert rereads_after(plan, report) == (
        {"xiva": None},
        [
            "v: xiva's rows were not settled (not recorded in the snapshot table): Xiva is read "
            "again from the beginning once the DWH and the snapshot table answer"
        ],
    )


def test_a_reread_mark_stays_until_a_run_reads_xiva_again_and_settles_it() -> None:
    fields = _fields(T2.isoformat(), xiva=T1, dwh=T1)
    plan = plan_view(_view(), "auto", fields, END, reload=None)
    assert plan.starts == {"xiva": T1, "dwh": T1} and plan.rereads == {"xiva": T2}
    # The DWH still down: the pull read from the watermark, nothing (or more) settled.
    assert rereads_after(plan, PullReport(errors={"dwh": "down"})) == ({"xiva": T2}, [])
    again = PullReport(errors={"dwh": "down", "xiva_unmerged": "x"})
    assert rereads_after(plan, again)[0] == {"xiva": T2}  # the older mark stays
    # Read again from the mark, then Xiva failed: kept; read again and settled: removed.
    assert rereads_after(plan, PullReport(reread=["xiva"], errors={"xiva": "down"}))[0] == {
        "xiva": T2
    }
    assert rereads_after(plan, PullReport(reread=["xiva"])) == ({}, [])


def test_unreadable_or_beginning_marks_read_everything_again() -> None:
    beginning = plan_view(_view(), "auto", _fields("beginning", xiva=T1, dwh=T1), END, reload=None)
    assert beginning.rereads == {"xiva": None} and not beginning.warnings
    state = _fields("garbage", xiva=T1, dwh=T1)
    assert not state.corruptions()  # never a CorruptedStateError: the run goes on
    unreadable = plan_view(_view(), "auto", state, END, reload=None)
    assert unreadable.rereads == {"xiva": None}  # costs calls, never data
    assert unreadable.warnings == [
        "v: the xiva re-read mark 'garbage' is not a time: read as the beginning (re-reading "
        "costs calls, never data; the run rewrites it)"
    ]
    full = plan_view(_view(), "auto", _fields("beginning", xiva=T1, dwh=T1), END, reload="full")
    assert rereads_after(full, PullReport()) == ({}, [])  # a full read settles everything


def test_a_watermark_feast_moved_keeps_the_jobs_reread_mark() -> None:
    fields = dict(_fields(T2.isoformat(), xiva=T2, dwh=T2).fields)
    pull = FeastPart("v", "p1", 0, 1, T2, T1, T1, "auto", {"xiva": 3, "dwh": 3}, ("xiva", "dwh"))
    fields[pull.field] = pull.to_json()
    view = SimpleNamespace(**vars(_view()), materialization_intervals=[(T2, T1)])
    plan = plan_view(view, "auto", StateSnapshot(fields), END, reload=None, now=T1)
    assert plan.carried == {"xiva": T1, "dwh": T1} and plan.starts == {"xiva": T1, "dwh": T1}
    assert plan.rereads == {"xiva": T2}  # Feast's pull settled nothing of the job's
    # The DWH still down: the job read Xiva from the adopted watermark only; the mark stays.
    assert rereads_after(plan, PullReport(errors={"dwh": "down"})) == ({"xiva": T2}, [])


def test_a_dwh_only_view_has_no_reread_mark() -> None:
    plan = plan_view(_view("dwh"), "auto", _fields(dwh=T2), END, reload=None)
    assert rereads_after(plan, PullReport(errors={"snapshot": "down"})) == ({}, [])
