"""The expiry sweep: a ``SCAN`` cursor spread over runs, its slice sized by the run interval.

Real Redis; the keys of a layout under the test's own namespace; the job itself against the
simulator, a DWH of the test's own and Redis for departed customers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support.feast import FeastEnv
from tests.support.xiva_source.jobs import store_of
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.run_state import ExpirySweep, RedisRunState
from xiva_source.jobs.expiry import MIN_SLICE, SWEEP_SHARE, slice_size, sweep_online_expiry
from xiva_source.jobs.materialize import run_materialization

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def _keys(client: redis.Redis, layout: RedisLayout, n: int, ttl: int | None) -> list[bytes]:
    keys = [layout.key(f"C{i:05d}") for i in range(n)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hset(key, "f", "1")  # type: ignore[arg-type]
        if ttl is not None:
            pipe.expire(key, ttl)
    pipe.execute()
    return keys


def test_slice_follows_the_interval_not_the_population() -> None:
    day = 86_400
    assert slice_size(1_000_000, 900, day) == 41_667  # 1M * 900 s / (day / 4)
    assert slice_size(100_000, 900, day) == MIN_SLICE  # 4,167 below the floor
    assert slice_size(1_000_000, 0.5, day) == MIN_SLICE
    assert slice_size(2_000_000, None, day) == 2_000_000  # never swept: all of it
    assert slice_size(5, day / SWEEP_SHARE, day) == MIN_SLICE  # a cycle apart: all of it


def test_a_cycle_spread_over_runs_resets_every_key_once_and_sets_covered_since(
    client: redis.Redis, redis_ns: str
) -> None:
    layout = RedisLayout(f"p_{redis_ns.replace('-', '_')}", ("customer_id",))
    other = RedisLayout(f"x{layout.project}", ("customer_id",))  # ends with ours: untouched
    keys = _keys(client, layout, 250, ttl=30)
    client.hset(layout.key("NO_TTL"), "f", "1")  # type: ignore[arg-type]  # written without an expiry (Feast, old versions)
    foreign = _keys(client, other, 3, ttl=None)
    state = RedisRunState(client, redis_ns)
    join = ("customer_id",)

    sweep, runs, extended = None, 0, 0
    while True:
        runs += 1
        result = sweep_online_expiry(
            client, layout, 1000, sweep, now=NOW + timedelta(minutes=runs), limit=100
        )
        state.save_sweep(join, result.sweep)
        sweep = state.load().sweep(join)  # as the next run reads it
        assert sweep == result.sweep
        extended += result.extended
        if result.completed:
            break
        assert sweep is not None and sweep.covered_since is None  # not known before a cycle ends
        assert runs < 10

    assert 3 <= runs <= 4  # 251 keys, about 100 per run
    assert extended >= 251
    assert all(900 < int(client.ttl(k)) <= 1000 for k in keys)  # type: ignore[arg-type]
    assert 900 < int(client.ttl(layout.key("NO_TTL"))) <= 1000  # type: ignore[arg-type]
    assert all(int(client.ttl(k)) == -1 for k in foreign)  # type: ignore[arg-type]
    assert sweep == ExpirySweep(
        nodes=1, covered_since=NOW + timedelta(minutes=1), swept_at=NOW + timedelta(minutes=runs)
    )
    assert sweep.fresh  # the next run begins a new cycle...
    nxt = sweep_online_expiry(client, layout, 1000, sweep, now=NOW + timedelta(hours=1), limit=10)
    assert not nxt.completed and nxt.sweep.cycle_began == NOW + timedelta(hours=1)
    assert nxt.sweep.covered_since == NOW + timedelta(minutes=1)  # ...keeping the last cover
    client.delete(*keys, *foreign, layout.key("NO_TTL"))


def test_the_slice_grows_with_the_interval_since_the_last_sweep(
    client: redis.Redis, redis_ns: str
) -> None:
    layout = RedisLayout(f"p_{redis_ns.replace('-', '_')}", ("customer_id",))
    keys = _keys(client, layout, 20, ttl=5)
    long_ago = ExpirySweep(swept_at=NOW - timedelta(days=2))  # longer than a cycle: all of it
    result = sweep_online_expiry(client, layout, 1000, long_ago, now=NOW)
    assert result.completed and result.extended == 20
    assert result.limit >= int(client.dbsize())  # type: ignore[arg-type]
    assert result.sweep.covered_since == NOW
    client.delete(*keys)


def test_a_corrupted_sweep_record_starts_a_new_cycle(client: redis.Redis, redis_ns: str) -> None:
    state = RedisRunState(client, redis_ns)
    state._write({"sweep:customer_id": "garbage"})
    snapshot = state.load()
    assert snapshot.sweep(["customer_id"]) is None
    assert any("expiry sweep record" in e.problem for e in snapshot.corruptions())


def test_keys_not_written_since_the_last_full_reads_are_left_to_expire(
    client: redis.Redis, redis_ns: str
) -> None:
    layout = RedisLayout(f"p_{redis_ns.replace('-', '_')}", ("customer_id",))
    ttl = 1000
    now = datetime.now(UTC)  # PTTL counts on Redis's clock: the sweep's clock must be the real one
    full = now - timedelta(seconds=100)  # the last full reads began 100 s ago
    written = _keys(client, layout, 5, ttl=ttl - 50)  # written by them: expire after full + ttl
    for key in written[:2]:
        client.expire(key, ttl - 100)  # exactly full + ttl: within the slack, still written
    departed = layout.key("GONE")  # last written before them: expires before full + ttl
    client.hset(departed, "f", "1")  # type: ignore[arg-type]
    client.pexpire(departed, 1500)
    unbounded = layout.key("NO_TTL")  # a writer without an expiry: given one, as before
    client.hset(unbounded, "f", "1")  # type: ignore[arg-type]

    result = sweep_online_expiry(client, layout, ttl, None, now=now, full_since=full)

    assert result.completed and result.extended == 6
    assert all(990 < int(client.ttl(k)) <= ttl for k in [*written, unbounded])  # type: ignore[arg-type]
    assert 0 < int(client.pttl(departed)) <= 1500  # type: ignore[arg-type]  # left alone...
    again = sweep_online_expiry(
        client, layout, ttl, result.sweep, now=datetime.now(UTC), full_since=full
    )
    assert again.extended == 6 and int(client.pttl(departed)) <= 1500  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while client.exists(departed) and time.monotonic() < deadline:  # ...until it expires
        time.sleep(0.1)
    assert not client.exists(departed)
    assert all(client.exists(k) for k in written)
    client.delete(*written, unbounded)


def test_without_a_full_read_recorded_every_key_is_extended(
    client: redis.Redis, redis_ns: str
) -> None:
    layout = RedisLayout(f"p_{redis_ns.replace('-', '_')}", ("customer_id",))
    keys = _keys(client, layout, 3, ttl=2)
    result = sweep_online_expiry(client, layout, 1000, None, now=datetime.now(UTC))
    assert result.extended == 3
    assert all(990 < int(client.ttl(k)) <= 1000 for k in keys)  # type: ignore[arg-type]
    client.delete(*keys)


def test_full_reads_are_recorded_per_view(client: redis.Redis, redis_ns: str) -> None:
    state = RedisRunState(client, redis_ns)
    assert state.load().full_read("a") is None
    state.save_full_reads(["a", "b"], NOW)
    snapshot = state.load()
    assert snapshot.full_read("a") == NOW and snapshot.full_read("b") == NOW
    assert snapshot.full_read("c") is None


def test_a_customer_deleted_at_the_source_expires_after_a_full_run_the_others_stay(
    feast_repo: Path, feast_env: FeastEnv, pg_url: str
) -> None:
    import sqlalchemy as sa

    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.dwh import get_engine
    from xiva_source.dwh.schema import CONTRACT_TABLES

    dwh = create_demo_dwh(pg_url, feast_env.sim, seed=11)  # the test's own DWH: rows are deleted
    feast_env.monkeypatch.setenv("DWH_URL", pg_url)
    feast_env.monkeypatch.setenv("ONLINE_TTL_SECONDS", "8")
    feast_env.set_mode("dwh")
    client = redis.Redis.from_url(feast_env.redis_url)
    layout = RedisLayout.of(store_of(feast_repo).config, ["customer_id"])
    departed, present = dwh.customer_ids[0], dwh.customer_ids[1]

    assert run_materialization(feast_repo, progress=False).status == "ok"  # the first load
    assert client.exists(layout.key(departed)) and client.exists(layout.key(present))
    client.expire(layout.key(departed), 6)  # as if written 2 s before the full run (< ttl - slack)
    with get_engine(pg_url).begin() as conn:  # the customer leaves the DWH
        for table in CONTRACT_TABLES:
            conn.execute(sa.text(f"DELETE FROM {table} WHERE customer_id = :c"), {"c": departed})
    full = run_materialization(feast_repo, progress=False, full=True)  # does not write it
    assert full.status == "ok" and client.exists(layout.key(departed))

    deadline = time.monotonic() + 120  # incremental runs until it expires (6 s after the load)
    runs = 0
    while client.exists(layout.key(departed)) and time.monotonic() < deadline:
        run = run_materialization(feast_repo, progress=False)
        runs += 1
        assert run.status == "ok" and run.rows == 0
        assert client.exists(layout.key(present))  # a customer the full run wrote: extended
    assert not client.exists(layout.key(departed))
    assert runs >= 1
    run = run_materialization(feast_repo, progress=False)  # and it stays gone
    assert run.rows == 0 and not client.exists(layout.key(departed))
    assert client.exists(layout.key(present))
    client.close()
