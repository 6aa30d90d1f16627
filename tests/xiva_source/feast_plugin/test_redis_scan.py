"""The one SCAN of the house: a project's keys, exactly, in chunks, repeats dropped (real Redis).

On the cluster: tests/xiva_source/jobs/test_cluster_redis.py, test_online_store_cluster.py and
tests/segmentation/test_reader_cluster.py scan every primary.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.redis_scan import (
    SeenKeys,
    primary_clients,
    scan_entity_keys,
    scan_key_chunks,
)


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
def layout(client: Any, redis_ns: str) -> RedisLayout:
    """A project of the test's own (named after ``redis_ns``: its keys go with it) with 250 keys,
    and keys a SCAN pattern matches that are not of it."""
    project = f"scan_{redis_ns}"
    layout = RedisLayout(project, ("customer_id",))
    neighbour = RedisLayout(f"my{project}", ("customer_id",))
    pipe = client.pipeline(transaction=False)
    for i in range(250):
        pipe.hset(layout.key(f"C{i:03d}"), "f", "v")
    pipe.hset(neighbour.key("C001"), "f", "v")  # a project whose name ends with this one's
    pipe.hset(layout.prefix + b"garbage" + project.encode(), "f", "v")  # matches, not a key
    pipe.execute()
    return layout


def _ids(layout: RedisLayout, keys: list[bytes]) -> list[str]:
    return sorted(layout.entity_id(k) or "" for k in keys)


def test_every_key_of_the_layout_and_no_other(client: Any, layout: RedisLayout) -> None:
    want = [f"C{i:03d}" for i in range(250)]
    assert _ids(layout, list(scan_entity_keys(client, layout, count=7))) == want
    assert _ids(layout, list(scan_entity_keys(client, layout, unique=False))) == want
    assert primary_clients(client) == [client]


def test_chunks_hold_at_most_chunk_keys_and_cover_every_key(
    client: Any, layout: RedisLayout
) -> None:
    chunks = list(scan_key_chunks(client, layout, chunk=40, count=30, seen=SeenKeys()))
    assert all(len(c) == 40 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 40
    assert _ids(layout, [k for c in chunks for k in c]) == [f"C{i:03d}" for i in range(250)]
    with pytest.raises(ValueError, match="chunk 0"):
        next(scan_key_chunks(client, layout, chunk=0))


def test_seen_keys_are_dropped_across_scans(client: Any, layout: RedisLayout) -> None:
    seen = SeenKeys()
    first = [k for c in scan_key_chunks(client, layout, chunk=100, seen=seen) for k in c]
    assert len(first) == len(seen) == 250
    assert list(scan_key_chunks(client, layout, chunk=100, seen=seen)) == []
    again = [k for c in scan_key_chunks(client, layout, chunk=100) for k in c]
    assert sorted(again) == sorted(first)  # without ``seen``, nothing is dropped


def test_a_set_stop_ends_the_scan_between_steps(client: Any, layout: RedisLayout) -> None:
    stop = threading.Event()
    chunks = scan_key_chunks(client, layout, chunk=10, count=20, stop=stop)
    assert len(next(chunks)) == 10
    stop.set()
    rest = [k for c in chunks for k in c]
    assert len(rest) < 240  # what the current SCAN step had found, nothing after


def test_seen_keys_drop_repeats_and_keep_order() -> None:
    seen = SeenKeys()
    assert seen.fresh([b"a", b"b", b"a", b"c"]) == [b"a", b"b", b"c"]
    assert seen.fresh([b"d", b"b", b"e", b"d"]) == [b"d", b"e"]
    assert seen.fresh([]) == [] and len(seen) == 5
    many = [f"k{i}".encode() for i in range(10_000)]
    assert seen.fresh(many) == many
    assert seen.fresh(many[::-1]) == [] and len(seen) == 10_005
