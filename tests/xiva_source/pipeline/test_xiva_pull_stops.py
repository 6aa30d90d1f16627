"""A Xiva pull that cannot finish stops cleanly, in bounded time: Xiva stopped mid-pull (a
simulator of the test's own, really stopped) or the run deadline passed. What was read is kept,
the failed customers are pending, the pull raises (so the watermark does not move)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pyarrow as pa
import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from tests.support.tiers import service
from xiva_source.dwh import pending
from xiva_source.errors import DataSourceError
from xiva_source.feast_plugin.sources import XivaSource
from xiva_source.features.extractor import feature_schema
from xiva_source.pipeline import PullReport, pull_batches
from xiva_source.pipeline.context import PullOptions
from xiva_source.settings import Settings, load_settings
from xiva_source.simulator import FaultConfig, SimulatorConfig, XivaSimulator
from xiva_source.timeutil import utc_now

SOURCE = XivaSource("xiva_customers")
PENDING_TABLE = pending.pending_table_name("xiva_customer_snapshots")


def _stream(settings: Settings, pg_url: str, report: PullReport) -> Iterator[pa.Table]:
    return pull_batches(
        SOURCE,
        settings=settings,
        feature_names=list(feature_schema()),
        start_date=None,
        end_date=utc_now() + timedelta(seconds=1),
        options=PullOptions(snapshot_url=pg_url, pull_overlap_seconds=0),
        chunk_size=20,
        report=report,
    )


@pytest.fixture
@service("http")
def own_sim() -> Iterator[XivaSimulator]:
    sim = XivaSimulator(SimulatorConfig(customers=400, seed=3, users={SIM_USER: SIM_PASSWORD}))
    sim.start()
    yield sim
    sim.stop()


def test_xiva_stopped_mid_pull_ends_it_in_seconds_keeping_what_was_read(
    own_sim: XivaSimulator, pg_url: str
) -> None:
    settings = load_settings(
        xiva_api_base_url=own_sim.base_url,
        xiva_api_username=SIM_USER,
        xiva_api_password=SIM_PASSWORD,
        xiva_requests_per_second=0,
        xiva_max_workers=4,
    )
    report = PullReport()
    stream = _stream(settings, pg_url, report)
    kept = [next(stream)]
    # Xiva dies mid-pull: open keep-alive connections are dropped, new ones refused.
    own_sim.set_faults(FaultConfig(kinds=("drop",)))
    own_sim.stop()
    started = time.monotonic()
    with pytest.raises(DataSourceError) as info:
        kept.extend(stream)  # chunks read before the failure are still handed over
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed  # was ~17 s of retries per customer
    assert "circuit breaker" in str(info.value) or "XIVA_CONNECT_ATTEMPTS" in str(info.value)
    ids = [cid for t in kept for cid in t.column("customer_id").to_pylist()]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)
    stored = pending.read_pending(pg_url, PENDING_TABLE, SOURCE.name)
    assert set(report.failed_customer_ids) <= set(stored)  # failed ones wait for the next run
    assert not set(stored) & set(ids)
    # Not a retry loop per remaining customer: a few failed calls, then the breaker.
    assert report.xiva_calls - len(ids) < 60, report.xiva_calls


def test_the_run_deadline_stops_the_pull_cleanly(
    sim: XivaSimulator, xiva_env: XivaSimulator, pg_url: str
) -> None:
    settings = load_settings(
        xiva_requests_per_second=0, xiva_max_workers=2, xiva_run_deadline_seconds=8.0
    )
    # 0.2 s per 360 view on 2 workers: the whole pull would take minutes; the deadline stops it
    # with part of it kept (long enough for some rows on a loaded machine).
    sim.set_faults(FaultConfig(kinds=("slow",), slow_seconds=0.2, paths={"customer_360"}))
    report = PullReport()
    kept: list[pa.Table] = []
    with pytest.raises(DataSourceError) as info:
        kept.extend(_stream(settings, pg_url, report))
    message = str(info.value)
    assert "XIVA_RUN_DEADLINE_SECONDS=8 s passed" in message and "kept" in message
    rows = sum(t.num_rows for t in kept)
    assert 0 < rows < 2000 and report.rows_by_source["xiva"] == rows
