"""The changed-customers journal, writers' side: who was written since the segments' refreshes.

Every writer of online features marks the customers it is about to write **before** writing them
(a crash after the write still leaves the mark) and **again once the write is in Redis** (a refresh
that read them between the first mark and the write, so saw the old values, passed the first mark;
it finds the second): the job's writes
(:class:`xiva_source.jobs.writes.OnlineWriter`), the live refresh
(:func:`xiva_source.jobs.refresh.refresh_customer`), Feast's own writes through
:class:`~xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore` (materialize, push), and the
real-time worker (:func:`segmentation.journal.mark_changed`, the same function). An incremental
segment refresh re-evaluates those customers only (:mod:`segmentation.journal`, the reading side).

Layout (``<p>`` = the project's membership prefix, :func:`membership_prefix`: the same hash tag
as the memberships on a Redis Cluster, so one script or ``MULTI`` may touch them all):

* ``<p>:changed``: a sorted set ``customer -> sequence number of its latest mark``;
* ``<p>:changed:seq``: the sequence, one ``INCR`` per mark call;
* ``<p>:changed:overflow``: the number of the latest mark dropped because the journal held
  :data:`JOURNAL_LIMIT` customers (its memory is bounded whatever the writers write).

A mark is one script (``INCR`` then ``ZADD`` of every id with the new number): a customer marked
twice keeps one entry (its latest number), so the journal's size is the number of distinct
customers changed, and a refresh reads the marks after the number it last passed (O(changes)).
This module is below the job and the segmentation packages, which both use it; it imports Redis
only when a mark is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xiva_source.redis_client import is_cluster

__all__ = ["JOURNAL_LIMIT", "MARK_CHUNK", "journal_keys", "mark_changed", "membership_prefix"]

MARK_CHUNK = 5000
"""Customers per mark script call (bounds the script's argument list)."""
JOURNAL_LIMIT = 200_000
"""Customers the journal holds at most (about 100 bytes each in Redis). A mark that finds it full
records its number as the *overflow* instead: the segments whose cursor is before it are refreshed
in full (a reload of the whole population is cheaper read by ``SCAN`` anyway), which empties it."""

# One sequence number per call; every id ZADDed with it (GT is not needed: numbers only grow).
# A journal at its limit records the number instead (KEYS[3]): refreshes after it are full.
# ZADD goes in slices of 1,000 members: Lua's unpack() fails past ~8,000 values ("too many
# results to unpack"), which a whole MARK_CHUNK (two values per member) would exceed.
_MARK = """
local seq = redis.call('INCR', KEYS[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[3], seq)
  return seq
end
local args = {}
for i = 2, #ARGV do
  args[#args + 1] = seq
  args[#args + 1] = ARGV[i]
  if #args >= 2000 then
    redis.call('ZADD', KEYS[1], unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
return seq
"""


def membership_prefix(project: str, *, cluster: bool = False) -> str:
    """The key prefix of ``project``'s memberships (and of its journal).

    On a Redis Cluster the project is a hash tag (``segmentation:{<project>}``): every key of the
    project lives in one slot, so one ``MULTI``/``EXEC`` (or script) may touch any of them. A
    single Redis keeps the names it always had (``segmentation:<project>``): nothing to migrate.
    """
    return f"segmentation:{{{project}}}" if cluster else f"segmentation:{project}"


def journal_keys(project: str, *, cluster: bool = False) -> tuple[str, str, str]:
    """``(journal, sequence, overflow)``: the keys of ``project``'s changed-customers journal."""
    journal = f"{membership_prefix(project, cluster=cluster)}:changed"
    return journal, f"{journal}:seq", f"{journal}:overflow"


def mark_changed(
    client: Any, project: str, customer_ids: Iterable[Any], *, limit: int = JOURNAL_LIMIT
) -> int:
    """Mark customers as changed, before their features are written.

    Args:
        client: The online store's Redis client (``redis.Redis`` or ``RedisCluster``).
        project: The Feast project.
        customer_ids: The customers about to be written (``str()`` of each is the id).
        limit: The journal's capacity (:data:`JOURNAL_LIMIT`).

    Returns:
        The number of distinct customers marked.

    Raises:
        redis.RedisError: Redis failed (the caller must not write: its write would go unseen).
    """
    ids = list(dict.fromkeys(str(c) for c in customer_ids))
    if not ids:
        return 0
    keys = journal_keys(project, cluster=is_cluster(client))
    for start in range(0, len(ids), MARK_CHUNK):
        # EVAL with the source: on a cluster both keys share the project's slot.
        client.eval(_MARK, 3, *keys, limit, *ids[start : start + MARK_CHUNK])
    return len(ids)
