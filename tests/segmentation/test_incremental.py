"""Incremental segment refreshes against the full refresh, the reference: random changes and
clock advances over several rounds on one keyspace, the same on a copy refreshed in full, give
the same memberships, groups, history and events; fallbacks say why; a refresh killed mid-way
(a real SIGKILL of a child process) loses no change and publishes nothing twice."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from segmentation import Segment, SegmentEngine
from segmentation.journal import mark_changed
from tests.support.segmentation.incremental import (
    SEGMENTS,
    base_rows,
    child_command,
    delete_customers,
    engine_of,
    events_by_segment,
    random_changes,
    stored_rows_of,
    stored_state,
    write_both,
)
from tests.support.segmentation.repo import FeastRepo, build_repo, delete_project_keys

T0 = dt.datetime(2026, 2, 20, 9, 0, tzinfo=dt.UTC)


def _repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str, name: str) -> FeastRepo:
    project = f"seginc{name}_{uuid.uuid4().hex[:8]}"
    return build_repo(tmp_path_factory.mktemp(project), project, 300, redis_url, clock=lambda: T0)


@pytest.fixture
def pair(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[FeastRepo, FeastRepo]]:
    """Two keyspaces holding the same customers: the incremental one and its full copy."""
    repos = (_repo(tmp_path_factory, redis_url, "i"), _repo(tmp_path_factory, redis_url, "f"))
    yield repos
    for repo in repos:
        delete_project_keys(repo.project, redis_url)


def _engine(repo: FeastRepo, segments: list[Segment] = SEGMENTS) -> SegmentEngine:
    return engine_of(repo.path, segments)


def test_incremental_equals_full_over_rounds(pair: tuple[FeastRepo, FeastRepo]) -> None:
    inc_repo, full_repo = pair
    inc, full = _engine(inc_repo), _engine(full_repo)
    rows = base_rows(inc_repo)
    rng = random.Random(1717)
    now = T0
    population = len(inc.reader.customer_ids())
    for round_ in range(7):
        if round_:
            now += dt.timedelta(days=rng.choice([0, 1, 3, 17, 45, 400]), hours=rng.randint(0, 23))
            write_both([inc_repo, full_repo], random_changes(rng, rows, now, 20, 2))
            if round_ == 3:
                gone = rng.sample([c for c in rows if c.startswith("C")], 3)
                delete_customers([inc, full], gone)
                for cid in gone:
                    del rows[cid]
        got, want = inc.refresh(now=now), full.refresh(now=now, full=True)
        for name in SEGMENTS:
            n = name.name
            assert (got[n].size, got[n].joined, got[n].left) == (
                want[n].size,
                want[n].joined,
                want[n].left,
            ), (round_, n)
            if round_:
                assert got[n].mode == "incremental" and got[n].reason is None, got[n]
                assert (got[n].evaluated or population) < population
            assert want[n].mode == "full" and want[n].reason is None
        assert stored_state(inc) == stored_state(full), round_
        assert events_by_segment(inc) == events_by_segment(full), round_
    assert any(got[s.name].joined or got[s.name].left for s in SEGMENTS)


def test_fallbacks_say_why(pair: tuple[FeastRepo, FeastRepo]) -> None:
    repo = pair[0]
    odd = Segment("odd", [{">": [{"+": [{"var": "age"}, 1]}, 30]}])
    plain = Segment("plain", [{">": [{"var": "total_revenue"}, 500]}])
    engine = _engine(repo, [odd, plain])
    first = engine.refresh(now=T0)
    assert {r.reason for r in first.values()} == {"first refresh"}
    later = engine.refresh(now=T0 + dt.timedelta(days=1))
    assert later["plain"].mode == "incremental" and later["plain"].evaluated == 0
    assert later["odd"].mode == "full" and "cannot be analysed" in str(later["odd"].reason)
    mark_changed(engine.reader.client, repo.project, ["C00001"], limit=0)  # a full journal
    overflow = engine.refresh(["plain"], now=T0 + dt.timedelta(days=1))["plain"]
    assert overflow.mode == "full" and "journal was full" in str(overflow.reason)
    assert engine.refresh(["plain"], now=T0 + dt.timedelta(days=1))["plain"].mode == "incremental"
    back = engine.refresh(["plain"], now=T0)
    assert "clock went back" in str(back["plain"].reason)
    changed = Segment("plain", [{">": [{"var": "total_revenue"}, 900]}])
    other = _engine(repo, [odd, changed])
    again = other.refresh(["plain"], now=T0 + dt.timedelta(days=2))
    assert again["plain"].reason == "its definition changed"
    asked = other.refresh(["plain"], now=T0 + dt.timedelta(days=3), full=True)
    assert asked["plain"].mode == "full" and asked["plain"].reason is None


def test_staleness_falls_back_to_full(pair: tuple[FeastRepo, FeastRepo]) -> None:
    repo = pair[0]
    plain = Segment("plain", [{">": [{"var": "total_revenue"}, 500]}])
    engine = SegmentEngine(repo.store, [plain])  # staleness: the views' ttl (2 days here)
    engine.refresh(now=T0)
    assert engine.refresh(now=T0 + dt.timedelta(hours=2))["plain"].mode == "incremental"
    stale = engine.refresh(now=T0 + dt.timedelta(days=3))["plain"]
    assert stale.mode == "full" and "stale" in str(stale.reason)
    assert stale.size == 0 and engine.stored_members("plain") == []


@pytest.mark.usefixtures("subprocesses")
def test_a_killed_refresh_loses_nothing_and_publishes_once(
    pair: tuple[FeastRepo, FeastRepo],
) -> None:
    inc_repo, full_repo = pair
    inc, full = _engine(inc_repo), _engine(full_repo)
    inc.refresh(now=T0)
    full.refresh(now=T0, full=True)
    rows = base_rows(inc_repo)
    when = T0 + dt.timedelta(days=20)
    write_both([inc_repo, full_repo], random_changes(random.Random(7), rows, when, 30, 3))
    env = {**os.environ, "PYTHONPATH": _root(), "ENV_FILE": "none"}
    before = (stored_state(inc), events_by_segment(inc))
    # Killed before its transaction: nothing stored, nothing published, the marks still there.
    died = subprocess.run(
        child_command(inc_repo, when, "_store_deltas"), env=env, capture_output=True, text=True
    )
    assert died.returncode == -9, died.stderr
    assert (stored_state(inc), events_by_segment(inc)) == before
    # Killed right after it (before the journal is trimmed and the served rows written).
    died = subprocess.run(
        child_command(inc_repo, when, "trim"), env=env, capture_output=True, text=True
    )
    assert died.returncode == -9, died.stderr
    want = full.refresh(now=when, full=True)
    assert stored_state(inc) == stored_state(full)
    assert events_by_segment(inc) == events_by_segment(full)
    assert any(r.joined or r.left for r in want.values())
    # The next refresh finds nothing new: no event twice.
    again = inc.refresh(now=when)
    assert all(not r.joined and not r.left for r in again.values())
    assert events_by_segment(inc) == events_by_segment(full)


def _root() -> str:
    return str(__import__("pathlib").Path(__file__).resolve().parents[2])


def test_a_realtime_update_racing_an_incremental_refresh_is_published_once(
    pair: tuple[FeastRepo, FeastRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from segmentation import incremental, update_customer

    repo = pair[0]
    big = Segment("big", [{">": [{"var": "total_revenue"}, 2000]}])
    engine = _engine(repo, [big])
    engine.refresh(now=T0)
    rows = base_rows(repo)
    outsider = next(c for c, r in rows.items() if (r["total_revenue"] or 0) < 100)
    rows[outsider] = {**rows[outsider], "total_revenue": 5000.0}
    write_both([repo], stored_rows_of(rows, [outsider], T0 + dt.timedelta(hours=1)))
    deltas = incremental._deltas
    raced: list[int] = []

    def racing(*args: object, **kwargs: object) -> object:
        # Between the refresh's WATCH and its transaction, the customer is updated live.
        if not raced:
            raced.append(len(update_customer(engine, outsider, now=T0, serve=False).events))
        return deltas(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(incremental, "_deltas", racing)
    result = engine.refresh(now=T0 + dt.timedelta(hours=2))["big"]
    monkeypatch.undo()
    assert raced == [1] and result.joined == []  # stored live, so not a change of the refresh
    events = [e for e in events_by_segment(engine)["big"] if e[1] == outsider]
    assert [e[0] for e in events] == ["joined"]
    assert engine.memberships.is_member("big", outsider)
