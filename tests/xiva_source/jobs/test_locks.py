"""The file lock and the lock's holder record: pure logic, no service (the Redis lock is tested
with the job, against the real Redis, in test_materialize.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xiva_source.jobs.locks import UNKNOWN_HOLDER, FileMaterializationLock, LockHolder


def test_holder_record_round_trips_without_its_token() -> None:
    me = LockHolder.me()
    assert me.pid == os.getpid() and len(me.token) == 32
    assert json.loads(me.dumps())["token"] == me.token

    back = LockHolder.loads(me.dumps())

    assert back == LockHolder(me.pid, me.host, me.since, "", me.boot, me.started)
    assert back is not None and back.describe() == f"pid {me.pid} on {me.host}, since {me.since}"


@pytest.mark.parametrize("raw", [None, b"", "not json", '{"pid": 1}', '{"pid": "x", "host": 1}'])
def test_unreadable_holder_records_are_none(raw: str | bytes | None) -> None:
    assert LockHolder.loads(raw) is None


def test_file_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "loyalty.materialize.lock"
    first, second = FileMaterializationLock(path), FileMaterializationLock(path)

    assert first.acquire() is None and first.owned()
    holder = second.acquire()
    assert holder is not None and holder.pid == os.getpid() and not second.owned()

    first.release()
    assert not first.owned()
    first.release()  # releasing twice is harmless
    with second.held() as again:
        assert again is None and second.owned()
    assert not second.owned()


def test_file_lock_with_an_unreadable_record_reports_an_unknown_holder(tmp_path: Path) -> None:
    path = tmp_path / "loyalty.materialize.lock"
    holder_lock = FileMaterializationLock(path)
    assert holder_lock.acquire() is None
    os.truncate(path, 0)  # e.g. a holder that died between truncating and writing
    try:
        assert FileMaterializationLock(path).acquire() == UNKNOWN_HOLDER
    finally:
        holder_lock.release()


@pytest.mark.usefixtures("subprocesses")
def test_file_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "registry.materialize.lock"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from xiva_source.jobs.locks import FileMaterializationLock; "
            f"assert FileMaterializationLock({str(path)!r}).acquire() is None; "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        holder = FileMaterializationLock(path).acquire()
        assert holder is not None and holder.pid == child.pid
    finally:
        child.kill()
        child.wait()
    lock = FileMaterializationLock(path)
    assert lock.acquire() is None  # the kernel dropped the dead holder's lock
    lock.release()
