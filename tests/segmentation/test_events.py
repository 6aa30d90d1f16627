"""The membership event stream: batch refreshes publish each change once (real Redis)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from segmentation import MembershipEvent, MembershipStore, Segment, read_events
from segmentation.errors import SegmentationError
from segmentation.events import stream_id
from tests.support.segmentation.realtime import engine_for, ids_of, own_namespace, own_repo
from tests.support.segmentation.repo import FeastRepo
from tests.support.services import REDIS_URL
from xiva_source.cli import segmentation_main as segmentation_cli

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)


def big(threshold: float, **kwargs: Any) -> Segment:
    return Segment("big", [{">": [{"var": "total_revenue"}, threshold]}], **kwargs)


@pytest.fixture(scope="module")
def ev_repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[FeastRepo]:
    yield from own_repo(tmp_path_factory, "ev", redis_url)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    yield from own_namespace(redis_url)


def _events(store: MembershipStore, since: str | None = None) -> list[MembershipEvent]:
    return read_events(store.client, store.events_key(), since=since)


def _replay(events: list[MembershipEvent]) -> dict[str, set[str]]:
    state: dict[str, set[str]] = {}
    for e in events:
        members = state.setdefault(e.segment, set())
        if e.event == "joined":
            assert e.customer_id not in members, f"joined twice: {e}"
            members.add(e.customer_id)
        else:
            assert e.customer_id in members, f"left without joining: {e}"
            members.remove(e.customer_id)
    return state


def test_event_fields_and_stream_positions() -> None:
    event = MembershipEvent.at("joined", "big", "C1", None, dt.datetime(2026, 1, 2, 3, 4, 5))
    assert event.fields() == {
        "event": "joined",
        "segment": "big",
        "customer_id": "C1",
        "group": "target",
        "time": "2026-01-02T03:04:05Z",
    }
    back = MembershipEvent.from_entry(
        b"1-0", {k.encode(): v.encode() for k, v in event.fields().items()}
    )
    assert back == MembershipEvent(**event.fields(), id="1-0")
    assert stream_id("1732540000000-3") == "1732540000000-3"
    assert (
        stream_id("2026-01-02T03:04:05Z")
        == f"{int(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp() * 1000)}-0"
    )
    with pytest.raises(SegmentationError, match="neither a stream entry id"):
        stream_id("yesterday")


def test_batch_refresh_publishes_each_change_once(ev_repo: FeastRepo, namespace: str) -> None:
    first = engine_for(ev_repo, [big(1500)], namespace)
    store = first.memberships
    r1 = first.refresh(now=T0)["big"]
    events = _events(store)
    assert r1.size > 5 and ids_of(events, "joined") == r1.joined and ids_of(events, "left") == []
    assert {(e.segment, e.group, e.time) for e in events} == {
        ("big", "target", "2026-11-25T08:00:00Z")
    }
    last = events[-1].id

    wider = engine_for(ev_repo, [big(1000)], namespace)
    r2 = wider.refresh(now=T0 + dt.timedelta(hours=1))["big"]
    new = _events(store, since=last)
    assert r2.joined and ids_of(new, "joined") == r2.joined and ids_of(new, "left") == []

    narrower = engine_for(ev_repo, [big(1800)], namespace)
    r3 = narrower.refresh(now=T0 + dt.timedelta(hours=2))["big"]
    assert r3.left and ids_of(_events(store, since=new[-1].id), "left") == r3.left
    # Nothing changed: nothing published.
    before = _events(store)
    narrower.refresh(now=T0 + dt.timedelta(hours=3))
    assert _events(store) == before
    # The stream replays to the stored members.
    assert _replay(before) == {"big": set(store.members("big"))}


def test_a_killed_refresh_publishes_nothing_and_its_retry_publishes_once(
    ev_repo: FeastRepo, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(ev_repo, [big(1500)], namespace)
    store = engine.memberships
    engine.refresh(now=T0)
    before = _events(store)
    members = store.members("big")
    wider = engine_for(ev_repo, [big(900)], namespace)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed before the switch")

    with monkeypatch.context() as m:
        m.setattr(MembershipStore, "_switch", killed)
        with pytest.raises(KeyboardInterrupt):
            wider.refresh(now=T0 + dt.timedelta(hours=1))
    assert _events(store) == before and store.members("big") == members

    retried = wider.refresh(now=T0 + dt.timedelta(hours=2))["big"]
    after = _events(store, since=before[-1].id)
    assert retried.joined and ids_of(after, "joined") == retried.joined
    wider.refresh(now=T0 + dt.timedelta(hours=3))  # retried again: no change, nothing published
    assert _events(store, since=before[-1].id) == after
    assert _replay(_events(store)) == {"big": set(store.members("big"))}


def test_events_carry_the_members_group(ev_repo: FeastRepo, namespace: str) -> None:
    seg = big(500, holdout=0.5)
    engine = engine_for(ev_repo, [seg], namespace)
    engine.refresh(now=T0)
    events = _events(engine.memberships)
    groups = {e.customer_id: e.group for e in events}
    assert set(groups.values()) == {"holdout", "target"}
    assert groups == {
        cid: seg.group_of(cid, global_control=engine.global_control) for cid in groups
    }
    leaving = engine_for(ev_repo, [big(1e9, holdout=0.5)], namespace)
    leaving.refresh(now=T0 + dt.timedelta(hours=1))
    left = {e.customer_id: e.group for e in _events(engine.memberships, since=events[-1].id)}
    assert left == groups  # a leaver's event carries the group it had


def test_segmentation_events_command(
    ev_repo: FeastRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command reads the project's own stream: use the repository's project here.
    other = Segment("paris", [{"==": [{"var": "city"}, "Paris"]}])
    engine = engine_for(ev_repo, [big(1500), other], ev_repo.project)
    engine.refresh(now=T0)
    stored = _events(engine.memberships)
    argv = ["--repo", str(ev_repo.path), "events"]

    assert segmentation_cli([*argv, "--json", "--count", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == len(stored) > 0
    for doc, event in zip(docs, stored, strict=True):
        assert {"event", "segment", "customer_id", "group", "time"} <= set(doc)
        assert doc == event.as_dict()

    assert segmentation_cli([*argv, "--json", "--segment", "paris", "--count", "3"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    paris = [e for e in stored if e.segment == "paris"]
    assert [d["id"] for d in docs] == [e.id for e in paris[-3:]]  # the newest three

    assert segmentation_cli([*argv, "--since", str(stored[1].id), "--count", "2"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in text] == [stored[2].id, stored[3].id]
    assert text[0].split("\t")[2:] == [
        stored[2].event,
        stored[2].segment,
        stored[2].customer_id,
        stored[2].group,
    ]

    assert segmentation_cli([*argv, "--since", "not a time"]) == 1
    assert "neither a stream entry id" in capsys.readouterr().err


def _load_example() -> Any:
    path = ROOT / "docs" / "examples" / "membership_consumer.py"
    spec = importlib.util.spec_from_file_location("membership_consumer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pending(client: redis.Redis, key: str) -> int:
    reply: Any = client.xpending(key, "campaigns")
    return int(reply["pending"])


def test_the_documented_consumer_group_example(ev_repo: FeastRepo, namespace: str) -> None:
    example = _load_example()
    engine = engine_for(ev_repo, [big(1500)], namespace)
    store = engine.memberships
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    key = store.events_key()
    example.ensure_group(client, key, "campaigns")  # before any event: reads from the start
    example.ensure_group(client, key, "campaigns")  # idempotent
    engine.refresh(now=T0)
    published = _events(store)

    # A consumer that crashes on the third event leaves it (and what it did not ack) pending.
    seen: list[str] = []

    def crashing(event: dict[str, str]) -> None:
        if len(seen) == 2:
            raise RuntimeError("crash")
        seen.append(event["customer_id"])

    with pytest.raises(RuntimeError, match="crash"):
        example.consume(client, key, "campaigns", "worker-1", crashing, block_ms=100, batches=1)
    assert _pending(client, key) == len(published) - 2

    # Restarted, it first takes its pending events again, then the new ones; each acked once.
    handled: list[dict[str, str]] = []
    n = example.consume(
        client, key, "campaigns", "worker-1", handled.append, block_ms=100, batches=3
    )
    assert [e["customer_id"] for e in handled] == ids_of(published)[2:]
    assert n == len(published) - 2
    assert _pending(client, key) == 0
    assert {"event", "segment", "customer_id", "group", "time"} <= set(handled[0])

    # Nothing left: a further run handles nothing.
    assert (
        example.consume(
            client, key, "campaigns", "worker-1", handled.append, block_ms=50, batches=1
        )
        == 0
    )
    client.close()
