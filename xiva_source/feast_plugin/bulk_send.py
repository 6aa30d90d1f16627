"""Sending a bulk write to Redis: the write script's calls, pipelined, on one server or a cluster.

On a single Redis (or a sentinel's primary) the calls of a table go in one pipeline: one round
trip. On a Redis Cluster a script may only touch keys of one hash slot, so rows are grouped by
slot (``redis.crc.key_slot``), one ``EVALSHA`` per slot group (:func:`.redis_format.script_calls`),
the calls pipelined per primary; a ``MOVED`` / ``ASK`` (a resharding) refreshes the slot map and
the table is sent again: every write is idempotent. ``EVALSHA`` answered ``NOSCRIPT`` (Redis
restarted, its script cache flushed) loads the script on that server and sends again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.feast_plugin.redis_format import WRITE_SCRIPT, script_calls

if TYPE_CHECKING:
    from xiva_source.feast_plugin.redis_format import ScriptRows
    from xiva_source.feast_plugin.redis_format.script import Header

__all__ = ["send_script_rows"]


def send_script_rows(client: Any, header: Header, rows: ScriptRows, *, rows_per_call: int) -> int:
    """Write ``rows`` with the write script; returns the rows it wrote.

    Args:
        client: The online store's Redis (``redis.Redis``, or ``redis.cluster.RedisCluster``).
        header: The calls' ``ARGV`` head (:func:`.redis_format.script_header`).
        rows: The rows (:func:`.redis_format.script_rows`).
        rows_per_call: Rows per ``EVALSHA`` (at most; fewer per slot group on a cluster).

    Raises:
        OnlineStoreError: Redis failed or refused the script.
    """
    from redis.cluster import RedisCluster
    from redis.exceptions import RedisError

    try:
        if isinstance(client, RedisCluster):
            return _send_cluster(client, header, rows, rows_per_call)
        return _run_pipeline(client, list(script_calls(header, rows, rows_per_call)))
    except RedisError as e:
        raise OnlineStoreError.failed(e) from e


def _send_cluster(client: Any, header: Header, rows: ScriptRows, rows_per_call: int) -> int:
    from redis.crc import key_slot
    from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

    by_slot: dict[int, list[int]] = {}
    for i, key in enumerate(rows.keys):
        by_slot.setdefault(key_slot(key), []).append(i)
    for attempt in (1, 2):
        manager = client.nodes_manager
        by_node: dict[str, tuple[Any, list[list[Any]]]] = {}
        for slot, indexes in by_slot.items():
            node = manager.get_node_from_slot(slot)
            entry = by_node.setdefault(node.name, (node, []))
            entry[1].extend(script_calls(header, rows.take(indexes), rows_per_call))
        try:
            written = 0
            for node, calls in by_node.values():
                written += _run_pipeline(client.get_redis_connection(node), calls)
            return written
        except (MovedError, AskError, TryAgainError, ClusterDownError):
            if attempt == 2:
                raise
            manager.initialize()  # slots moved: learn the new map, write again (idempotent)
    raise AssertionError("unreachable")


def _run_pipeline(client: Any, calls: list[list[Any]]) -> int:
    """Send ``calls`` in one pipeline; load the script once on ``NOSCRIPT`` and send again."""
    from redis.exceptions import NoScriptError

    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        try:
            return sum(int(n) for n in pipe.execute())
        except NoScriptError:
            if attempt == 2:
                raise
            # Redis restarted or its script cache was flushed; rows already written are
            # written again with the same values and timestamps (equal wins).
            client.script_load(WRITE_SCRIPT)
        finally:
            pipe.reset()
    raise AssertionError("unreachable")
