"""A dead run's materialization lock is recognized and taken over (real Redis, real processes).

On the dead owner's host the next run takes the lock over at once (its pid is gone, reused by
another process, a zombie, or the host rebooted); a live owner, or one on another host, is left
alone until its short TTL runs out.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from xiva_source.jobs.locks import (
    LOCK_HEARTBEAT_SECONDS,
    LOCK_TTL_SECONDS,
    FileMaterializationLock,
    LockHolder,
    RedisMaterializationLock,
)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant(client: redis.Redis, name: str, holder: LockHolder, ttl: float = 600) -> None:
    client.set(name, holder.dumps(), px=int(ttl * 1000))


def test_the_ttl_is_short_and_renewed_by_a_heartbeat() -> None:
    assert LOCK_TTL_SECONDS <= 15 and LOCK_HEARTBEAT_SECONDS * 4 <= LOCK_TTL_SECONDS


def test_a_dead_local_owner_is_taken_over_at_once(client: redis.Redis, redis_ns: str) -> None:
    name = f"{redis_ns}:lock"
    dead = dataclasses.replace(LockHolder.me(), pid=_dead_pid())
    _plant(client, name, dead)
    lock = RedisMaterializationLock(client, name)

    assert lock.acquire() is None
    try:
        assert lock.took_over == dataclasses.replace(dead, token="")
        assert lock.owned()
        raw: bytes = client.get(name)  # type: ignore[assignment]
        mine = LockHolder.loads(raw)
        assert mine is not None and mine.pid == os.getpid()
        pttl: int = client.pttl(name)  # type: ignore[assignment]
        assert 0 < pttl <= LOCK_TTL_SECONDS * 1000
        # A third run now finds a live holder (this process): no second takeover.
        other = RedisMaterializationLock(client, name)
        held = other.acquire()
        assert held is not None and held.pid == os.getpid() and other.took_over is None
    finally:
        lock.release()
    assert client.get(name) is None
    message = dead.takeover_message()
    assert message.startswith("took over the materialization lock of a dead run (pid ")


@pytest.mark.parametrize(
    "change",
    [
        {"started": 1},  # its pid now belongs to a process that started at another moment
        {"boot": "another-boot-id"},  # the host rebooted since
    ],
)
def test_a_reused_pid_or_a_reboot_counts_as_dead(
    client: redis.Redis, redis_ns: str, change: dict[str, object]
) -> None:
    name = f"{redis_ns}:lock"
    me = LockHolder.me()
    assert me.started and me.boot  # Linux: both are known
    _plant(client, name, dataclasses.replace(me, **change))  # type: ignore[arg-type]
    lock = RedisMaterializationLock(client, name)
    try:
        assert lock.acquire() is None and lock.took_over is not None
    finally:
        lock.release()


def test_a_killed_owner_not_yet_reaped_counts_as_dead(client: redis.Redis, redis_ns: str) -> None:
    name = f"{redis_ns}:lock"
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        owner = dataclasses.replace(LockHolder.me(), pid=child.pid, started=0)
        _plant(client, name, owner)
        assert RedisMaterializationLock(client, name).acquire() is not None  # alive: left alone
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        lock = RedisMaterializationLock(client, name)
        assert lock.acquire() is None and lock.took_over is not None
        assert lock.took_over.pid == child.pid
        lock.release()
    finally:
        child.kill()
        child.wait()


def test_an_owner_on_another_host_is_waited_for_until_its_ttl_ends(
    client: redis.Redis, redis_ns: str
) -> None:
    name = f"{redis_ns}:lock"
    remote = dataclasses.replace(LockHolder.me(), host="batch-2.elsewhere", pid=_dead_pid())
    _plant(client, name, remote, ttl=0.4)
    lock = RedisMaterializationLock(client, name)

    held = lock.acquire()
    assert held is not None and held.host == "batch-2.elsewhere" and lock.took_over is None

    time.sleep(0.5)  # its heartbeat stopped: the key expires
    assert lock.acquire() is None and lock.took_over is None
    lock.release()


def test_the_holder_renews_its_short_ttl(client: redis.Redis, redis_ns: str) -> None:
    name = f"{redis_ns}:lock"
    lock = RedisMaterializationLock(client, name, ttl=0.5)
    assert lock.acquire() is None
    try:
        time.sleep(1.2)  # more than twice the TTL: only the heartbeat keeps it
        assert lock.owned()
    finally:
        lock.release()


@pytest.mark.usefixtures("subprocesses")
def test_a_file_lock_left_by_a_killed_run_names_it(tmp_path: Path) -> None:
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
    assert lock.took_over is not None and lock.took_over.pid == child.pid
    lock.release()
    again = FileMaterializationLock(path)
    assert again.acquire() is None and again.took_over is None  # released cleanly: no message
    again.release()
