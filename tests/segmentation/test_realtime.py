"""Real-time membership: one customer re-evaluated, stored and published at once (real Redis).

The simulator end to end (``xiva-source refresh <id>``) is in test_served_memberships.py.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segmentation import (
    MembershipEvent,
    MembershipStore,
    Segment,
    SegmentEngine,
    read_events,
    update_customer,
    update_customers,
)
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.segmentation.realtime import (
    engine_for,
    ids_of,
    own_namespace,
    own_repo,
    restore,
    set_revenue,
)
from tests.support.segmentation.repo import FeastRepo, stored_rows, write_online

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0)


def big(threshold: float = 1500, **kwargs: Any) -> Segment:
    return Segment("big", [{">": [{"var": "total_revenue"}, threshold]}], **kwargs)


@pytest.fixture(scope="module")
def rt_repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[FeastRepo]:
    yield from own_repo(tmp_path_factory, "rt", redis_url)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    yield from own_namespace(redis_url)


@pytest.fixture
def changed(rt_repo: FeastRepo) -> Iterator[list[str]]:
    """Customers whose features a test changes: written back afterwards."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        restore(rt_repo, cid)


def _events(store: MembershipStore, since: str | None = None) -> list[MembershipEvent]:
    return read_events(store.client, store.events_key(), since=since)


def _outsider(repo: FeastRepo, engine: SegmentEngine) -> str:
    """A customer with features that is not in ``big`` (revenue known and low)."""
    frame = repo.frame.drop(repo.stale_ids)
    low = frame[frame["total_revenue"].notna() & (frame["total_revenue"] < 500)]
    cid = str(low.index[3])
    assert not engine.memberships.is_member("big", cid)
    return cid


def _replay(events: list[MembershipEvent]) -> dict[str, set[str]]:
    state: dict[str, set[str]] = {}
    for e in events:
        members = state.setdefault(e.segment, set())
        assert (e.customer_id in members) == (e.event == "left"), f"out of order: {e}"
        (members.add if e.event == "joined" else members.discard)(e.customer_id)
    return state


def test_a_changed_customer_joins_once_and_the_next_batch_publishes_nothing_more(
    rt_repo: FeastRepo, namespace: str, changed: list[str]
) -> None:
    engine = engine_for(rt_repo, [big()], namespace)
    store = engine.memberships
    engine.refresh()
    mark = _events(store)[-1].id
    cid = _outsider(rt_repo, engine)
    changed.append(cid)
    set_revenue(rt_repo, cid, 5000.0, dt.datetime.now(dt.UTC))

    update = update_customer(engine, cid)

    assert update.groups == {"big": "target"} and update.segments == ["big"]
    new = _events(store, since=mark)
    assert [(e.event, e.segment, e.customer_id, e.group) for e in new] == [
        ("joined", "big", cid, "target")
    ]
    assert [e.fields() for e in update.events] == [e.fields() for e in new]
    assert store.is_member("big", cid) and cid in store.members("big")
    # Updating again finds nothing to change; the batch agrees and publishes nothing for it.
    assert update_customer(engine, cid).events == []
    result = engine.refresh()["big"]
    assert cid not in result.joined and cid not in result.left
    assert _events(store, since=mark) == new
    assert _replay(_events(store)) == {"big": set(store.members("big"))}

    # And leaving: one `left`, with the group it had.
    set_revenue(rt_repo, cid, 10.0, dt.datetime.now(dt.UTC))
    left = update_customer(engine, cid).events
    assert [(e.event, e.group) for e in left] == [("left", "target")]
    assert not store.is_member("big", cid)
    assert cid not in engine.refresh()["big"].left


def test_holdout_members_are_stored_with_their_group(
    rt_repo: FeastRepo, namespace: str, changed: list[str]
) -> None:
    seg = big(1500, holdout=0.5)
    engine = engine_for(rt_repo, [seg], namespace)
    engine.refresh()
    frame = rt_repo.frame.drop(rt_repo.stale_ids)
    low = [str(c) for c in frame.index[frame["total_revenue"].fillna(0) < 500]]
    held = next(c for c in low if seg.group_of(c, global_control=0.0) == "holdout")
    changed.append(held)
    set_revenue(rt_repo, held, 5000.0, dt.datetime.now(dt.UTC))
    update = update_customer(engine, held, global_control=0.0)
    assert update.groups == {"big": "holdout"} and update.segments == []
    assert [(e.event, e.group) for e in update.events] == [("joined", "holdout")]
    assert engine.memberships.group_of("big", held) == "holdout"
    assert not engine.memberships.is_member("big", held)  # eligible, not targeted
    assert held in engine.memberships.members("big")
    set_revenue(rt_repo, held, 1.0, dt.datetime.now(dt.UTC))
    assert [(e.event, e.group) for e in update_customer(engine, held).events] == [
        ("left", "holdout")
    ]
    assert engine.memberships.group_of("big", held) is None


def test_segments_never_refreshed_are_skipped_and_references_are_evaluated_in_order(
    rt_repo: FeastRepo, namespace: str
) -> None:
    paris = Segment("paris", [{"==": [{"var": "city"}, "Paris"]}])
    rich_paris = Segment(
        "rich_paris", [{"segment": "paris"}, {">": [{"var": "total_revenue"}, 500]}]
    )
    engine = engine_for(rt_repo, [rich_paris, paris], namespace)
    frame = rt_repo.frame.drop(rt_repo.stale_ids)
    cid = str(frame.index[(frame["city"] == "Paris") & (frame["total_revenue"].fillna(0) > 500)][0])
    update = update_customer(engine, cid)
    assert update.groups == {"paris": "target", "rich_paris": "target"}
    assert update.events == [] and sorted(update.skipped) == ["paris", "rich_paris"]
    assert _events(engine.memberships) == []
    engine.refresh()  # now stored: the batch published them, real time finds nothing new
    assert update_customer(engine, cid).events == []
    assert {e.segment for e in _events(engine.memberships) if e.customer_id == cid} == {
        "paris",
        "rich_paris",
    }


def test_concurrent_updates_of_one_customer_publish_one_event(
    rt_repo: FeastRepo, namespace: str, changed: list[str]
) -> None:
    engine = engine_for(rt_repo, [big()], namespace)
    engine.refresh()
    mark = _events(engine.memberships)[-1].id
    cid = _outsider(rt_repo, engine)
    changed.append(cid)
    set_revenue(rt_repo, cid, 5000.0, dt.datetime.now(dt.UTC))
    engines = [engine_for(rt_repo, [big()], namespace) for _ in range(4)]
    start = threading.Barrier(len(engines))
    found: list[int] = []

    def run(e: SegmentEngine) -> None:
        start.wait()
        found.append(len(update_customer(e, cid).events))

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(found) == [0, 0, 0, 1]
    assert ids_of(_events(engine.memberships, since=mark)) == [cid]


@pytest.mark.parametrize("features_before_batch", [True, False])
def test_a_batch_switch_racing_a_realtime_update_redoes_its_deltas(
    rt_repo: FeastRepo,
    namespace: str,
    changed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    features_before_batch: bool,
) -> None:
    engine = engine_for(rt_repo, [big()], namespace)
    store = engine.memberships
    engine.refresh(full=True)  # the generation switch
    mark = _events(store)[-1].id
    cid = _outsider(rt_repo, engine)
    changed.append(cid)
    if features_before_batch:  # the batch evaluates the new features too
        set_revenue(rt_repo, cid, 5000.0, dt.datetime.now(dt.UTC))
    switch = MembershipStore._switch

    def racing(self: MembershipStore, *args: Any, **kwargs: Any) -> None:
        # Between the batch's deltas and its switch, the customer changes and is updated live.
        if not features_before_batch:
            set_revenue(rt_repo, cid, 5000.0, dt.datetime.now(dt.UTC))
        assert len(update_customer(engine, cid, serve=False).events) == 1
        switch(self, *args, **kwargs)

    monkeypatch.setattr(MembershipStore, "_switch", racing)
    engine.refresh(full=True)  # the generation switch
    monkeypatch.undo()
    mine = [e.event for e in _events(store, since=mark) if e.customer_id == cid]
    # Every stored change once: the batch saw the old features -> it stores them (left).
    assert mine == (["joined"] if features_before_batch else ["joined", "left"])
    assert _replay(_events(store)) == {"big": set(store.members("big"))}
    engine.refresh(full=True)  # the generation switch
    mine = [e.event for e in _events(store, since=mark) if e.customer_id == cid]
    assert mine[-1] == "joined" and store.is_member("big", cid)


def test_update_customers_after_a_push(
    rt_repo: FeastRepo, namespace: str, changed: list[str]
) -> None:
    engine = engine_for(rt_repo, [big()], namespace)
    engine.refresh()
    frame = rt_repo.frame.drop(rt_repo.stale_ids)
    low = [str(c) for c in frame.index[frame["total_revenue"].fillna(0) < 500]][:3]
    changed.extend(low)
    for cid in low:
        set_revenue(rt_repo, cid, 4000.0, dt.datetime.now(dt.UTC))
    updates = update_customers(engine, [*low, low[0]])
    assert list(updates) == low
    assert all([e.event for e in u.events] == ["joined"] for u in updates.values())
    assert all(engine.memberships.is_member("big", c) for c in low)


def test_realtime_updates_and_batch_events_on_a_redis_cluster(
    rt_repo: FeastRepo, redis_cluster: RedisClusterNodes, tmp_path: Path, cluster_ns: str
) -> None:
    from feast import FeatureStore

    # The same repository on the cluster (every key of the memberships in one slot).
    path = tmp_path / "cluster_repo"
    shutil.copytree(rt_repo.path, path)
    yaml = (path / "feature_store.yaml").read_text()
    conn = next(line for line in yaml.splitlines() if "connection_string" in line)
    nodes = ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports)
    yaml = yaml.replace(conn, f'  redis_type: redis_cluster\n  connection_string: "{nodes}"')
    (path / "feature_store.yaml").write_text(yaml)
    store = FeatureStore(repo_path=str(path))
    frame = stored_rows(rt_repo.frame.drop(rt_repo.stale_ids))
    store.write_to_online_store("customer_features", frame)
    try:
        engine = SegmentEngine(store, [big()])
        engine.memberships = MembershipStore(engine.reader.client, cluster_ns)
        first = engine.refresh()["big"]
        events = _events(engine.memberships)
        assert ids_of(events, "joined") == first.joined and first.joined
        low = frame[frame["total_revenue"].fillna(0) < 500].iloc[[2]].copy()
        cid = str(low["customer_id"].iloc[0])
        low["total_revenue"] = [5000.0]
        low["event_timestamp"] = [dt.datetime.now(dt.UTC)]
        write_online(store, "customer_features", low)
        update = update_customer(engine, cid)
        assert [(e.event, e.customer_id) for e in update.events] == [("joined", cid)]
        assert engine.memberships.is_member("big", cid)
        assert cid not in engine.refresh()["big"].joined
        assert ids_of(_events(engine.memberships, since=events[-1].id)) == [cid]
    finally:
        redis_cluster.delete_matching(f"*{rt_repo.project}")
