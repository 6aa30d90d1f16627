"""The worker in-process, step by step (real simulator, Redis, PostgreSQL; clock injected)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.feast import FeastEnv
from tests.support.xiva_source.sync import RECENT, events_of, online_value, wait_for
from xiva_source.settings import load_settings
from xiva_source.sync.checkpoint import Checkpoint, CheckpointStore
from xiva_source.sync.worker import SyncOptions, SyncWorker
from xiva_source.timeutil import utc_now


class Clock:
    """An injected clock: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def worker(sync_env: FeastEnv, feast_repo: Path, clock: Clock) -> Iterator[SyncWorker]:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(feast_repo))
    followed: list[tuple[str, datetime]] = []

    def hook(cid: str, last_update: datetime, *_: Any) -> None:
        followed.append((cid, last_update))

    w = SyncWorker(
        store,
        load_settings(repo_path=feast_repo),
        options=SyncOptions(interval=0.05, dwh_interval=3600),
        clock=clock,
        hook=hook,
    )
    w.followed = followed  # type: ignore[attr-defined]
    yield w
    w.close()


def _follow(worker: SyncWorker, customer_id: str) -> None:
    """Step until the worker followed ``customer_id``'s change."""
    followed: list[tuple[str, datetime]] = worker.followed  # type: ignore[attr-defined]

    def done() -> bool:
        worker.step()
        return any(cid == customer_id for cid, _ in followed)

    wait_for(f"the change of {customer_id} followed", done, timeout=30)


def test_a_change_reaches_online_and_publishes_exactly_one_event(
    worker: SyncWorker, sync_env: FeastEnv, feast_repo: Path, project: str
) -> None:
    worker.step()  # the start: position now, the segments' baseline
    cid = sync_env.sim.customer_ids()[7]
    sync_env.sim.update_customers(ids=[cid])
    bills = float(sync_env.sim.view_360(cid)["financial"]["total_bills"])

    _follow(worker, cid)

    assert online_value(feast_repo, cid, "total_revenue") == pytest.approx(bills)
    events = events_of(sync_env.redis_url, project, cid)
    assert [(e.event, e.segment) for e in events] == [("joined", RECENT)]
    # More polls, and a restart that reads the change again (a crash before the checkpoint was
    # saved): the same row, no second event.
    for _ in range(3):
        worker.step()
    store = CheckpointStore(worker.redis, project)
    saved = store.load()
    assert saved is not None and saved.since is not None
    store.save(Checkpoint(since=saved.since - timedelta(seconds=5), day=saved.day))
    worker.checkpoint = None
    worker.followed.clear()  # type: ignore[attr-defined]
    _follow(worker, cid)
    assert events_of(sync_env.redis_url, project, cid) == events
    assert online_value(feast_repo, cid, "total_revenue") == pytest.approx(bills)


def test_time_passing_publishes_the_leave_at_the_next_day_boundary(
    worker: SyncWorker, sync_env: FeastEnv, project: str, clock: Clock
) -> None:
    worker.step()
    cid = sync_env.sim.customer_ids()[11]
    sync_env.sim.update_customers(ids=[cid])  # paid now: joins `recent` (<= 7 days)
    _follow(worker, cid)
    assert [e.event for e in events_of(sync_env.redis_url, project, cid)] == ["joined"]

    worker.step()  # the same day: nothing time-driven
    assert [e.event for e in events_of(sync_env.redis_url, project, cid)] == ["joined"]

    clock.offset = timedelta(days=8)  # no data change, 8 days later: the rule crossed
    worker.step()

    events = events_of(sync_env.redis_url, project, cid)
    assert [(e.event, e.segment) for e in events] == [("joined", RECENT), ("left", RECENT)]
    assert worker.status.counters.day_refreshes == 2  # the start's baseline and the boundary
    worker.step()  # once per day
    assert len(events_of(sync_env.redis_url, project, cid)) == 2


def test_metrics_carry_lag_and_counters_in_the_textfile_and_over_http(
    sync_env: FeastEnv, feast_repo: Path, tmp_path: Path
) -> None:
    import urllib.request

    from feast import FeatureStore

    from xiva_source.sync.metrics import MetricsServer

    w = SyncWorker(
        FeatureStore(repo_path=str(feast_repo)),
        load_settings(repo_path=feast_repo),
        options=SyncOptions(interval=0.05, dwh_interval=3600, metrics_textfile=tmp_path / "j.prom"),
    )
    server = MetricsServer(w.metrics, 0)
    try:
        cid = sync_env.sim.customer_ids()[2]
        w.step()
        sync_env.sim.update_customers(ids=[cid])
        wait_for("a change followed", lambda: (w.step(), w.status.counters.customers)[1] == 1)
        w._publish_status()  # what the loop does every few seconds
        text = (tmp_path / "j_sync.prom").read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as answer:
            served = answer.read().decode()
    finally:
        server.close()
        w.close()
    for body in (text, served):
        assert 'loyalty_sync_lag_seconds{source="xiva"}' in body
        assert "loyalty_sync_changes_total 1" in body
        assert "loyalty_sync_events_total 1" in body
        assert 'loyalty_sync_degraded{part="xiva"} 0' in body
    assert not (tmp_path / "j.prom").exists()  # the job's own file is not touched


def test_a_malformed_change_is_passed_over_once_and_the_others_are_followed(
    worker: SyncWorker, sync_env: FeastEnv, project: str
) -> None:
    worker.step()
    bad, good = sync_env.sim.customer_ids()[30], sync_env.sim.customer_ids()[31]
    sync_env.sim.update_customers(ids=[bad])
    sync_env.sim.corrupt_customer(bad, {"customer.lastUpdate": "not a date"})
    sync_env.sim.update_customers(ids=[good])

    _follow(worker, good)
    for _ in range(3):
        worker.step()

    assert worker.status.counters.skipped == 1
    assert not events_of(sync_env.redis_url, project, bad)
    assert [e.event for e in events_of(sync_env.redis_url, project, good)] == ["joined"]


def test_a_corrupted_checkpoint_stops_the_worker_with_the_repair(
    worker: SyncWorker, project: str
) -> None:
    from xiva_source.cli import main
    from xiva_source.sync.checkpoint import checkpoint_key
    from xiva_source.sync.errors import SyncCheckpointError

    worker.redis.set(checkpoint_key(project), "not json")
    with pytest.raises(SyncCheckpointError) as info:
        worker.step()
    assert "redis-cli DEL" in info.value.fix
    assert main(["sync", "--repo", str(worker.store.repo_path)]) == 4


def test_a_first_start_over_a_corrupted_watermark_stops_rather_than_starting_now(
    worker: SyncWorker, project: str
) -> None:
    """Starting "now" would skip every change since the job's watermark: the worker refuses."""
    from xiva_source.feast_plugin.errors import CorruptedStateError

    state_hash = f"xiva_source:materialize:state:{project}"
    worker.redis.hset(state_hash, "wm:customer_features:xiva", "garbage-time")
    with pytest.raises(CorruptedStateError) as info:
        worker.step()
    assert "wm:customer_features:xiva" in str(info.value)
    assert worker.checkpoint is None  # nothing followed, no position saved
    assert worker.checkpoints.load() is None
