"""A consumer of the segment membership events (a Redis Streams consumer group).

Every ``joined`` / ``left`` of a segment is published once to the stream
``segmentation:<feast project>:events`` (docs/segmentation.md, "Real-time membership and
events"). A consumer group gives each event to one consumer of the group and remembers what was
acknowledged: a consumer that crashes gets its unacknowledged events again when it restarts, so
every event is handled at least once. Acknowledge after the side effect (send the offer, call the
campaign tool) and make the handler idempotent on the entry id (or on ``customer_id`` + ``time``).

Run it (one process per consumer name; several names share the work)::

    REDIS_URL=redis://localhost:6379/0 python docs/examples/membership_consumer.py \\
        --project loyalty --group campaigns --consumer worker-1

It only needs ``redis`` (redis-py). On a Redis Cluster build the client with
``redis.cluster.RedisCluster.from_url`` and pass ``--cluster``: there the project is a hash tag,
the key is ``segmentation:{<project>}:events`` (``segmentation events`` reads the same stream).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

import redis

Handler = Callable[[dict[str, str]], None]


def ensure_group(client: Any, key: str, group: str, *, start: str = "0") -> None:
    """Create the consumer group (and the stream) unless it exists.

    ``start="0"``: the group reads the stream from its oldest event; ``"$"``: only what comes next.
    """
    try:
        client.xgroup_create(key, group, id=start, mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):  # the group exists already: fine
            raise


def consume(
    client: Any,
    key: str,
    group: str,
    consumer: str,
    handle: Handler,
    *,
    count: int = 100,
    block_ms: int = 5000,
    batches: int | None = None,
) -> int:
    """Handle the group's events as ``consumer``, acknowledging each after ``handle`` returns.

    The consumer first reads its own pending events (id ``0``: delivered before but never
    acknowledged, e.g. before a crash), then new ones (id ``>``), blocking ``block_ms`` for them.

    Args:
        client: A redis-py client made with ``decode_responses=True``.
        key: The stream (``segmentation:<project>:events``).
        group: The consumer group.
        consumer: This consumer's name (stable across restarts).
        handle: Called with each event's fields (``event``, ``segment``, ``customer_id``,
            ``group``, ``time``) plus its entry ``id``; an exception stops the loop and leaves the
            event pending.
        count: Events per read.
        block_ms: How long a read waits for new events.
        batches: Stop after this many reads (``None``: run forever).

    Returns:
        The number of events handled.
    """
    handled = 0
    backlog = True  # our own pending events first
    reads = 0
    while batches is None or reads < batches:
        reads += 1
        position = "0" if backlog else ">"
        reply = client.xreadgroup(
            group, consumer, {key: position}, count=count, block=None if backlog else block_ms
        )
        entries = reply[0][1] if reply else []
        if backlog and not entries:
            backlog = False  # nothing pending any more: switch to new events
            reads -= 1  # switching is not a read of events
            continue
        for entry_id, fields in entries:
            handle({**fields, "id": entry_id})
            client.xack(key, group, entry_id)
            handled += 1
    return handled


def main() -> None:
    """Print each event as JSON (replace ``handle`` with the campaign's action)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="the Feast project")
    parser.add_argument("--group", default="campaigns", help="consumer group (default campaigns)")
    parser.add_argument("--consumer", default="worker-1", help="this consumer's name")
    parser.add_argument("--cluster", action="store_true", help="the key of a Redis Cluster")
    args = parser.parse_args()
    client = redis.Redis.from_url(
        os.environ.get("REDIS_URL", "redis://localhost:6379/0"), decode_responses=True
    )
    project = f"{{{args.project}}}" if args.cluster else args.project
    key = f"segmentation:{project}:events"
    ensure_group(client, key, args.group)

    def handle(event: dict[str, str]) -> None:
        print(json.dumps(event), flush=True)

    consume(client, key, args.group, args.consumer, handle)


if __name__ == "__main__":
    main()
