"""``xiva-source sync`` as real processes: SIGTERM, a standby's takeover, SIGKILL mid-batch.

Real simulator, Redis and PostgreSQL; each worker is ``python -m xiva_source sync`` in its own
process (tests/support/xiva_source/sync.py).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import redis

from tests.support.feast import FeastEnv
from tests.support.xiva_source.sync import (
    RECENT,
    SyncProcess,
    events_of,
    online_value,
    wait_for,
)
from xiva_source.locking import LockHolder
from xiva_source.sync.checkpoint import checkpoint_key
from xiva_source.sync.status import read_status, sync_lock_key


def _holder_pid(redis_url: str, project: str) -> int | None:
    client = redis.Redis.from_url(redis_url)
    try:
        raw: Any = client.get(sync_lock_key(project))
        holder = LockHolder.loads(raw)
        return holder.pid if holder is not None else None
    finally:
        client.close()


def _started(redis_url: str, project: str) -> bool:
    """The active worker saved its first position (and published its status)."""
    client = redis.Redis.from_url(redis_url)
    try:
        status, _ = read_status(client, project)
        return status is not None and bool(client.exists(checkpoint_key(project)))
    finally:
        client.close()


def test_sigterm_stops_cleanly_with_exit_0_and_releases_the_lock(
    workers: list[SyncProcess], sync_env: FeastEnv, feast_repo: Path, project: str, tmp_path: Path
) -> None:
    worker = SyncProcess(feast_repo, tmp_path / "w.log").start()
    workers.append(worker)
    wait_for("the worker active", lambda: _started(sync_env.redis_url, project), process=worker)
    assert _holder_pid(sync_env.redis_url, project) == worker.pid

    worker.signal(signal.SIGTERM)

    assert worker.wait() == 0, worker.output()
    assert "SIGTERM received" in worker.output() and "stopped" in worker.output()
    assert "Traceback" not in worker.output()
    assert _holder_pid(sync_env.redis_url, project) is None  # released: a standby goes at once


def test_a_standby_takes_over_when_the_active_worker_dies(
    workers: list[SyncProcess], sync_env: FeastEnv, feast_repo: Path, project: str, tmp_path: Path
) -> None:
    first = SyncProcess(feast_repo, tmp_path / "first.log").start()
    workers.append(first)
    wait_for("the first worker active", lambda: _started(sync_env.redis_url, project))
    second = SyncProcess(feast_repo, tmp_path / "second.log").start()
    workers.append(second)
    wait_for("the standby waiting", lambda: "standby" in second.output(), process=second)
    assert _holder_pid(sync_env.redis_url, project) == first.pid

    first.kill()  # SIGKILL: no release; the standby proves it dead (same host) and takes over
    wait_for(
        "the takeover",
        lambda: _holder_pid(sync_env.redis_url, project) == second.pid,
        process=second,
    )
    cid = sync_env.sim.customer_ids()[21]
    sync_env.sim.update_customers(ids=[cid])
    bills = float(sync_env.sim.view_360(cid)["financial"]["total_bills"])
    wait_for(
        "the change followed by the new active worker",
        lambda: bool(events_of(sync_env.redis_url, project, cid)),
        process=second,
    )
    assert online_value(feast_repo, cid, "total_revenue") == bills
    assert [e.event for e in events_of(sync_env.redis_url, project, cid)] == ["joined"]


def test_sigkill_mid_batch_then_restart_loses_no_change_and_repeats_no_event(
    workers: list[SyncProcess], sync_env: FeastEnv, feast_repo: Path, project: str, tmp_path: Path
) -> None:
    first = SyncProcess(feast_repo, tmp_path / "first.log")
    first.args = (*first.args, "--batch-size", "10")
    workers.append(first.start())
    wait_for("the worker active", lambda: _started(sync_env.redis_url, project), process=first)
    changed = sync_env.sim.update_customers(count=60)

    def joined() -> int:
        return sum(1 for c in changed if events_of(sync_env.redis_url, project, c))

    wait_for("the first changes followed", lambda: joined() >= 5, process=first)
    first.kill()
    assert joined() < len(changed), "the batch was not in flight: all followed before the kill"

    second = SyncProcess(feast_repo, tmp_path / "second.log", args=first.args).start()
    workers.append(second)
    wait_for("every change followed", lambda: joined() == len(changed), process=second)

    for cid in changed:
        events = events_of(sync_env.redis_url, project, cid)
        assert [(e.event, e.segment) for e in events] == [("joined", RECENT)], cid
        bills = float(sync_env.sim.view_360(cid)["financial"]["total_bills"])
        assert online_value(feast_repo, cid, "total_revenue") == bills
