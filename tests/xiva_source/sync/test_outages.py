"""The worker through outages of Xiva and the DWH (each unreachable: its connections reset and
refused by a proxy, as a stopped server) and Redis (a private ``redis-server`` killed and restarted
empty): it keeps running, degrades visibly (status record, ``xiva-source status``, log) and
catches up afterwards."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from tests.support.feast import FeastEnv
from tests.support.xiva_source.faults import DwhProxy, PrivateRedis
from tests.support.xiva_source.sync import SyncProcess, events_of, online_value, wait_for
from xiva_source.cli import main
from xiva_source.sync.status import SyncStatus, read_status

if TYPE_CHECKING:
    from tests.xiva_source.sync.conftest import XivaBehindProxy


def _status(redis_url: str, project: str) -> SyncStatus | None:
    client = redis.Redis.from_url(redis_url)
    try:
        return read_status(client, project)[0]
    except redis.exceptions.ConnectionError:
        return None
    finally:
        client.close()


def _degraded(redis_url: str, project: str, part: str) -> bool:
    status = _status(redis_url, project)
    return status is not None and part in status.degraded


def _caught_up(redis_url: str, project: str, source: str) -> bool:
    status = _status(redis_url, project)
    return status is not None and source in status.caught_up and not status.degraded


def _status_text(repo: Path) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["status", "--repo", str(repo)])
    return out.getvalue()


def test_xiva_unreachable_degrades_then_the_worker_catches_up(
    workers: list[SyncProcess],
    sync_env: FeastEnv,
    xiva_proxy: XivaBehindProxy,
    feast_repo: Path,
    project: str,
    tmp_path: Path,
) -> None:
    worker = SyncProcess(
        feast_repo, tmp_path / "w.log", env={"XIVA_API_BASE_URL": xiva_proxy.base_url}
    )
    workers.append(worker.start())
    url = sync_env.redis_url
    wait_for("the worker caught up", lambda: _caught_up(url, project, "xiva"), process=worker)

    xiva_proxy.proxy.cut()
    cid = xiva_proxy.sim.customer_ids()[3]
    xiva_proxy.sim.update_customers(ids=[cid])  # changed while the worker cannot see it
    wait_for("Xiva degraded", lambda: _degraded(url, project, "xiva"), process=worker)
    text = _status_text(feast_repo)
    assert "sync worker: running" in text and "xiva: lag" in text and "degraded" in text
    assert "xiva failing" in worker.output()
    assert not events_of(url, project, cid)

    xiva_proxy.proxy.restore()
    wait_for("the change followed", lambda: bool(events_of(url, project, cid)), process=worker)
    bills = float(xiva_proxy.sim.view_360(cid)["financial"]["total_bills"])
    assert online_value(feast_repo, cid, "total_revenue") == bills
    wait_for("recovered", lambda: _caught_up(url, project, "xiva"), process=worker)
    assert "xiva answers again" in worker.output()
    assert worker.process is not None and worker.process.poll() is None


def test_dwh_cut_degrades_the_dwh_only_and_the_follower_catches_up(
    workers: list[SyncProcess],
    sync_env: FeastEnv,
    dwh_proxy: DwhProxy,
    feast_repo: Path,
    project: str,
    tmp_path: Path,
) -> None:
    sync_env.set_mode("auto")
    worker = SyncProcess(
        feast_repo,
        tmp_path / "w.log",
        env={"DWH_URL": dwh_proxy.url, "FEATURE_STORE_DATA_SOURCE": "auto"},
    )
    workers.append(worker.start())
    url = sync_env.redis_url
    wait_for("the DWH followed", lambda: _caught_up(url, project, "dwh"), process=worker)

    dwh_proxy.cut()
    wait_for("the DWH degraded", lambda: _degraded(url, project, "dwh"), process=worker)
    # Xiva's changes still flow meanwhile.
    cid = sync_env.sim.customer_ids()[5]
    sync_env.sim.update_customers(ids=[cid])
    wait_for("a Xiva change followed", lambda: bool(events_of(url, project, cid)), process=worker)
    assert "dwh failing" in worker.output()

    dwh_proxy.restore()
    wait_for("the DWH caught up", lambda: _caught_up(url, project, "dwh"), process=worker)
    assert "dwh answers again" in worker.output()


def test_redis_killed_stops_writes_not_the_worker_which_resumes(
    workers: list[SyncProcess],
    sync_env: FeastEnv,
    private_redis: PrivateRedis,
    feast_repo: Path,
    project: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    worker = SyncProcess(
        feast_repo,
        tmp_path / "w.log",
        env={"REDIS_URL": private_redis.url, "XIVA_REDIS_PREFIX": f"sync-{project}"},
    )
    workers.append(worker.start())
    url = private_redis.url
    wait_for("the worker caught up", lambda: _caught_up(url, project, "xiva"), process=worker)

    private_redis.kill()
    cid = sync_env.sim.customer_ids()[9]
    sync_env.sim.update_customers(ids=[cid])
    wait_for("Redis noticed down", lambda: "redis failing" in worker.output(), process=worker)
    assert worker.process is not None and worker.process.poll() is None

    private_redis.start()  # empty: the worker's position comes from its memory
    bills = float(sync_env.sim.view_360(cid)["financial"]["total_bills"])
    wait_for(
        "the change written once Redis is back",
        lambda: online_value(feast_repo, cid, "total_revenue") == bills,
        process=worker,
    )
    wait_for("recovered", lambda: _caught_up(url, project, "xiva"), process=worker)
    assert "redis answers again" in worker.output()
