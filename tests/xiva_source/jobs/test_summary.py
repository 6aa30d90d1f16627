"""The run summary and its one line (the format docs/operations.md documents): pure logic."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from xiva_source.jobs.locks import LockHolder
from xiva_source.jobs.summary import RunSummary, ViewRun

pytestmark = pytest.mark.unit

END = datetime(2026, 1, 31, tzinfo=UTC)
SUMMARY_RE = re.compile(
    r"^materialize (?P<status>ok|failed) mode=(?P<mode>\w+) rows (?P<rows>(?:\w+=\d+ ?)+) "
    r"views=(?P<views>\d+) xiva_calls=\d+ fallbacks=(?P<fallbacks>\d+) failed_customers=\d+ "
    r"pending_retries=(?:\d+|unknown) malformed=\d+ (?:\w+=\w+ )*duration=\d+\.\ds"
)


def test_ok_line_has_the_documented_fields_in_order() -> None:
    summary = RunSummary(
        status="ok",
        mode="auto",
        views=[ViewRun("a", None, END, rows=3), ViewRun("b", END, END, rows=4)],
        rows_by_source={"xiva": 1234, "dwh": 2000},
        xiva_calls=1300,
        duration=12.34,
    )

    assert summary.line() == (
        "materialize ok mode=auto rows dwh=2000 xiva=1234 views=2 xiva_calls=1300 fallbacks=0 "
        "failed_customers=0 pending_retries=0 malformed=0 partial=0 reload=no duration=12.3s"
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
        fallbacks=["xiva failed (401), served from dwh"],
        errors={"expiry": "Redis went away", "xiva": "ignored here"},
    )
    line = summary.line()
    assert "fallbacks=1" in line
    assert line.endswith(
        "; fallback: xiva failed (401), served from dwh"
        "; warning: online expiry not extended: Redis went away"
    )
    assert "ignored here" not in line


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
    from xiva_source.pipeline.report import PullReport

    summary = RunSummary(status="ok", mode="xiva", rows_by_source={"xiva": 96})
    report = PullReport(retried=5, recovered=4, pending_retries=3, overlap_seconds=900)
    report.add_malformed("m-1")
    report.add_gone("g-1")
    report.add_late(410.4)
    report.add_late(12)
    summary.absorb(report)

    line = summary.line()
    assert " pending_retries=3 malformed=1 " in line and SUMMARY_RE.match(line)
    assert "; retried: 4 of 5 pending customers read" in line
    assert "; malformed: m-1 (skipped, retried next run)" in line
    assert "; gone: 1 customers no longer in Xiva (g-1)" in line
    assert "; late: 2 changes up to 410 s late (overlap 900 s)" in line


def test_an_unreadable_pending_table_makes_the_count_unknown_and_says_why() -> None:
    from xiva_source.pipeline.report import PullReport

    summary = RunSummary(status="ok", mode="xiva")
    summary.absorb(PullReport(pending_retries=None, errors={"pending": "db down"}))
    summary.errors.update({"pending": "db down"})

    line = summary.line()
    assert " pending_retries=unknown " in line and SUMMARY_RE.match(line)
    assert "; warning: pending-retry table: db down" in line
