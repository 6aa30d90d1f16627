"""The sync position: ``(lastUpdate, ids done at that second)``, its record, a corrupted one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from xiva_source.sync.checkpoint import Checkpoint
from xiva_source.sync.errors import SyncCheckpointError

T = datetime(2026, 10, 14, 8, 0, 0, tzinfo=UTC)


def test_ties_at_one_second_skip_only_the_ids_done_at_that_second() -> None:
    cp = Checkpoint()
    assert not cp.is_done("a", T)
    cp.done("a", T)
    cp.done("b", T)
    assert cp.is_done("a", T) and cp.is_done("b", T)
    assert not cp.is_done("c", T)  # shares the second, not done yet: read again
    cp.done("c", T + timedelta(seconds=1))
    assert cp.since == T + timedelta(seconds=1) and cp.seen == {"c"}
    assert cp.is_done("a", T)  # before the position
    assert not cp.is_done("a", T + timedelta(seconds=1))  # a later change of a


def test_the_record_round_trips() -> None:
    cp = Checkpoint(
        since=T, seen={"b", "a"}, dwh_since=T - timedelta(hours=1), day=date(2026, 1, 2)
    )
    assert Checkpoint.loads(cp.dumps()) == cp
    assert Checkpoint.loads(Checkpoint().dumps()) == Checkpoint()


def test_a_corrupted_record_names_the_key_to_delete(redis_url: str, redis_ns: str) -> None:
    import redis

    from xiva_source.sync.checkpoint import CheckpointStore

    client = redis.Redis.from_url(redis_url)
    store = CheckpointStore(client, redis_ns)
    assert store.load() is None
    store.save(Checkpoint(since=T, seen={"x"}))
    assert store.load() == Checkpoint(since=T, seen={"x"})
    client.set(store.key, "{not json")
    with pytest.raises(SyncCheckpointError) as info:
        store.load()
    assert info.value.exit_code == 4 and f"DEL {store.key}" in info.value.fix
    client.close()
