"""One state, whichever tool ran last (issue 16, items 3 and 7): the Feast CLI, the job, a live
refresh and a corrupted state, each as real processes against Redis, PostgreSQL and the simulator.

Every scenario ends with every customer equal to the sources' merged truth (a full run of a
second repository, every source up), or with the refusal named: the Feast CLI no longer makes the
next job run reload (``reload=no``, carried on from Feast's recorded pulls), a store that really
lost its data still does (``reload=wiped``), and a corrupted watermark stops the run (exit 4)
with the exact repair, after which the next run loses nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.support.feast import FeastEnv, feast_cli
from tests.support.xiva_source.faults import (
    Job,
    PrivateRedis,
    assert_every_customer_equals_the_source,
    customer_360_calls,
    watermarks,
)
from tests.support.xiva_source.jobs import Truth, store_of, touch_dwh

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fresh_truth(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Truth]:
    """The merged truth computed anew each time (these tests change the sources)."""
    from xiva_source.dwh import get_engine

    truth = Truth(tmp_path)
    yield truth
    truth.cleanup()  # (on a private Redis its keys go with the server)
    with get_engine(os.environ["DWH_URL"]).begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{truth.snapshot_table}"'))


@pytest.fixture
def own_dwh(feast_env: FeastEnv, pg_url: str) -> str:
    """A DWH of the test's own (same customers as the session's), which the test may change."""
    from xiva_source.demo.data import create_demo_dwh

    create_demo_dwh(pg_url, feast_env.sim, seed=11)
    feast_env.monkeypatch.setenv("DWH_URL", pg_url)
    return pg_url


def materialize_incremental(repo: Path) -> None:
    """What the README lets ML engineers run in ``feature_repo/``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    run = feast_cli(repo, "materialize-incremental", stamp)
    assert run.returncode == 0, run.stderr[-3000:]


def summary_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("materialize ")]
    assert len(lines) == 1, out
    return lines[0]


def carried(out: str, view: str) -> set[str]:
    """The sources the job's run carried on from ``feast materialize`` (its INFO log)."""
    return set(re.findall(rf"{view}: (\w+) carried on from `feast materialize`", out))


def test_feast_cli_then_the_job_carries_on_incrementally(
    job: Job, feast_env: FeastEnv, fresh_truth: Truth
) -> None:
    sim = feast_env.sim
    materialize_incremental(job.repo)  # the first load of the store, by the Feast CLI
    fetched = customer_360_calls(sim)
    assert fetched >= len(sim.customer_ids())

    code, out = job.run("--log-level", "INFO")

    line = summary_line(out)
    assert code == 0 and " reload=no " in line, out
    assert carried(out, "customer_features") == {"xiva", "dwh"}, out
    assert carried(out, "customer_dwh_features") == {"dwh"}, out
    # Feast's first pulls read everything: full reads for the expiry sweep (jobs/expiry.py).
    client = redis.Redis.from_url(feast_env.redis_url)
    state = f"xiva_source:materialize:state:{store_of(job.repo).project}"
    assert client.hget(state, "full:customer_features") is not None
    assert client.hget(state, "full:customer_dwh_features") is not None
    client.close()
    # No reload: Xiva is asked only for the overlap before Feast's end, not for everyone.
    assert customer_360_calls(sim) - fetched < len(sim.customer_ids()) // 4, line
    changed = sim.update_customers(count=5)
    code, out = job.run()
    assert code == 0 and " reload=no " in summary_line(out), out
    assert_every_customer_equals_the_source(job.repo, fresh_truth, feast_env)
    assert changed


def test_job_then_feast_cli_then_job(
    job: Job, feast_env: FeastEnv, own_dwh: str, fresh_truth: Truth
) -> None:
    sim = feast_env.sim
    code, out = job.run()
    assert code == 0, out
    changed = sim.update_customers(count=5)
    touched = feast_env.dwh.shared_ids[-5:]
    touch_dwh(own_dwh, touched, datetime.now(UTC).replace(tzinfo=None), revenue_delta=7.0)
    materialize_incremental(job.repo)  # Feast merges both sources' changes and writes them
    before = watermarks(job.repo)

    code, out = job.run("--log-level", "INFO")

    assert code == 0 and " reload=no " in summary_line(out), out
    assert carried(out, "customer_features") == {"xiva", "dwh"}, out
    assert carried(out, "customer_dwh_features") == {"dwh"}, out
    after = watermarks(job.repo)  # the job keeps Feast's registry moving
    for view, mark in after.items():
        previous = before[view]
        assert mark is not None and previous is not None and mark >= previous, (before, after)
    assert_every_customer_equals_the_source(job.repo, fresh_truth, feast_env)
    assert changed


def test_a_flushed_store_is_reloaded_even_after_the_feast_cli(
    job: Job, feast_env: FeastEnv, private_redis: PrivateRedis, fresh_truth: Truth
) -> None:
    feast_env.monkeypatch.setenv("REDIS_URL", private_redis.url)  # FLUSHALL: our own Redis
    materialize_incremental(job.repo)
    code, out = job.run()
    assert code == 0 and " reload=no " in summary_line(out), out

    client = private_redis.client()
    client.flushall()  # every online value, the marker and the state are gone
    client.close()
    feast_env.sim.update_customers(count=3)
    materialize_incremental(job.repo)  # Feast writes only the changes: the store stays partial
    code, out = job.run()

    line = summary_line(out)
    assert code == 0 and " reload=wiped " in line and "marker is missing" in line, out
    assert_every_customer_equals_the_source(job.repo, fresh_truth, feast_env)


def test_a_live_refresh_between_runs_changes_nothing_for_the_next(
    job: Job, feast_env: FeastEnv, fresh_truth: Truth
) -> None:
    code, out = job.run()
    assert code == 0, out
    (customer,) = feast_env.sim.update_customers(count=1)
    command = ["refresh", customer, "--no-segments", "--repo", str(job.repo)]
    refresh = subprocess.run(
        [sys.executable, "-m", "xiva_source", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refresh.returncode == 0, refresh.stderr
    code, out = job.run()
    assert code == 0 and " reload=no " in summary_line(out), out
    assert_every_customer_equals_the_source(job.repo, fresh_truth, feast_env)


def test_a_corrupted_watermark_stops_the_run_with_the_repair_and_loses_nothing(
    job: Job, feast_env: FeastEnv, redis_url: str, fresh_truth: Truth
) -> None:
    code, out = job.run()
    assert code == 0, out
    project = store_of(job.repo).project
    state_hash = f"xiva_source:materialize:state:{project}"
    client = redis.Redis.from_url(redis_url)
    client.hset(state_hash, "wm:customer_features:xiva", "garbage-time")
    client.close()
    changed = feast_env.sim.update_customers(count=5)
    before = watermarks(job.repo)

    code, out = job.run()

    line = summary_line(out)
    assert code == 4, out
    assert line.startswith("materialize failed") and "Traceback" not in out, out
    assert "'wm:customer_features:xiva'" in line and "'garbage-time'" in line, line
    assert f"Redis hash {state_hash}" in line and "Nothing was read or written" in line, line
    assert watermarks(job.repo) == before
    status = subprocess.run(
        [sys.executable, "-m", "xiva_source", "status", "--repo", str(job.repo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0 and "unknown state:" in status.stdout, status
    assert "garbage-time" in status.stdout and "Traceback" not in status.stderr

    repair = re.search(r"`(redis-cli [^`]+)`", line)  # the fix, run exactly as printed
    assert repair is not None, line
    done = subprocess.run(
        repair.group(1), shell=True, capture_output=True, text=True, timeout=30, env=os.environ
    )
    assert done.returncode == 0 and done.stdout.strip() == "1", done
    code, out = job.run()
    assert code == 0, out
    assert_every_customer_equals_the_source(job.repo, fresh_truth, feast_env)
    assert changed  # 5 customers changed while the state was corrupted: loaded too
