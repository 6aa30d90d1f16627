"""Helpers of the real-time membership and event tests: a small repository of their own.

Each test gets its own membership namespace (a ``MembershipStore`` under a unique project name
on the same Redis), so events of other tests never mix with its own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from segmentation import MembershipStore, Segment, SegmentEngine
from tests.support.segmentation.repo import (
    FeastRepo,
    build_repo,
    delete_project_keys,
    stored_rows,
    write_online,
)


def engine_for(repo: FeastRepo, segments: list[Segment], namespace: str) -> SegmentEngine:
    """An engine over ``repo`` whose memberships (and events) live under ``namespace``."""
    engine = SegmentEngine(repo.store, segments)
    engine.memberships = MembershipStore(engine.reader.client, namespace)
    return engine


def own_repo(
    tmp_path_factory: pytest.TempPathFactory, name: str, redis_url: str
) -> Iterator[FeastRepo]:
    """The body of a test module's repository fixture (``yield from``): 80 customers applied
    under a project of the module's own (``seg<name>_...``), its Redis keys deleted afterwards.

    Args:
        tmp_path_factory: pytest's, for the repository's directory (``<name>_repo``).
        name: A short name of the test module (``ev``, ``rt``).
        redis_url: The Redis (the ``redis_url`` fixture).
    """
    project = f"seg{name}_{uuid.uuid4().hex[:10]}"
    repo = build_repo(tmp_path_factory.mktemp(f"{name}_repo"), project, 80, redis_url)
    yield repo
    delete_project_keys(project, redis_url)


def new_namespace() -> str:
    """A membership namespace of one test's own."""
    return f"rt_{uuid.uuid4().hex[:10]}"


def own_namespace(redis_url: str) -> Iterator[str]:
    """The body of a test's ``namespace`` fixture (``yield from``): a membership namespace of its
    own (:func:`new_namespace`), every key of it deleted afterwards (``redis_url``: the fixture)."""
    ns = new_namespace()
    yield ns
    drop_namespace(MembershipStore(redis.Redis.from_url(redis_url), ns), redis_url)


def drop_namespace(store: MembershipStore, redis_url: str) -> None:
    """Delete every key of ``store``'s namespace."""
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"{store.prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def set_revenue(repo: FeastRepo, customer_id: str, revenue: float | None, at: dt.datetime) -> None:
    """Write one customer's ``customer_features`` row again with a new ``total_revenue``."""
    row = stored_rows(repo.frame.loc[[customer_id]])
    row["total_revenue"] = [revenue]
    row["event_timestamp"] = [at]
    write_online(repo.store, "customer_features", row)


def restore(repo: FeastRepo, customer_id: str) -> None:
    """Write the customer's original row back (newer timestamp, original values)."""
    row = stored_rows(repo.frame.loc[[customer_id]])
    row["event_timestamp"] = [dt.datetime.now(dt.UTC)]
    write_online(repo.store, "customer_features", row)


def ids_of(events: list[Any], event: str | None = None) -> list[str]:
    """The customer ids of ``events`` (of one kind), in order."""
    return [e.customer_id for e in events if event is None or e.event == event]
