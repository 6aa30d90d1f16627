"""The job's use of the house's lock: its kinds, TTL policy and wording (no service needed).

The lock itself (owner record, dead owners, heartbeat, take-over, waiting) is tested once, in
``tests/xiva_source/test_locking.py``; the job holding it against the real Redis is tested in
``test_materialize.py`` and ``faults/test_job_killed.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from xiva_source.jobs.locks import (
    LOCK_HEARTBEAT_SECONDS,
    LOCK_TTL_SECONDS,
    FileMaterializationLock,
    LockHolder,
    RedisMaterializationLock,
    redis_lock_name,
    takeover_message,
)
from xiva_source.locking import FileLock, RedisLock


def test_the_ttl_is_short_and_renewed_by_a_heartbeat() -> None:
    assert LOCK_TTL_SECONDS <= 15 and LOCK_HEARTBEAT_SECONDS * 4 <= LOCK_TTL_SECONDS


def test_the_job_s_locks_are_the_house_s_lock_named_for_the_job(tmp_path: Path) -> None:
    client = redis.Redis()  # never connects: nothing is sent
    lock = RedisMaterializationLock(client, redis_lock_name("loyalty"))
    assert isinstance(lock, RedisLock) and lock.purpose == "materialization"
    assert lock.key == "xiva_source:materialize:lock:loyalty"
    assert lock.ttl == LOCK_TTL_SECONDS and lock.heartbeat == LOCK_HEARTBEAT_SECONDS
    assert lock.log.name == "xiva_source.jobs.locks"
    assert RedisMaterializationLock(client, "k", 0.5).ttl == 0.5
    file_lock = FileMaterializationLock(tmp_path / "loyalty.materialize.lock")
    assert isinstance(file_lock, FileLock) and file_lock.purpose == "materialization"


@pytest.mark.usefixtures("subprocesses")
def test_a_file_lock_left_by_a_killed_run_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "loyalty.materialize.lock"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from xiva_source.jobs.locks import FileMaterializationLock; "
            f"assert FileMaterializationLock({str(path)!r}).acquire() is None; "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert FileMaterializationLock(path).acquire() is not None
    finally:
        child.kill()
        child.wait()

    lock = FileMaterializationLock(path)
    assert lock.acquire() is None  # the kernel released it with the process
    lock.release()
    dead = lock.took_over
    assert dead is not None and dead.pid == child.pid
    assert f"taking over the materialization lock of dead process {child.pid} on " in caplog.text
    assert takeover_message(dead) == (
        f"took over the materialization lock of a dead run (pid {child.pid} on {dead.host}, "
        f"since {dead.since})"
    )


def test_the_summary_names_a_dead_run() -> None:
    holder = LockHolder(pid=42, host="cron-1", since="2026-01-31T00:00:00+00:00")
    assert takeover_message(holder) == (
        "took over the materialization lock of a dead run (pid 42 on cron-1, since "
        "2026-01-31T00:00:00+00:00)"
    )
