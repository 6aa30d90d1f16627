"""The run summary and its one line (the format docs/operations.md documents): pure logic."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from xiva_source.jobs.locks import LockHolder
from xiva_source.jobs.summary import RunSummary, ViewRun
from xiva_source.pipeline.report import PullReport

END = datetime(2026, 1, 31, tzinfo=UTC)
SUMMARY_RE = re.compile(
    r"^materialize (?P<status>ok|degraded|failed) mode=(?P<mode>\w+) rows (?P<rows>(?:\w+=\d+ ?)+) "
    r"views=(?P<views>\d+) xiva_calls=\d+ fallbacks=(?P<fallbacks>\d+) failed_customers=\d+ "
    r"pending_retries=(?:\d+|unknown) malformed=\d+ (?:\w+=\w+ )*duration=\d+\.\ds"
)


def test_ok_line_has_the_documented_fields_in_order() -> None:
    summary = RunSummary(
        status="ok",
        mode="auto",
        views=[ViewRun("a", None, END, rows=3), ViewRun("b", END, END, rows=4)],
        report=PullReport(rows_by_source={"xiva": 1234, "dwh": 2000}, xiva_calls=1300),
        duration=12.34,
    )

    assert summary.line() == (
        "materialize ok mode=auto rows dwh=2000 xiva=1234 views=2 xiva_calls=1300 fallbacks=0 "
        "failed_customers=0 pending_retries=0 malformed=0 partial=0 reload=no engine=local "
        "duration=12.3s"
    )
    assert SUMMARY_RE.match(summary.line())
    assert summary.rows == 7 and summary.exit_code == 0


def test_a_run_that_read_nothing_still_has_a_rows_field() -> None:
    line = RunSummary(status="ok", mode="dwh").line()
    assert " rows none=0 views=0 " in line and SUMMARY_RE.match(line)


def test_fallbacks_and_expiry_warning_follow_the_counters() -> None:
    summary = RunSummary(
        status="ok",
        mode="auto",
        report=PullReport(
            fallbacks=["xiva failed (401), served from dwh"], errors={"xiva": "ignored here"}
        ),
        expiry_error="Redis went away",
    )
    line = summary.line()
    assert "fallbacks=1" in line
    assert line.startswith("materialize degraded mode=auto")
    assert line.endswith(
        "; degraded: 1 fallback to one source"
        "; fallback: xiva failed (401), served from dwh"
        "; warning: online expiry not extended: Redis went away"
    )
    assert "ignored here" not in line
    assert summary.exit_code == 3


def test_failed_line_carries_the_cause_and_fix_and_exits_1() -> None:
    summary = RunSummary(
        status="failed", mode="xiva", error="view v: Data source 'xiva' failed. Fix: check it."
    )
    assert summary.exit_code == 1
    assert summary.line().startswith("materialize failed mode=xiva rows none=0 views=0")
    assert summary.line().endswith("; error: view v: Data source 'xiva' failed. Fix: check it.")


def test_secrets_in_messages_are_masked() -> None:
    summary = RunSummary(
        status="failed",
        mode="dwh",
        error="view v: cannot connect to postgresql://root:dwh-pw@db:5432/x",
    )
    assert "dwh-pw" not in summary.line()


def test_skipped_line_names_the_holder() -> None:
    holder = LockHolder(pid=42, host="cron-1", since="2026-01-31T00:00:00+00:00")
    summary = RunSummary(status="skipped", mode="auto", holder=holder)

    assert summary.line() == (
        "skipped: another materialization holds the lock "
        "(pid 42 on cron-1, since 2026-01-31T00:00:00+00:00)"
    )
    assert summary.exit_code == 0
    assert RunSummary(status="skipped", mode="auto").line() == (
        "skipped: another materialization holds the lock"
    )


def test_the_xiva_pulls_retries_malformed_and_late_changes_are_in_the_line() -> None:
    summary = RunSummary(status="ok", mode="xiva", report=PullReport(rows_by_source={"xiva": 96}))
    report = PullReport(retried=5, recovered=4, pending_retries=3, overlap_seconds=900)
    report.add_malformed("m-1")
    report.add_gone("g-1")
    report.add_late(410.4)
    report.add_late(12)
    summary.report.merge(report)

    line = summary.line()
    assert " pending_retries=3 malformed=1 " in line and SUMMARY_RE.match(line)
    assert "; degraded: 3 customers pending a retry (xiva-source pending lists them)" in line
    assert summary.exit_code == 3
    assert "; retried: 4 of 5 pending customers read" in line
    assert "; malformed: m-1 (skipped, retried next run)" in line
    assert "; gone: 1 customers no longer in Xiva (g-1)" in line
    assert "; late: 2 changes up to 410 s late (overlap 900 s)" in line


def test_an_unreadable_pending_table_makes_the_count_unknown_and_says_why() -> None:
    summary = RunSummary(status="ok", mode="xiva")
    summary.report.merge(PullReport(pending_retries=None, errors={"pending": "db down"}))

    line = summary.line()
    assert " pending_retries=unknown " in line and SUMMARY_RE.match(line)
    assert "; warning: pending-retry table: db down" in line


def test_exit_statuses_follow_the_outcome() -> None:
    assert RunSummary(status="ok", mode="dwh").exit_code == 0
    assert (
        RunSummary(status="skipped", mode="dwh", report=PullReport(pending_retries=4)).exit_code
        == 0
    )
    assert (
        RunSummary(status="failed", mode="dwh", report=PullReport(fallbacks=["x"])).exit_code == 1
    )
    one_pending = RunSummary(status="ok", mode="xiva", report=PullReport(pending_retries=1))
    assert one_pending.exit_code == 3 and one_pending.outcome == "degraded"
    assert "; degraded: 1 customer pending a retry" in one_pending.line()
    unknown = RunSummary(status="ok", mode="xiva", report=PullReport(pending_retries=None))
    assert unknown.exit_code == 3
    assert "the pending-retry table could not be read" in unknown.line()


def test_fail_on_fallback_turns_a_fallback_into_a_failure() -> None:
    summary = RunSummary(
        status="ok",
        mode="auto",
        report=PullReport(fallbacks=["xiva failed, serving from dwh only: 401"]),
    )
    summary.fail_on_fallback = True
    line = summary.line()
    assert summary.exit_code == 1 and line.startswith("materialize failed mode=auto")
    assert "; degraded:" not in line
    assert "MATERIALIZE_FAIL_ON_FALLBACK" in line and "Fix:" not in line
    # Without a fallback the setting changes nothing.
    assert RunSummary(status="ok", mode="auto", fail_on_fallback=True).exit_code == 0


def test_the_line_never_doubles_a_period() -> None:
    summary = RunSummary(
        status="failed", mode="dwh", error="view v: the DWH failed.. Fix: check DWH_URL.. "
    )
    line = summary.line()
    assert ".." not in line.replace("...", "")
    assert "failed. Fix: check DWH_URL." in line


def test_the_record_holds_the_result_for_status() -> None:
    view = ViewRun("a", None, END, rows=3, rows_by_source={"dwh": 3}, duration=1.25)
    summary = RunSummary(
        status="ok",
        mode="auto",
        views=[view],
        kept_views=["b"],
        report=PullReport(
            fallbacks=["dwh failed, b kept its previous values"], rows_by_source={"dwh": 3}
        ),
        duration=2.5,
    )
    record = summary.record(END)
    assert record["outcome"] == "degraded" and record["exit_code"] == 3
    assert record["finished_at"].startswith("2026-01-31T00:00:00")
    assert record["rows_by_source"] == {"dwh": 3} and record["views"] == ["a"]
    assert record["degraded"] == ["1 fallback to one source"]
    views = summary.view_records(END)
    assert views["a"]["outcome"] == "ok" and views["a"]["rows"] == 3
    assert views["a"]["duration_seconds"] == 1.25 and views["b"]["outcome"] == "kept"


def test_step_costs_are_on_the_line_when_asked_in_step_order() -> None:
    summary = RunSummary(status="ok", mode="dwh", report=PullReport(dwh_lookback_rows=7))
    with summary.timed("expiry", unit="keys") as cost:
        cost.count += 10_000
    with summary.timed("plan", count=1, unit="views"):
        pass
    with summary.timed("plan", count=1, unit="views"):
        pass
    with summary.timed("state"):
        pass

    assert "costs" not in RunSummary(status="ok", mode="dwh").line(costs=True)  # none measured
    assert "; costs:" not in summary.line(costs=False)
    line = summary.line(costs=True)
    match = re.search(
        r"; costs: plan=\d+\.\d\ds/2views expiry=\d+\.\d\ds/10000keys state=\d+\.\d\ds "
        r"dwh_lookback_rows=7$",
        line,
    )
    assert match, line
    assert SUMMARY_RE.match(line)
    assert summary.record(END)["costs"]["expiry"]["count"] == 10_000
