"""Membership generations on the real Redis: one switch for all segments, killed refreshes, locks.

The killed refresh is a real process (``python -c``) writing a new generation; the test sends it
``SIGKILL`` once it has written the first segment, then checks that every segment still reads its
old set and that a rerun takes the dead process's lock over at once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
import redis

from segmentation.errors import SegmentationError
from segmentation.memberships import MembershipStore
from tests.support.segmentation.repo import FeastRepo

SEGMENTS = ("alpha", "beta", "gamma")


def _ids(start: int, stop: int) -> list[str]:
    return [f"C{i:05d}" for i in range(start, stop)]


OLD = {name: _ids(0, 2000) for name in SEGMENTS}
NEW = {name: _ids(500 * (k + 1), 500 * (k + 1) + 2000) for k, name in enumerate(SEGMENTS)}


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_one_generation_switch_for_every_segment(client: redis.Redis, redis_ns: str) -> None:
    store = MembershipStore(client, redis_ns, history_limit=2)
    first = store.store_many(OLD)
    assert {n: r.size for n, r in first.items()} == dict.fromkeys(SEGMENTS, 2000)
    gen1 = store.generation("alpha")
    second = store.store_many(NEW)
    gens = {store.generation(n) for n in SEGMENTS}
    assert len(gens) == 1 and gen1 not in gens  # one generation for all of them
    for k, name in enumerate(SEGMENTS):
        assert store.members(name) == NEW[name] and store.size(name) == 2000
        assert second[name].joined == store.joined(name) == _ids(2000, 2000 + 500 * (k + 1))
        assert second[name].left == store.left(name) == _ids(0, 500 * (k + 1))
        assert store.is_member(name, NEW[name][0]) and not store.is_member(name, "C00000")
    store.store_many({"alpha": []})  # a third refresh of one segment only
    assert store.members("alpha") == [] and store.history("alpha")[0].left == 2000
    assert store.members("beta") == NEW["beta"]  # the others keep their generation
    # alpha's first generation (two refreshes old) is deleted; the one before stays a refresh.
    assert not client.exists(store.generation_key(str(gen1), "members", "alpha"))
    assert len(store.history("alpha")) == 2  # trimmed to history_limit
    assert not client.exists(store.lock_key)
    store.delete("alpha")
    assert store.generation("alpha") is None and store.history("alpha") == []


def _whole_set_commands(client: redis.Redis) -> int:
    stats: Any = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("sdiffstore", "sunionstore")
    )


def test_deltas_are_computed_in_bounded_commands(client: redis.Redis, redis_ns: str) -> None:
    # At 10,000,000 customers one SDIFFSTORE/SUNIONSTORE over a whole set held Redis for seconds
    # (every online read waited) and cost the refresh its lock: the deltas go chunk by chunk.
    store = MembershipStore(client, redis_ns, chunk=100)
    store.store_many(OLD)
    before = _whole_set_commands(client)
    result = store.store_many(NEW)
    assert _whole_set_commands(client) == before
    gen = str(store.generation("alpha"))
    assert result["alpha"].joined == _ids(2000, 2500) and result["alpha"].left == _ids(0, 500)
    for kind, expected in (("joined", _ids(2000, 2500)), ("left", _ids(0, 500))):
        stored: Any = client.smembers(store.generation_key(gen, kind, "alpha"))
        assert sorted(m.decode() for m in stored) == expected
    assert store.lock_ttl == 60.0  # a long refresh's heartbeat outlives seconds-long stalls


def test_old_layout_is_read_then_replaced(client: redis.Redis, redis_ns: str) -> None:
    store = MembershipStore(client, redis_ns)
    client.sadd(store.key("members", "alpha"), *_ids(0, 10))  # written before generations
    assert store.members("alpha") == _ids(0, 10) and store.is_member("alpha", "C00003")
    result = store.store("alpha", _ids(5, 15))
    assert result.joined == _ids(10, 15) and result.left == _ids(0, 5)
    assert not client.exists(store.key("members", "alpha"))
    assert store.members("alpha") == _ids(5, 15)


_KILLED_REFRESH = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from segmentation.memberships import MembershipStore

    url, project, new = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

    def written(name):
        print(name, flush=True)
        time.sleep(120)  # killed here, between two segments

    store = MembershipStore(redis.Redis.from_url(url), project, chunk=100)
    store.store_many(new, on_written=written)
    """
)


def test_a_refresh_killed_mid_way_leaves_the_old_generation_and_the_rerun_takes_over(
    client: redis.Redis, redis_url: str, redis_ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MembershipStore(client, redis_ns)
    store.store_many(OLD)
    old_gen = store.generation("alpha")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_REFRESH, redis_url, redis_ns, json.dumps(NEW)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "alpha"  # alpha's new set is written...
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # ...and the refresh dies before the switch
        proc.wait(timeout=10)
    for name in SEGMENTS:
        assert store.generation(name) == old_gen
        assert store.members(name) == OLD[name], name
    raw: Any = client.get(store.lock_key)
    holder = json.loads(raw or b"{}")
    assert holder["pid"] == proc.pid and holder["host"] == socket.gethostname()
    written = client.scan_iter(match=f"segmentation:{redis_ns}:gen:*", count=1000)
    orphans = [k for k in written if f":gen:{old_gen}:".encode() not in k]
    ttls: list[Any] = [client.ttl(k) for k in orphans]
    assert orphans and all(t > 0 for t in ttls)  # the dead run's keys expire by themselves

    caplog.set_level(logging.INFO, logger="segmentation")
    started = time.monotonic()
    result = store.store_many(NEW)
    assert time.monotonic() - started < 3.0  # taken over at once, not after a long expiry
    assert f"dead process {proc.pid}" in caplog.text
    for name in SEGMENTS:
        assert store.members(name) == NEW[name] and result[name].size == 2000
    assert {store.generation(n) for n in SEGMENTS} != {old_gen}


def test_a_silent_owner_on_another_host_is_taken_over_once_its_ttl_lapses(
    client: redis.Redis, redis_ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MembershipStore(client, redis_ns, lock_ttl=1.0)
    owner = {"token": "t", "pid": 4242, "host": "another-host", "started": "2026-01-01T00:00:00"}
    client.set(store.lock_key, json.dumps(owner), px=1500)  # its heartbeat stopped: expires
    caplog.set_level(logging.INFO, logger="segmentation")
    started = time.monotonic()
    store.store_many(OLD)
    assert 1.0 < time.monotonic() - started < 60.0  # its TTL, not the 600 s lock wait
    assert "process 4242 on another-host stopped renewing" in caplog.text
    assert store.members("beta") == OLD["beta"]


def test_a_live_refresh_is_waited_for_then_reported(client: redis.Redis, redis_ns: str) -> None:
    store = MembershipStore(client, redis_ns, lock_wait=0.5)
    live = {"token": "t", "pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    client.set(store.lock_key, json.dumps(live), px=60_000)
    with pytest.raises(SegmentationError, match=f"process {os.getpid()}"):
        store.store("alpha", _ids(0, 3))
    assert store.generation("alpha") is None


def test_a_live_refresh_that_finishes_is_followed_without_a_take_over(
    client: redis.Redis, redis_ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MembershipStore(client, redis_ns)
    live = {"token": "t", "pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    client.set(store.lock_key, json.dumps(live), px=60_000)
    releaser = threading.Timer(0.5, client.delete, args=[store.lock_key])  # it finishes
    releaser.start()
    caplog.set_level(logging.INFO, logger="segmentation")
    store.store("alpha", _ids(0, 3))
    releaser.join()
    assert f"waiting for the membership refresh of process {os.getpid()}" in caplog.text
    assert "took over" not in caplog.text and "taking over" not in caplog.text
    assert store.members("alpha") == _ids(0, 3)


def test_the_heartbeat_keeps_a_slow_refresh_s_lock(client: redis.Redis, redis_ns: str) -> None:
    store = MembershipStore(client, redis_ns, lock_ttl=0.6)
    store.store_many(OLD, on_written=lambda _name: time.sleep(0.5))  # 1.5 s > ttl
    assert store.members("gamma") == OLD["gamma"] and not client.exists(store.lock_key)


def test_the_refresh_command_takes_a_dead_run_s_lock_over_with_a_message(
    seg_repo: FeastRepo, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from xiva_source.cli import segmentation_main

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)  # a process of this host that has exited
    store = MembershipStore(client, seg_repo.project)
    owner = {"token": "t", "pid": pid, "host": socket.gethostname(), "started": "then"}
    client.set(store.lock_key, json.dumps(owner), px=600_000)  # as a SIGKILLed run leaves it
    started = time.monotonic()
    code = segmentation_main(["--repo", str(seg_repo.path), "refresh", "gold_vip"])
    err = capsys.readouterr().err
    assert code == 0 and time.monotonic() - started < 30, err
    assert f"taking over the membership refresh lock of dead process {pid}" in err
    assert store.generation("gold_vip") is not None and not client.exists(store.lock_key)


def _ttl(client: redis.Redis, key: bytes) -> int:
    reply: Any = client.ttl(key)
    return int(reply)


def test_a_new_set_lost_before_the_switch_switches_nothing(
    client: redis.Redis, redis_ns: str
) -> None:
    store = MembershipStore(client, redis_ns)
    store.store_many(OLD)
    old_gen = store.generation("alpha")

    def lose_alpha(name: str) -> None:  # as if alpha's unswitched keys had expired
        if name == "gamma":
            pattern = f"segmentation:{redis_ns}:gen:*:members:alpha"
            unswitched = [k for k in client.scan_iter(match=pattern) if _ttl(client, k) > 0]
            client.delete(*unswitched)

    with pytest.raises(SegmentationError, match="expired before the switch"):
        store.store_many(NEW, on_written=lose_alpha)
    assert {store.generation(n) for n in SEGMENTS} == {old_gen}
    assert store.members("alpha") == OLD["alpha"] and not client.exists(store.lock_key)


@pytest.mark.parametrize(
    ("taken", "says"),
    [
        (False, "it expired: its heartbeat could not renew it for 60 s"),
        (True, "another refresh took it over"),
    ],
)
def test_a_lock_lost_before_the_switch_switches_nothing_and_says_how(
    client: redis.Redis, redis_ns: str, taken: bool, says: str
) -> None:
    store = MembershipStore(client, redis_ns)
    store.store_many(OLD)
    gen = store.generation("alpha")

    def lose(_: str) -> None:  # after the first segment's set is written
        if taken:
            client.set(store.lock_key, json.dumps({"token": "other", "pid": 1, "host": "h"}))
        else:
            client.delete(store.lock_key)

    with pytest.raises(SegmentationError) as info:
        store.store_many(NEW, on_written=lose)
    assert says in str(info.value) and "nothing was switched" in str(info.value)
    assert store.generation("alpha") == gen and store.members("alpha") == OLD["alpha"]
    client.delete(store.lock_key)
