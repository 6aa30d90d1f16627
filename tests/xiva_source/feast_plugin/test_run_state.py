"""The shared run state: its fields parsed (a corrupted one named with its repair), its two
stores (Redis, a file), and how the job carries on from Feast's recorded pulls (pure rules)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from xiva_source.feast_plugin.errors import CorruptedStateError
from xiva_source.feast_plugin.feast_runs import FeastPullRecord, carry_on
from xiva_source.feast_plugin.run_state import (
    FeastPart,
    FileRunState,
    RedisRunState,
    StateSnapshot,
)
from xiva_source.pipeline.report import PullReport
from xiva_source.settings import load_settings

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
E0, E1, E2 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)


def _part(
    start: datetime | None,
    end: datetime,
    *,
    pull: str = "p1",
    part: int = 0,
    parts: int = 1,
    mode: str = "auto",
    merged: tuple[str, ...] = ("xiva", "dwh"),
    rows: int = 10,
    began: datetime | None = None,
) -> FeastPart:
    return FeastPart(
        view="v",
        pull=pull,
        part=part,
        parts=parts,
        start=start,
        end=end,
        began=began or end,
        mode=mode,
        rows={"xiva": rows, "dwh": rows},
        merged=merged,
    )


def _state(*parts: FeastPart, **fields: str) -> StateSnapshot:
    stored = {p.field: p.to_json() for p in parts}
    stored.update({k.replace("__", ":"): v for k, v in fields.items()})
    return StateSnapshot(stored)


def _carry(
    state: StateSnapshot,
    stored: dict[str, datetime | None] | None = None,
    intervals: list[datetime] | None = None,
    now: datetime = NOW,
) -> tuple[dict[str, datetime | None], list[str], str | None]:
    result = carry_on(
        state,
        "v",
        "auto",
        stored if stored is not None else {"xiva": None, "dwh": None},
        [(None, end) for end in (intervals or [])],
        now,
    )
    return result.marks, result.consumed, result.other_mode


# -- carrying on from Feast's pulls ---------------------------------------------------------


def test_a_confirmed_first_pull_becomes_every_sources_watermark() -> None:
    first = _part(None, E1)
    marks, consumed, other = _carry(_state(first), intervals=[E1])
    assert marks == {"xiva": E1, "dwh": E1} and consumed == [first.field] and other is None


def test_an_unconfirmed_pull_moves_nothing_and_is_dropped_only_when_dead() -> None:
    pull = _part(None, E1, began=E1)
    marks, consumed, _ = _carry(_state(pull), intervals=[E0])  # Feast never recorded E1
    assert marks == {"xiva": None, "dwh": None} and consumed == []
    _, consumed, _ = _carry(_state(pull), intervals=[E0], now=E1 + timedelta(days=2))
    assert consumed == [pull.field]


def test_pulls_chain_from_the_watermark_and_a_gap_stops_them() -> None:
    chain = _state(_part(E0, E1, pull="a"), _part(E1, E2, pull="b"))
    marks, consumed, _ = _carry(chain, {"xiva": E0, "dwh": E0}, [E1, E2])
    assert marks == {"xiva": E2, "dwh": E2} and len(consumed) == 2
    # The job's watermark is before the pull's start: the changes in between were never read.
    marks, consumed, _ = _carry(_state(_part(E1, E2)), {"xiva": E0, "dwh": E0}, [E2])
    assert marks == {"xiva": E0, "dwh": E0} and len(consumed) == 1


def test_a_pull_that_fell_back_or_read_nothing_keeps_the_watermarks() -> None:
    fell_back = _part(E0, E1, merged=())
    marks, _, _ = _carry(_state(fell_back), {"xiva": E0, "dwh": E0}, [E1])
    assert marks == {"xiva": E0, "dwh": E0}
    empty = _part(None, E1, rows=0)  # an empty read from the beginning never moves one
    assert _carry(_state(empty), intervals=[E1])[0] == {"xiva": None, "dwh": None}


def test_a_pull_in_another_mode_reloads_the_view() -> None:
    other = _part(E0, E1, mode="xiva", merged=("xiva",), began=NOW)
    _, consumed, mode = _carry(_state(other), {"xiva": E0, "dwh": E0}, [])
    assert mode == "xiva" and consumed == [other.field]  # unconfirmed: its rows may be online


def test_a_failed_write_voids_the_pulls_begun_before_it() -> None:
    pull = _part(E0, E1, began=E0 + timedelta(minutes=1))
    failed = {"feast_write_failed__v": (E0 + timedelta(minutes=2)).isoformat()}
    marks, consumed, _ = _carry(_state(pull, **failed), {"xiva": E0, "dwh": E0}, [E1])
    assert marks == {"xiva": E0, "dwh": E0} and consumed == [pull.field]
    later = _part(E0, E1, began=E0 + timedelta(minutes=3))
    assert _carry(_state(later, **failed), {"xiva": E0, "dwh": E0}, [E1])[0]["xiva"] == E1


def test_every_part_of_a_ray_pull_must_be_recorded() -> None:
    parts = [_part(E0, E1, part=i, parts=3, merged=("dwh",)) for i in range(3)]
    stored: dict[str, datetime | None] = {"xiva": E0, "dwh": E0}
    assert _carry(_state(*parts[:2]), stored, [E1])[0] == stored
    marks, consumed, _ = _carry(_state(*parts), stored, [E1])
    assert marks == {"xiva": E0, "dwh": E1} and len(consumed) == 3


def test_a_confirmed_pull_that_read_everything_is_a_full_read_for_the_expiry_sweep() -> None:
    def full_read(*parts: FeastPart, **fields: str) -> datetime | None:
        state = _state(*parts, **fields)
        stored: dict[str, datetime | None] = {"xiva": None, "dwh": None}
        return carry_on(state, "v", "auto", stored, [(None, E1), (None, E2)], NOW).full_read

    assert full_read(_part(None, E1, began=E0), _part(None, E2, pull="b", began=E1)) == E1
    assert full_read(_part(E0, E1)) is None  # a window: not every customer was written
    assert full_read(_part(None, E1, merged=("xiva",))) is None  # the DWH fell back
    assert full_read(_part(None, E1, rows=0)) is None  # nothing read
    assert full_read(_part(None, E0 - timedelta(hours=1))) is None  # not confirmed
    failed = {"feast_write_failed__v": (E0 + timedelta(minutes=1)).isoformat()}
    assert full_read(_part(None, E1, began=E0), **failed) is None  # a write failed after it


def test_a_feast_pull_whose_xiva_rows_were_not_settled_never_carries_xiva_on(
    tmp_path: Path,
) -> None:
    from feast.repo_config import RepoConfig

    config = RepoConfig(
        project="p",
        registry=str(tmp_path / "registry.db"),
        provider="local",
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
    )
    config.repo_path = tmp_path
    record = FeastPullRecord(config, load_settings(env_file=None), ("v",), "p1", E0, E1, E0, "auto")
    record.save(PullReport(rows_by_source={"xiva": 3, "dwh": 3}, errors={"snapshot": "down"}))
    state = FileRunState(tmp_path / "p.materialize-state.json").load()
    (part,) = state.feast_parts("v")
    assert part.merged == ("dwh",)  # Xiva's rows were not recorded: the job reads them again
    assert not state.rereads("v")  # and a Feast pull records no re-read mark
    marks, _, _ = _carry(state, {"xiva": E0, "dwh": E0}, [E1])
    assert marks == {"xiva": E0, "dwh": E1}


# -- re-read marks -------------------------------------------------------------------------


def test_a_reread_mark_is_stored_with_the_views_watermarks(tmp_path: Path) -> None:
    state = FileRunState(tmp_path / "p.materialize-state.json")
    state.save_view("v", {"xiva": E2, "dwh": E2}, "auto", {"xiva": E1})
    assert state.load().fields["reread:v:xiva"] == "2026-05-01T10:00:00Z"
    assert state.load().rereads("v") == {"xiva": E1}
    state.save_view("v", {"xiva": E2, "dwh": E2}, "auto", {"xiva": None})
    assert state.load().fields["reread:v:xiva"] == "beginning"
    state.save_view("v", {"xiva": E2}, "auto")  # not given: untouched
    assert state.load().rereads("v") == {"xiva": None}
    state.save_view("v", {"xiva": E2, "dwh": E2}, "auto", {})  # settled: removed
    assert "reread:v:xiva" not in state.load().fields


def test_an_unreadable_reread_mark_reads_as_the_beginning_never_as_corrupted() -> None:
    state = _state(**{"wm__v__xiva": E1.isoformat(), "reread__v__xiva": "garbage"})
    assert state.rereads("v") == {"xiva": None}  # re-reading costs calls, never data
    assert state.unreadable_rereads("v") == {"xiva": "garbage"}
    assert not state.corruptions() and state.watermark("v", "xiva") == E1
    state.check(["reread:v:xiva"])  # never raises
    assert StateSnapshot({"reread:w:xiva": "beginning"}).rereads("v") == {}


# -- corrupted fields ----------------------------------------------------------------------


def test_each_corrupted_field_is_named_and_raised_only_when_used() -> None:
    state = StateSnapshot(
        {
            "wm:v:xiva": "garbage-time",
            "wm:v:dwh": "2026-05-01T10:00:00Z",
            "mode:v": "sideways",
            "last_run": "{not json",
            "feast:v:abc:0": "[]",
            "something:new": "a later version's field",
        }
    )
    names = sorted(e.field for e in state.corruptions())
    assert names == ["feast:v:abc:0", "last_run", "mode:v", "wm:v:xiva"]
    assert state.watermark("v", "dwh") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(CorruptedStateError, match=r"'wm:v:xiva'.*'garbage-time'") as info:
        state.watermark("v", "xiva")
    assert info.value.exit_code == 4 and "--full --view v" in info.value.fix
    with pytest.raises(CorruptedStateError, match=r"one of xiva, dwh, auto"):
        state.mode("v")
    assert state.last_run() is None and state.watermarks() == {
        ("v", "dwh"): datetime(2026, 5, 1, 10, tzinfo=UTC)
    }
    # The corrupted pull record is dropped by the job (it never moves a watermark).
    assert carry_on(state, "v", "auto", {"dwh": None}, [], NOW).consumed == ["feast:v:abc:0"]


def test_the_fix_of_a_redis_field_is_the_exact_command(redis_url: str, redis_ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    state = RedisRunState(client, redis_ns)
    state.save_view("v", {"xiva": E1}, "auto")
    client.hset(f"xiva_source:materialize:state:{redis_ns}", "wm:v:xiva", "garbage-time")
    with pytest.raises(CorruptedStateError) as info:
        state.load().watermark("v", "xiva")
    command = f'redis-cli -u "$REDIS_URL" HDEL xiva_source:materialize:state:{redis_ns} wm:v:xiva'
    assert f"`{command}`" in info.value.fix
    assert f"Redis hash xiva_source:materialize:state:{redis_ns}" in info.value.problem
    client.close()


def test_the_marker_expires_with_the_keys_it_vouches_for(redis_url: str, redis_ns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    state = RedisRunState(client, redis_ns)
    # Keys extended 10 s ago with a 60 s expiry: the marker lives 50 s more, not 60.
    assert state.set_marker(60, at=datetime.now(UTC) - timedelta(seconds=10))
    marker = f"xiva_source:materialize:marker:{redis_ns}"
    ttl = int(client.pttl(marker))  # type: ignore[arg-type]
    assert 45_000 < ttl <= 50_000
    assert not state.set_marker(600, only_if_missing=True)  # Feast's path leaves it alone
    assert int(client.pttl(marker)) <= 50_000  # type: ignore[arg-type]
    state.set_marker(1, at=datetime.now(UTC) - timedelta(seconds=5))  # already expired
    time.sleep(0.01)
    assert state.marker() is None
    client.close()


def test_a_state_file_that_is_not_json_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "p.materialize-state.json"
    state = FileRunState(path)
    state.save_view("v", {"xiva": E1}, "auto")
    assert state.load().watermark("v", "xiva") == E1
    path.write_text("{truncated")
    loaded = state.load()
    assert loaded.unreadable is not None and f"mv {path} {path}.corrupted" in loaded.unreadable.fix
    with pytest.raises(CorruptedStateError):
        loaded.check([])
    with pytest.raises(CorruptedStateError):
        state.save_run({"outcome": "ok"}, {})
    assert path.read_text() == "{truncated" and state.marker() is None
    aside = state.move_aside()
    assert aside.read_text() == "{truncated" and state.load().fields == {}
    state.save_run({"outcome": "ok"}, {})
    assert json.loads(path.read_text())["fields"]["last_run"] == '{"outcome": "ok"}'
