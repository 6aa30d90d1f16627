"""The streamed Xiva pull on the real simulator and PostgreSQL: chunks, retries, malformed
records, late changes and the run's own request count."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pyarrow as pa
import pytest

from tests.support.services import REDIS_URL, SIM_PASSWORD, SIM_USER
from xiva_source.dwh import pending
from xiva_source.feast_plugin.sources import XivaSource
from xiva_source.features.extractor import feature_schema, features_from_360
from xiva_source.pipeline import PullReport, pull_batches
from xiva_source.pipeline.context import PullContext, PullOptions, feature_arrow_types
from xiva_source.pipeline.xiva_pull import iter_xiva
from xiva_source.settings import Settings, load_settings
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.timeutil import utc_now
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.usage import RedisUsageStore

SOURCE = XivaSource("xiva_customers")
PENDING_TABLE = pending.pending_table_name("xiva_customer_snapshots")


@pytest.fixture
def settings(xiva_env: XivaSimulator, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The simulator, no client-side rate (loopback), a short retry budget for failing fetches."""
    monkeypatch.setenv("XIVA_REQUESTS_PER_SECOND", "0")
    monkeypatch.setenv("XIVA_RETRY_BUDGET", "0.3")
    monkeypatch.setenv("XIVA_MAX_RETRY_AFTER", "0")
    return load_settings()


class Recorder:
    """A :class:`~xiva_source.pipeline.report.Progress` that remembers what it was told."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.done += n


def _pull(
    settings: Settings,
    pg_url: str,
    *,
    start: datetime | None,
    end: datetime | None = None,
    overlap: float = 0.0,
    chunk_size: int = 50,
    report: PullReport | None = None,
) -> list[pa.Table]:
    return list(
        pull_batches(
            SOURCE,
            settings=settings,
            feature_names=list(feature_schema()),
            start_date=start,
            end_date=end or utc_now(),
            options=PullOptions(snapshot_url=pg_url, pull_overlap_seconds=overlap),
            chunk_size=chunk_size,
            report=report,
        )
    )


def _ids(tables: list[pa.Table]) -> list[str]:
    return [cid for t in tables for cid in t.column("customer_id").to_pylist()]


def _changed(sim: XivaSimulator, n: int, at: datetime) -> list[str]:
    return sim.update_customers(count=n, at=at)


def _path_360(cid: str) -> str:
    return f"/customerManagement/v4/customers/{cid}/"


def test_the_pull_streams_chunks_with_the_extractors_rows_and_a_progress_total(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    t0 = utc_now() - timedelta(minutes=5)
    changed = _changed(sim, 23, t0 + timedelta(seconds=1))
    progress = Recorder()
    report = PullReport(progress=progress)
    end = utc_now()

    tables = _pull(settings, pg_url, start=t0, end=end, chunk_size=5, report=report)

    assert [t.num_rows for t in tables] == [5, 5, 5, 5, 3]  # one table per chunk, as they come
    assert sorted(_ids(tables)) == sorted(changed)
    rows = {r["customer_id"]: r for t in tables for r in t.to_pylist()}
    for cid in changed:
        expected = features_from_360(sim.view_360(cid), now=end)
        assert {k: rows[cid][k] for k in feature_schema()} == {
            k: expected[k] for k in feature_schema()
        }
        assert rows[cid]["event_timestamp"] == expected["event_timestamp"]
    assert progress.total == 23 and progress.done == 23
    assert report.rows_by_source == {"xiva": 23} and report.pending_retries == 0


def test_customers_whose_360_failed_are_read_by_the_next_pull_without_changing(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    t0 = utc_now() - timedelta(minutes=5)
    changed = _changed(sim, 100, t0 + timedelta(seconds=1))
    failing = changed[:4]  # below max_failed_fraction (5%): the pull succeeds without them
    sim.set_faults(FaultConfig(kinds=("503",), paths={_path_360(c) for c in failing}))
    first_end = utc_now()
    first = PullReport()

    tables = _pull(settings, pg_url, start=t0, end=first_end, report=first)

    assert sorted(_ids(tables)) == sorted(changed[4:])
    assert first.failed_customers == 4 and first.pending_retries == 4
    stored = pending.read_pending(pg_url, PENDING_TABLE, SOURCE.name)
    assert sorted(stored) == sorted(failing)
    assert all("360 fetch failed" in p.reason and p.attempts == 1 for p in stored.values())

    sim.clear_faults()  # Xiva is fine again; nothing changed in it since the first pull
    second = PullReport()
    tables = _pull(settings, pg_url, start=first_end, report=second)

    assert sorted(_ids(tables)) == sorted(failing)
    assert (second.retried, second.recovered, second.pending_retries) == (4, 4, 0)
    assert pending.read_pending(pg_url, PENDING_TABLE, SOURCE.name) == {}


def test_a_pending_customer_stays_pending_when_the_consumer_stops_before_its_chunk(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    cid = sim.customer_ids()[3]
    pending.remember_pending(pg_url, PENDING_TABLE, SOURCE.name, {cid: "test"}, now=utc_now())

    stream = cast(
        Generator[pa.Table, None, None],
        pull_batches(
            SOURCE,
            settings=settings,
            feature_names=list(feature_schema()),
            start_date=utc_now(),
            end_date=utc_now(),
            options=PullOptions(snapshot_url=pg_url, pull_overlap_seconds=0),
        ),
    )
    assert _ids([next(stream)]) == [cid]
    stream.close()  # e.g. the online write failed: the row never reached the store

    assert list(pending.read_pending(pg_url, PENDING_TABLE, SOURCE.name)) == [cid]


def test_a_pending_customer_xiva_no_longer_has_is_forgotten_and_reported(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    gone = "00000000-0000-4000-8000-000000000000"
    pending.remember_pending(pg_url, PENDING_TABLE, SOURCE.name, {gone: "x"}, now=utc_now())
    report = PullReport()

    assert _pull(settings, pg_url, start=utc_now(), report=report) == []

    assert (report.gone, report.gone_ids, report.failed_customers) == (1, [gone], 0)
    assert report.pending_retries == 0


def test_malformed_records_are_skipped_reported_and_retried_never_failing_the_pull(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    t0 = utc_now() - timedelta(minutes=5)
    changed = _changed(sim, 8, t0 + timedelta(seconds=1))
    bad_date, bad_type = changed[0], changed[1]
    sim.corrupt_customer(bad_date, {"customer.lastUpdate": "not a date"})
    sim.corrupt_customer(bad_type, {"financial.payment_count": "many"})
    (far_future,) = sim.update_customers(
        ids=[sim.customer_ids()[0]], at=datetime(9999, 12, 31, tzinfo=UTC)
    )
    first_end = utc_now()
    report = PullReport()

    tables = _pull(settings, pg_url, start=t0, end=first_end, report=report)

    assert sorted(_ids(tables)) == sorted(changed[2:])
    assert report.malformed == 3
    assert sorted(report.malformed_ids) == sorted([bad_date, bad_type, far_future])
    stored = pending.read_pending(pg_url, PENDING_TABLE, SOURCE.name)
    assert sorted(stored) == sorted([bad_date, bad_type, far_future])
    assert "transaction_count" in stored[bad_type].reason
    assert "future" in stored[far_future].reason

    again = PullReport()  # still malformed: still skipped, still pending (attempt 2)
    assert _pull(settings, pg_url, start=first_end, report=again) == []
    assert again.malformed == 3 and again.retried == 3 and again.pending_retries == 3
    stored = pending.read_pending(pg_url, PENDING_TABLE, SOURCE.name)
    assert {p.attempts for p in stored.values()} == {2}


def test_changes_that_arrived_late_inside_the_overlap_are_counted(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    previous_end = utc_now() - timedelta(seconds=30)
    seen = _changed(sim, 3, previous_end - timedelta(seconds=50))
    _pull(settings, pg_url, start=previous_end - timedelta(seconds=200), end=previous_end)
    # Stamped 100 s before the previous pull's end, visible only after it (a late commit).
    late = sim.update_customers(
        ids=sim.customer_ids()[:5], at=previous_end - timedelta(seconds=100)
    )
    assert not set(late) & set(seen)
    report = PullReport()

    tables = _pull(settings, pg_url, start=previous_end, overlap=300, report=report)

    assert sorted(_ids(tables)) == sorted(seen + late)  # the overlap re-read both
    assert report.late_changes == 5
    assert report.max_lateness_seconds == pytest.approx(100, abs=1)
    assert report.overlap_seconds == 300


def test_the_overlap_defaults_to_the_setting(
    sim: XivaSimulator, settings: Settings, pg_url: str
) -> None:
    report = PullReport()
    list(
        pull_batches(
            SOURCE,
            settings=settings.with_overrides(xiva_pull_overlap_seconds=1234),
            feature_names=[],
            start_date=utc_now(),
            end_date=utc_now(),
            options=PullOptions(snapshot_url=pg_url),
            report=report,
        )
    )
    assert report.overlap_seconds == 1234


def _hour_crossing_clock() -> Iterator[datetime]:
    """Half a second per reading, from 5 s before the next UTC hour."""
    now = utc_now()
    at = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, seconds=-5)
    while True:
        yield at
        at += timedelta(seconds=0.5)


def test_xiva_calls_are_the_runs_own_across_an_hour_and_beside_another_client(
    sim: XivaSimulator, settings: Settings, pg_url: str, redis_ns: str
) -> None:
    settings = settings.with_overrides(redis_url=REDIS_URL, xiva_redis_prefix=redis_ns)
    sim.add_user("other", "other-Pa55word!")
    t0 = utc_now() - timedelta(minutes=5)
    _changed(sim, 40, t0 + timedelta(seconds=1))
    ticks = _hour_crossing_clock()
    lock = threading.Lock()

    def clock() -> datetime:
        with lock:
            return next(ticks)

    stop = threading.Event()

    def other_worker() -> None:  # same deployment (same Redis counters), another user
        with XivaClient(
            sim.base_url, "other", "other-Pa55word!", settings=settings, requests_per_second=0
        ) as other:
            while not stop.is_set():
                other.get_customer(sim.customer_ids()[1])

    sim.reset_counters()
    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        report = PullReport()
        ctx = PullContext(
            settings=settings,
            options=PullOptions(snapshot_url=pg_url, pull_overlap_seconds=0),
            feature_types=feature_arrow_types(),
            feature_names=tuple(feature_schema()),
            start=t0,
            end=utc_now(),
            chunk_size=50,
            report=report,
            clock=clock,
        )
        assert sum(t.num_rows for t in iter_xiva(ctx)) == 40
    finally:
        stop.set()
        worker.join()

    by_user: dict[str, Any] = sim.counters()["by_user"]
    assert report.xiva_calls == by_user[SIM_USER] and report.xiva_calls >= 42  # login+list+360s
    assert by_user["other"] > 0
    # What the old difference of the shared hourly counters would have said: only this hour's
    # calls, and everyone's.
    usage = RedisUsageStore(_redis(), f"{redis_ns}:usage").report(hours=1, now=clock())
    assert usage.totals.requests != report.xiva_calls


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def test_the_password_is_the_simulators(sim: XivaSimulator) -> None:
    # Guards the fixture the tests above log in with (the settings' user and password).
    assert SIM_USER in sim.user_names() and SIM_PASSWORD
