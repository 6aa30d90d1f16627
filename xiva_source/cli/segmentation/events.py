"""``events``: read the membership event stream (joined / left) of the project's Redis Stream."""

from __future__ import annotations

import argparse
import json

from xiva_source.cli.app import CommandContext
from xiva_source.cli.boundary import EXIT_OK
from xiva_source.cli.segmentation.common import _applied_store, _non_negative


def _events_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count",
        type=_non_negative,
        default=100,
        metavar="N",
        help="at most N events, 0 for all (default: 100)",
    )
    parser.add_argument(
        "--since",
        default=None,
        metavar="ID|TIME",
        help="events after this entry id (exclusive) or from this ISO 8601 time (default: the "
        "newest --count)",
    )
    parser.add_argument("--segment", default=None, help="only this segment's events")
    parser.add_argument("--customer", default=None, help="only this customer's events")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of text"
    )


def _events(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.errors import OnlineStoreError
    from segmentation.events import read_events
    from segmentation.memberships import MembershipStore
    from xiva_source.feast_plugin.online_store import online_redis_client

    store = _applied_store(args.repo)
    client = online_redis_client(store.config, context.require_settings())
    if client is None:
        raise OnlineStoreError(
            "the online store is not Redis: there is no membership event stream",
            "configure the Redis online store (feature_store.yaml)",
        )
    memberships = MembershipStore(client, store.project)
    memberships.finish_publication()  # events a killed refresh left pending, in order
    key = memberships.events_key()
    events = read_events(
        client,
        key,
        since=args.since,
        count=args.count or None,
        segment=args.segment,
        customer_id=args.customer,
    )
    for e in events:
        if args.json:
            print(json.dumps(e.as_dict(), separators=(",", ":")))
        else:
            print(f"{e.id}\t{e.time}\t{e.event}\t{e.segment}\t{e.customer_id}\t{e.group}")
    return EXIT_OK
