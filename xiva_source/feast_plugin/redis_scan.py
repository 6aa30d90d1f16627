"""Finding the entity keys of a Feast project in Redis: the one ``SCAN`` of the house.

``SCAN MATCH <prefix>*<project>`` (the layout's :meth:`~.redis_format.RedisLayout.scan_pattern`),
then the exact check of each key (:meth:`~.redis_format.RedisLayout.is_key`), so a project whose
name ends with this one's is not touched. On a Redis Cluster every primary is scanned (each holds
its slots' keys; a replica's keys are its primary's), so no key is missed whichever node holds it.

``SCAN`` may return a key twice (while the keyspace is rehashed): :class:`SeenKeys` drops the
repeats in 8 bytes per key. The job's expiry and status, segmentation's reader (one thread per
primary over :func:`scan_key_chunks`) and the tests all scan through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import threading

    import redis

    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.redis_client import RedisClient

__all__ = [
    "SeenKeys",
    "primary_clients",
    "scan_entity_keys",
    "scan_key_chunks",
    "scan_slice",
]


class SeenKeys:
    """The keys a ``SCAN`` already returned, in 8 bytes per key (a sorted array of hashes).

    A set of the keys themselves would cost about 100 bytes per customer. Two different keys with
    the same 64-bit hash (about one chance in 10^7 at 1,000,000 keys) would drop the second one.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._sorted.size)

    def fresh(self, keys: list[bytes]) -> list[bytes]:
        """The keys of ``keys`` not seen before (first occurrence kept, order kept)."""
        if not keys:
            return keys
        hashes = np.fromiter((hash(k) for k in keys), dtype=np.int64, count=len(keys))
        unique, first = np.unique(hashes, return_index=True)
        pos = np.searchsorted(self._sorted, unique)
        known = np.zeros(unique.size, dtype=bool)
        inside = pos < self._sorted.size
        known[inside] = self._sorted[pos[inside]] == unique[inside]
        new = ~known
        self._sorted = np.insert(self._sorted, pos[new], unique[new])
        if new.all() and unique.size == len(keys):
            return keys
        return [keys[i] for i in np.sort(first[new])]


def primary_clients(client: RedisClient) -> list[redis.Redis]:
    """The Redis to scan: every primary's own client on a cluster, else ``client`` itself."""
    from redis.cluster import RedisCluster

    if not isinstance(client, RedisCluster):
        return [client]
    return [client.get_redis_connection(node) for node in client.get_primaries()]


def scan_key_chunks(
    node: redis.Redis,
    layout: RedisLayout,
    *,
    chunk: int,
    count: int = 10_000,
    seen: SeenKeys | None = None,
    stop: threading.Event | None = None,
) -> Iterator[list[bytes]]:
    """``layout``'s keys on one Redis node, in lists of up to ``chunk``, as the cursor walks.

    Args:
        node: One server (a cluster's primary: :func:`primary_clients`).
        layout: Whose keys.
        chunk: Keys per list (at least 1).
        count: ``SCAN COUNT`` hint.
        seen: Drop the keys it has seen (and remember the others); ``None``: keep repeats.
        stop: Stop between ``SCAN`` steps once set (nothing more is yielded).

    Yields:
        Lists of Redis keys (bytes), exactly of ``layout``.

    Raises:
        ValueError: ``chunk`` is below 1.
    """
    if chunk < 1:
        raise ValueError(f"chunk {chunk} must be at least 1")
    pattern = layout.scan_pattern()
    batch: list[bytes] = []
    cursor: int = 0
    while True:
        reply: Any = node.scan(cursor=cursor, match=pattern, count=count)
        cursor, found = reply
        keys = [k for k in found if layout.is_key(k)]
        batch.extend(seen.fresh(keys) if seen is not None else keys)
        while len(batch) >= chunk:
            yield batch[:chunk]
            del batch[:chunk]
        if int(cursor) == 0 or (stop is not None and stop.is_set()):
            break
    if batch and (stop is None or not stop.is_set()):
        yield batch


def scan_slice(
    node: redis.Redis, layout: RedisLayout, cursor: int, *, limit: int, count: int = 10_000
) -> tuple[int, list[bytes]]:
    """One slice of a ``SCAN`` resumed at ``cursor``: at least ``limit`` keys, or the rest.

    A walk spread over calls (the job's expiry sweep keeps the cursor between runs): every key
    present from the walk's start to its end is returned by one of the calls (``SCAN``'s
    guarantee); a key may come twice.

    Args:
        node: One server (a cluster's primary: :func:`primary_clients`).
        layout: Whose keys.
        cursor: Where to resume (``0``: the beginning).
        limit: Stop once this many keys of ``layout`` were found (at least 1).
        count: ``SCAN COUNT`` hint.

    Returns:
        The cursor to resume from (``0``: the walk is complete) and the keys found.
    """
    pattern = layout.scan_pattern()
    keys: list[bytes] = []
    while True:
        reply: Any = node.scan(cursor=cursor, match=pattern, count=count)
        cursor = int(reply[0])
        keys.extend(k for k in reply[1] if layout.is_key(k))
        if cursor == 0 or len(keys) >= max(1, limit):
            return cursor, keys


def scan_entity_keys(
    client: RedisClient, layout: RedisLayout, *, count: int = 10_000, unique: bool = True
) -> Iterator[bytes]:
    """Every Redis key of ``layout`` (its project and entity), checked exactly.

    Args:
        client: The online store's Redis (single server, sentinel primary or cluster: every
            primary in turn).
        layout: Whose keys.
        count: ``SCAN COUNT`` hint.
        unique: Drop keys ``SCAN`` returns twice (:class:`SeenKeys`: 8 bytes per key seen).

    Yields:
        Redis keys (bytes).
    """
    seen = SeenKeys() if unique else None
    for node in primary_clients(client):
        for keys in scan_key_chunks(node, layout, chunk=count, count=count, seen=seen):
            yield from keys
