"""The house's one lock (``xiva_source.locking``), against the real Redis and real processes.

The Redis lock's protocol (take, heartbeat, lost, release only by its owner, take-over by
compare-and-set, waiting) runs on a single Redis, a 3-primary Redis Cluster and a Sentinel's
primary. The dead-owner rule runs with real processes: a ``SIGKILL``ed owner, a zombie, a reused
pid, a reboot, an owner on "another host", a pid <= 0, a record that does not parse. The file
lock excludes other processes and names a dead owner. The users' own tests stay with them
(``tests/xiva_source/jobs/``, ``tests/segmentation/test_memberships.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.tcp_proxy import running_proxy
from tests.support.tiers import service
from xiva_source.locking import (
    DEFAULT_TTL_SECONDS,
    UNKNOWN_HOLDER,
    FileLock,
    LockHolder,
    RedisLock,
)
from xiva_source.redis_client import RedisClient, connect_redis

_HOLD = (
    "import sys, time, redis; from xiva_source.locking import RedisLock; "
    "lock = RedisLock(redis.Redis.from_url(sys.argv[1]), sys.argv[2], ttl=float(sys.argv[3])); "
    "assert lock.acquire() is None; print('held', flush=True); time.sleep(120)"
)
"""A real owner: takes the Redis lock ``argv[2]``, keeps it alive with its heartbeat."""

_HOLD_FILE = (
    "import sys, time; from xiva_source.locking import FileLock; "
    "assert FileLock(sys.argv[1]).acquire() is None; print('held', flush=True); time.sleep(120)"
)


@dataclasses.dataclass
class Backend:
    """A Redis deployment's client and a lock key of this test's own on it."""

    kind: str
    client: RedisClient
    key: str

    def get(self) -> bytes | None:
        raw: Any = self.client.get(self.key)
        return raw  # type: ignore[no-any-return]

    def pttl(self) -> int:
        reply: Any = self.client.pttl(self.key)
        return int(reply)

    def plant(self, record: str, ttl: float) -> None:
        """Leave ``record`` in the lock, as an owner that stopped renewing it would."""
        self.client.set(self.key, record, px=int(ttl * 1000))


@pytest.fixture(params=["redis", "cluster", "sentinel"])
@service("redis")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The lock's key on a single Redis, a Redis Cluster and a Sentinel's primary."""
    kind = request.param
    if kind == "redis":
        ns = request.getfixturevalue("redis_ns")
        client: RedisClient = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    elif kind == "cluster":
        ns = request.getfixturevalue("cluster_ns")
        nodes = request.getfixturevalue("redis_cluster")
        client = connect_redis(nodes.url, redis_type="redis_cluster")
    else:
        ns = f"test-{uuid.uuid4().hex[:12]}"
        nodes = request.getfixturevalue("redis_sentinel")
        client = connect_redis(nodes.url, redis_type="redis_sentinel", sentinel_master=nodes.master)
    b = Backend(kind, client, f"{ns}:lock")
    try:
        yield b
    finally:
        client.delete(b.key)
        client.close()


@pytest.fixture
def single(redis_url: str, redis_ns: str) -> Iterator[Backend]:
    """The lock's key on the single Redis (the tests whose subject is processes, not Redis)."""
    client = redis.Redis.from_url(redis_url)
    yield Backend("redis", client, f"{redis_ns}:lock")
    client.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _spawn(*args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def _stop(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait()


def _here(**change: Any) -> LockHolder:
    """A record of this host (a forged owner), ``change``d."""
    return dataclasses.replace(LockHolder.me(), **change)


# --- the owner record and the dead-owner rule --------------------------------------------------


def test_the_record_round_trips_without_its_token() -> None:
    me = LockHolder.me()
    assert me.pid == os.getpid() and len(me.token) == 32
    assert me.started > 0 and me.boot  # Linux: both are known
    assert json.loads(me.dumps())["token"] == me.token

    back = LockHolder.loads(me.dumps())

    assert back == LockHolder(me.pid, me.host, me.since, "", me.boot, me.started)
    assert back is not None and back.describe() == f"pid {me.pid} on {me.host}, since {me.since}"
    assert LockHolder.loads(me.dumps().encode()) == back


@pytest.mark.parametrize(
    "raw",
    [None, b"", "not json", "[1, 2]", '{"pid": 1}', '{"pid": "x", "host": 1}', '{"pid": true}'],
)
def test_unreadable_records_are_none(raw: str | bytes | None) -> None:
    assert LockHolder.loads(raw) is None


def test_a_record_of_the_refresh_lock_before_the_merge_is_read() -> None:
    old = '{"token": "t", "pid": 4242, "host": "h", "started": "2026-01-01T00:00:00+00:00"}'
    assert LockHolder.loads(old) == LockHolder(4242, "h", "2026-01-01T00:00:00+00:00")


@pytest.mark.usefixtures("subprocesses")
def test_only_a_proven_dead_owner_of_this_host_is_dead() -> None:
    assert not _here().is_dead_here()  # this very process
    assert _here(pid=_dead_pid()).is_dead_here()  # no such process
    assert _here(started=1).is_dead_here()  # its pid belongs to a process started later: reused
    assert _here(boot="another-boot-id").is_dead_here()  # the host rebooted since
    # Unknown facts prove nothing: an older record without boot id or process start.
    assert not _here(boot="", started=0).is_dead_here()
    # Another host's process cannot be checked from here, even with a pid dead here.
    assert not _here(host="batch-2.elsewhere", pid=_dead_pid()).is_dead_here()
    # pid <= 0 addresses process groups: never signalled, never proven dead.
    for pid in (0, -1, -os.getpid()):
        assert not _here(pid=pid, started=0).is_dead_here()
        assert not _here(pid=pid, started=1).is_dead_here()
    assert not UNKNOWN_HOLDER.is_dead_here()


# --- the Redis lock: the protocol on every deployment ------------------------------------------


def test_the_lock_is_exclusive_renewed_and_released_only_by_its_owner(backend: Backend) -> None:
    mine = RedisLock(backend.client, backend.key, ttl=0.5)
    other = RedisLock(backend.client, backend.key, ttl=0.5)
    assert mine.acquire() is None and mine.took_over is None
    try:
        assert mine.value is not None and backend.get() == mine.value.encode()
        assert 0 < backend.pttl() <= 500
        holder = other.acquire()
        assert holder is not None and holder.pid == os.getpid() and holder.token == ""
        assert other.took_over is None and not other.owned()
        other.release()  # not the owner: must not delete it
        time.sleep(1.2)  # more than twice the TTL: only the heartbeat keeps it
        assert mine.owned() and not mine.lost and backend.get() == mine.value.encode()
    finally:
        mine.release()
    assert backend.get() is None and not mine.owned()
    mine.release()  # twice: harmless
    with other.held() as again:  # free again
        assert again is None and other.owned()
    assert backend.get() is None


@pytest.mark.usefixtures("subprocesses")
def test_a_dead_local_owner_is_taken_over_at_once_by_compare_and_set(backend: Backend) -> None:
    dead = _here(pid=_dead_pid())
    backend.plant(dead.dumps(), ttl=600)
    lock = RedisLock(backend.client, backend.key)

    assert lock.acquire() is None
    try:
        assert lock.took_over == dataclasses.replace(dead, token="")
        assert lock.took_over_reason == "dead" and lock.owned()
        mine = LockHolder.loads(backend.get())
        assert mine is not None and mine.pid == os.getpid() and mine != lock.took_over
        assert 0 < backend.pttl() <= DEFAULT_TTL_SECONDS * 1000  # our TTL, not the dead one's
        # A third contender now finds a live holder (this process): no second take-over.
        third = RedisLock(backend.client, backend.key)
        held = third.acquire()
        assert held is not None and held.pid == os.getpid() and third.took_over is None
    finally:
        lock.release()
    assert backend.get() is None


def test_a_lost_lock_is_detected_and_not_released(backend: Backend) -> None:
    lock = RedisLock(backend.client, backend.key, ttl=0.5)
    assert lock.acquire() is None
    try:
        # It expired (a long stall) and another owner took it: the heartbeat finds its record.
        other = _here(host="batch-2.elsewhere").dumps()
        backend.plant(other, ttl=60)
        deadline = time.monotonic() + 2
        while not lock.lost:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not lock.owned()
    finally:
        lock.release()
    assert backend.get() == other.encode()  # the new owner's lock stays


@pytest.mark.usefixtures("subprocesses")
def test_a_waiting_acquire_takes_over_when_the_holder_s_key_expires(backend: Backend) -> None:
    remote = _here(host="batch-2.elsewhere", pid=_dead_pid())
    backend.plant(remote.dumps(), ttl=0.6)
    lock = RedisLock(backend.client, backend.key, ttl=1.0)

    held = lock.acquire()  # non-blocking: an owner of another host is not judged
    assert held is not None and held.host == "batch-2.elsewhere" and lock.took_over is None
    started = time.monotonic()
    assert lock.acquire(timeout=5) is None  # waits until its key expires
    try:
        assert 0.3 < time.monotonic() - started < 2.0
        assert lock.took_over is not None and lock.took_over.host == "batch-2.elsewhere"
        assert lock.took_over_reason == "expired" and lock.owned()
    finally:
        lock.release()


# --- the Redis lock: owners that are processes -------------------------------------------------


@pytest.mark.usefixtures("subprocesses")
def test_a_sigkilled_owner_is_taken_over_at_once(single: Backend, redis_url: str) -> None:
    child = _spawn(_HOLD, redis_url, single.key, "600")  # a TTL that would keep it for 10 min
    try:
        owner = LockHolder.loads(single.get())
        assert owner is not None and owner.pid == child.pid and owner.started > 0
        lock = RedisLock(single.client, single.key)
        assert lock.acquire() == owner  # alive: left alone
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        started = time.monotonic()
        assert lock.acquire() is None
        assert time.monotonic() - started < 1.0
        assert lock.took_over == owner and lock.took_over_reason == "dead"
        lock.release()
    finally:
        _stop(child)


@pytest.mark.usefixtures("subprocesses")
def test_a_standby_takes_over_within_a_poll_when_the_holder_dies(
    single: Backend, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    child = _spawn(_HOLD, redis_url, single.key, "600")
    caplog.set_level(logging.INFO, logger="xiva_source.locking")
    killer = threading.Timer(0.5, os.kill, args=(child.pid, signal.SIGKILL))
    standby = RedisLock(single.client, single.key, ttl=2.0, purpose="sync")
    try:
        killer.start()
        started = time.monotonic()
        assert standby.acquire(timeout=None) is None  # forever: a standby worker
        took = time.monotonic() - started
        assert 0.4 < took < 0.5 + 3 * standby.poll + 0.5, took
        assert standby.took_over is not None and standby.took_over.pid == child.pid
        assert standby.took_over_reason == "dead"
        assert f"waiting for the sync of process {child.pid} on " in caplog.text
        assert f"taking over the sync lock of dead process {child.pid} on " in caplog.text
    finally:
        killer.join()
        standby.release()
        _stop(child)


@pytest.mark.usefixtures("subprocesses")
def test_a_killed_owner_not_yet_reaped_counts_as_dead(single: Backend) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        single.plant(_here(pid=child.pid, started=0).dumps(), ttl=600)
        assert RedisLock(single.client, single.key).acquire() is not None  # alive: left alone
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        lock = RedisLock(single.client, single.key)
        assert lock.acquire() is None and lock.took_over is not None
        assert lock.took_over.pid == child.pid
        lock.release()
    finally:
        _stop(child)


@pytest.mark.parametrize(
    "change",
    [
        {"started": 1},  # its pid now belongs to a process that started at another moment
        {"boot": "another-boot-id"},  # the host rebooted since
    ],
)
def test_a_reused_pid_or_a_reboot_is_taken_over_at_once(
    single: Backend, change: dict[str, Any]
) -> None:
    single.plant(_here(**change).dumps(), ttl=600)  # this live process's pid: reused
    lock = RedisLock(single.client, single.key)
    try:
        assert lock.acquire() is None and lock.took_over_reason == "dead"
    finally:
        lock.release()


@pytest.mark.parametrize(
    "record",
    [
        _here(pid=0, started=0).dumps(),
        _here(pid=-1, started=0).dumps(),
        "garbage written by someone else",
    ],
)
def test_an_owner_that_cannot_be_proven_dead_is_waited_for_until_its_ttl(
    single: Backend, record: str
) -> None:
    single.plant(record, ttl=0.6)
    lock = RedisLock(single.client, single.key, ttl=1.0)
    held = lock.acquire(timeout=0.2)  # a wait shorter than its TTL: still there
    assert held is not None and held.pid <= 0 and lock.took_over is None
    assert single.get() == record.encode()  # untouched
    assert lock.acquire(timeout=5) is None  # after its TTL
    try:
        assert lock.took_over_reason == "expired"
    finally:
        lock.release()


@pytest.mark.usefixtures("subprocesses")
def test_two_contenders_for_a_dead_owner_s_lock_one_wins(single: Backend) -> None:
    single.plant(_here(pid=_dead_pid()).dumps(), ttl=600)
    locks = [RedisLock(single.client, single.key) for _ in range(4)]
    barrier = threading.Barrier(len(locks))
    results: list[LockHolder | None] = [UNKNOWN_HOLDER] * len(locks)

    def contend(i: int) -> None:
        barrier.wait()
        results[i] = locks[i].acquire()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(locks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        winners = [lock for lock, got in zip(locks, results, strict=True) if got is None]
        assert len(winners) == 1 and winners[0].took_over_reason == "dead"
        assert all(got is None or got.pid == os.getpid() for got in results)
    finally:
        for lock in locks:
            lock.release()
    assert single.get() is None


def test_a_live_holder_s_release_is_followed_without_a_take_over(single: Backend) -> None:
    holder = RedisLock(single.client, single.key, ttl=1.0)
    assert holder.acquire() is None
    releaser = threading.Timer(0.3, holder.release)
    waiter = RedisLock(single.client, single.key, ttl=1.0)
    releaser.start()
    try:
        assert waiter.acquire(timeout=5) is None
        assert waiter.took_over is None and waiter.took_over_reason is None  # released
    finally:
        releaser.join()
        waiter.release()


def test_a_wait_for_a_live_holder_ends_at_its_timeout(single: Backend) -> None:
    holder = RedisLock(single.client, single.key, ttl=0.5)
    assert holder.acquire() is None
    try:
        started = time.monotonic()
        held = RedisLock(single.client, single.key, ttl=0.5).acquire(timeout=0.8)
        assert 0.8 <= time.monotonic() - started < 1.5  # renewed all along: never taken
        assert held is not None and held.pid == os.getpid()
    finally:
        holder.release()


def test_a_holder_cut_off_from_redis_for_a_whole_ttl_knows_it_lost_the_lock(
    single: Backend, redis_url: str
) -> None:
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    # The network between the holder and Redis, cut below.
    with running_proxy((target.get("host", "127.0.0.1"), int(target.get("port", 6379)))) as proxy:
        cut_off = redis.Redis(
            host="127.0.0.1",
            port=proxy.port,
            db=int(target.get("db", 0)),
            socket_timeout=0.2,
            retry=Retry(NoBackoff(), 0),  # fail at once: the test waits for the lock's TTL
        )
        lock = RedisLock(cut_off, single.key, ttl=0.6)
        assert lock.acquire() is None
        try:
            time.sleep(0.3)
            assert not lock.lost
            proxy.cut()
            deadline = time.monotonic() + 3
            while not lock.lost:  # no renewal for a TTL: the key may have expired and been taken
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert not lock.owned()  # no round trip needed once lost
        finally:
            lock.release()  # unreachable: logged, the key expires on its own
            cut_off.close()
    time.sleep(0.4)
    assert single.get() is None


# --- the file lock -----------------------------------------------------------------------------


def test_the_file_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "loyalty.materialize.lock"
    first, second = FileLock(path), FileLock(path)

    assert first.acquire() is None and first.owned() and not first.lost
    holder = second.acquire()
    assert holder is not None and holder.pid == os.getpid() and not second.owned()

    first.release()
    assert not first.owned()
    first.release()  # releasing twice is harmless
    with second.held() as again:
        assert again is None and second.owned() and second.took_over is None
    assert not second.owned()


def test_the_file_lock_with_an_unreadable_record_reports_an_unknown_holder(tmp_path: Path) -> None:
    path = tmp_path / "loyalty.materialize.lock"
    holder_lock = FileLock(path)
    assert holder_lock.acquire() is None
    os.truncate(path, 0)  # e.g. a holder that died between truncating and writing
    try:
        assert FileLock(path).acquire() == UNKNOWN_HOLDER
    finally:
        holder_lock.release()


def test_a_waiting_file_lock_gets_it_when_the_holder_releases(tmp_path: Path) -> None:
    path = tmp_path / "loyalty.materialize.lock"
    holder = FileLock(path)
    assert holder.acquire() is None
    waiter = FileLock(path)
    assert waiter.acquire(timeout=0.3) is not None  # still held at the timeout
    releaser = threading.Timer(0.3, holder.release)
    releaser.start()
    try:
        assert waiter.acquire(timeout=5) is None and waiter.took_over is None
    finally:
        releaser.join()
        waiter.release()


@pytest.mark.usefixtures("subprocesses")
def test_the_file_lock_excludes_other_processes_and_names_a_killed_one(tmp_path: Path) -> None:
    path = tmp_path / "registry.materialize.lock"
    child = _spawn(_HOLD_FILE, str(path))
    try:
        holder = FileLock(path).acquire()
        assert holder is not None and holder.pid == child.pid
    finally:
        _stop(child)

    lock = FileLock(path)
    assert lock.acquire() is None  # the kernel dropped the dead holder's lock
    assert lock.took_over is not None and lock.took_over.pid == child.pid
    assert lock.took_over_reason == "dead"
    lock.release()
    again = FileLock(path)
    assert again.acquire() is None and again.took_over is None  # released cleanly: no owner left
    again.release()
