"""The worker's status record and its lines in ``xiva-source status``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xiva_source.sync.status import SyncStatus, status_json, status_lines

NOW = datetime(2026, 10, 14, 8, 0, 0, tzinfo=UTC)


def _status() -> SyncStatus:
    status = SyncStatus(pid=42, host="h1", mode="auto", updated=NOW - timedelta(seconds=2))
    status.caught_up = {"xiva": NOW - timedelta(seconds=1.5), "dwh": NOW - timedelta(minutes=3)}
    status.error("dwh", "connection refused", NOW - timedelta(seconds=30))
    status.counters.customers = 7
    return status


def test_the_record_round_trips_and_lags_are_measured_from_the_last_catch_up() -> None:
    status = _status()
    again = SyncStatus.loads(status.dumps())
    assert again == status
    assert again.lag("xiva", NOW) == 1.5 and again.lag("dwh", NOW) == 180.0
    assert again.counters.errors == {"dwh": 1}
    assert again.recovered("dwh") and not again.recovered("dwh")


def test_lines_say_whether_a_worker_runs_its_lag_and_its_last_error() -> None:
    lines = status_lines(_status(), "process 42 on h1 (since x)", NOW)
    text = "\n".join(lines)
    assert lines[0].startswith("sync worker: running (process 42 on h1")
    assert "xiva: lag 1.5s" in text and "dwh: lag 180.0s; degraded: connection refused" in text
    assert "followed 7 changes" in text and "last error at" in text
    assert status_json(_status(), "p", NOW)["lag_seconds"] == {"xiva": 1.5, "dwh": 180.0}

    assert status_lines(_status(), None, NOW)[0].startswith("sync worker: not running (process 42")
    assert status_lines(None, None, NOW) == [
        "sync worker: not running (no active `xiva-source sync` for this project)"
    ]
    assert status_json(None, None, NOW) == {"running": False, "holder": None}
