"""A refresh's events published after its switch in bounded batches, exactly once (real Redis).

The killed publication is a real process (``python -c``) that switches a first full refresh of
30,000 members and is sent ``SIGKILL`` once its first batch of events is published; the next
refresh publishes the rest before anything new, none twice, in the uninterrupted order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import redis

from segmentation import MembershipEvent, MembershipStore, Segment, read_events, update_customer
from tests.support.segmentation.realtime import engine_for, own_namespace, own_repo
from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main as segmentation_cli

N = 30_000


def _ids(start: int, stop: int) -> list[str]:
    return [f"C{i:06d}" for i in range(start, stop)]


def _events(store: MembershipStore, since: str | None = None) -> list[MembershipEvent]:
    return read_events(store.client, store.events_key(), since=since)


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_a_first_full_refresh_publishes_every_event_once_in_bounded_batches(
    client: redis.Redis, redis_ns: str
) -> None:
    store = MembershipStore(client, redis_ns, event_batch=4_000)
    held = {cid: "holdout" for cid in _ids(0, N)[::10]}
    batches: list[int] = []
    store.store_many({"big": _ids(0, N)}, groups={"big": held}, on_published=batches.append)

    assert sum(batches) == N and max(batches) <= 4_000 and len(batches) == 8
    events = _events(store)
    assert [e.customer_id for e in events] == _ids(0, N)  # sorted, each once
    assert {e.event for e in events} == {"joined"} and {e.segment for e in events} == {"big"}
    assert [e.group for e in events] == [held.get(c, "target") for c in _ids(0, N)]
    assert not client.exists(store.pending_key())  # nothing left pending, no copy left over
    copies = client.scan_iter(match=f"segmentation:{redis_ns}:gen:*:pending-*", count=1000)
    assert not list(copies)  # emptied as published

    # The next refresh: leavers with the group they had, then joiners, per segment as before.
    mark = events[-1].id
    batches.clear()
    store.store_many({"big": _ids(100, N + 50)}, on_published=batches.append)
    new = _events(store, since=mark)
    assert [(e.event, e.customer_id) for e in new] == [
        *(("joined", c) for c in _ids(N, N + 50)),
        *(("left", c) for c in _ids(0, 100)),
    ]
    assert [e.group for e in new if e.event == "left"] == [
        held.get(c, "target") for c in _ids(0, 100)
    ]
    assert batches == [50, 100]


_KILLED_PUBLICATION = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from segmentation.memberships import MembershipStore

    url, project, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    members = [f"C{i:06d}" for i in range(n)]  # as the test's _ids(0, n)

    def published(n):
        print(n, flush=True)
        time.sleep(120)  # killed here, between two batches

    store = MembershipStore(redis.Redis.from_url(url), project, event_batch=1000)
    store.store_many({"big": members}, on_published=published)
    """
)


@pytest.mark.usefixtures("subprocesses")
def test_a_publication_killed_between_batches_is_finished_by_the_next_refresh(
    client: redis.Redis, redis_url: str, redis_ns: str
) -> None:
    members = _ids(0, N)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PUBLICATION, redis_url, redis_ns, str(N)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "1000"  # the first batch is published...
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # ...and the refresh dies before the second
        proc.wait(timeout=10)
    store = MembershipStore(client, redis_ns)
    assert store.size("big") == N  # the switch is done: the memberships are the new ones
    assert [e.customer_id for e in _events(store)] == members[:1000]
    assert client.hlen(store.pending_key()) == 1

    result = store.store_many({"big": members})  # the next refresh, nothing new to store

    assert result["big"].joined == [] and result["big"].left == []
    events = _events(store)
    assert [e.customer_id for e in events] == members  # the rest, none twice, in order
    assert {(e.event, e.group) for e in events} == {("joined", "target")}
    assert len({e.time for e in events}) == 1  # the switch's time, also after the crash
    assert not client.exists(store.pending_key())


@pytest.fixture(scope="module")
def eb_repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[FeastRepo]:
    yield from own_repo(tmp_path_factory, "eb", redis_url)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    yield from own_namespace(redis_url)


class _Stopped(Exception):
    """The publication stopped after its first batch (as a crash would)."""


def _stop(n: int) -> None:
    raise _Stopped


def test_a_real_time_update_publishes_the_customers_pending_event_first(
    eb_repo: FeastRepo, namespace: str
) -> None:
    big = Segment("big", [{">": [{"var": "total_revenue"}, 1500]}])
    engine = engine_for(eb_repo, [big], namespace)
    store = engine.memberships
    engine.refresh()
    before = store.members("big")
    assert len(before) > 2
    mark = _events(store)[-1].id
    cid = before[-1]  # still eligible; its `left` stays pending after the first batch

    store.event_batch = 1
    with pytest.raises(_Stopped):
        store.store_many({"big": []}, on_published=_stop)  # everyone leaves; one event published
    assert store.members("big") == []

    update = update_customer(engine, cid)  # eligible, not stored: joins

    assert [(e.event, e.customer_id) for e in update.events] == [("joined", cid)]
    new = _events(store, since=mark)
    assert [(e.event, e.customer_id) for e in new] == [
        ("left", before[0]),
        ("left", cid),  # its pending event first, once...
        ("joined", cid),  # ...then its change
    ]
    store.publish_pending()
    new = _events(store, since=mark)
    assert [(e.event, e.customer_id) for e in new[3:]] == [("left", c) for c in before[1:-1]]
    assert not store.client.exists(store.pending_key())


def test_the_events_command_finishes_a_killed_publication_unless_a_refresh_runs(
    eb_repo: FeastRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command reads the project's own stream: use the repository's project here.
    big = Segment("big", [{">": [{"var": "total_revenue"}, 1500]}])
    engine = engine_for(eb_repo, [big], eb_repo.project)
    store = engine.memberships
    engine.refresh()
    before = store.members("big")
    store.event_batch = 2
    with pytest.raises(_Stopped):
        store.store_many({"big": []}, on_published=_stop)
    with store.refresh_lock():
        assert store.finish_publication() is None  # a refresh runs: it publishes them itself
    assert store.client.hlen(store.pending_key()) == 1

    argv = ["--repo", str(eb_repo.path), "events", "--json", "--count", "0"]
    assert segmentation_cli(argv) == 0

    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["event"], d["customer_id"]) for d in docs if d["event"] == "left"] == [
        ("left", c) for c in before
    ]
    assert not store.client.exists(store.pending_key())
    assert store.finish_publication() == 0
