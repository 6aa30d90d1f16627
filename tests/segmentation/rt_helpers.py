"""Helpers of the real-time membership and event tests: a small repository of their own.

Each test gets its own membership namespace (a ``MembershipStore`` under a unique project name
on the same Redis), so events of other tests never mix with its own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import redis

from segmentation import MembershipStore, Segment, SegmentEngine
from tests.conftest import REDIS_URL
from tests.segmentation.conftest import FeastRepo


def engine_for(repo: FeastRepo, segments: list[Segment], namespace: str) -> SegmentEngine:
    """An engine over ``repo`` whose memberships (and events) live under ``namespace``."""
    engine = SegmentEngine(repo.store, segments)
    engine.memberships = MembershipStore(engine.reader.client, namespace)
    return engine


def new_namespace() -> str:
    """A membership namespace of one test's own."""
    return f"rt_{uuid.uuid4().hex[:10]}"


def drop_namespace(store: MembershipStore) -> None:
    """Delete every key of ``store``'s namespace."""
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"{store.prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def set_revenue(repo: FeastRepo, customer_id: str, revenue: float | None, at: dt.datetime) -> None:
    """Write one customer's ``customer_features`` row again with a new ``total_revenue``."""
    row = repo.frame.loc[[customer_id]].reset_index()
    row["total_revenue"] = [revenue]
    row["event_timestamp"] = [at]
    repo.store.write_to_online_store("customer_features", row)


def restore(repo: FeastRepo, customer_id: str) -> None:
    """Write the customer's original row back (newer timestamp, original values)."""
    row = repo.frame.loc[[customer_id]].reset_index()
    row["event_timestamp"] = [dt.datetime.now(dt.UTC)]
    repo.store.write_to_online_store("customer_features", row)


def ids_of(events: list[Any], event: str | None = None) -> list[str]:
    """The customer ids of ``events`` (of one kind), in order."""
    return [e.customer_id for e in events if event is None or e.event == event]
