"""Online expiry measured from the last successful run, not from a customer's last change.

Feast's Redis store expires a whole entity hash ``key_ttl_seconds`` after its last write. An
incremental run rewrites only the customers that changed, so without this step an unchanged customer
would vanish ``ttl`` after it last *changed*, although every run since confirmed its values. After a
successful incremental run the job resets the expiry of every entity key of the project
(:func:`extend_online_expiry`): values disappear only when the job has been failing (or not running)
for ``ttl``.

Which keys belong to the project is Feast's layout (:mod:`xiva_source.feast_plugin.redis_format`),
found by the house's one ``SCAN`` (:mod:`xiva_source.feast_plugin.redis_scan`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from xiva_source.feast_plugin.errors import OnlineStoreError

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.redis_client import RedisClient

__all__ = ["EXPIRY_PIPELINE_SIZE", "extend_online_expiry", "extend_store_expiry"]

logger = logging.getLogger(__name__)

EXPIRY_PIPELINE_SIZE = 5_000
"""EXPIRE commands sent to Redis per round trip (and keys asked of each SCAN step)."""

_EXPIRE_ALL = (
    "local n = 0 for i = 1, #KEYS do n = n + redis.call('EXPIRE', KEYS[i], ARGV[1]) end return n"
)


def extend_online_expiry(client: RedisClient, layout: RedisLayout, ttl_seconds: int) -> int:
    """Reset the expiry of every entity key of ``layout`` (one project, one entity) to the ttl.

    Keys are found with ``SCAN`` and checked against the exact layout, so a project whose name
    ends with this one's is not touched.

    Args:
        client: The online store's Redis.
        layout: The project's key layout for one set of join keys
            (``RedisLayout.of(store.config, ["customer_id"])``).
        ttl_seconds: The new expiry; ``0`` or less does nothing.

    Returns:
        How many keys got the new expiry.

    Raises:
        OnlineStoreError: Redis could not be reached or refused a command.
    """
    from redis.exceptions import RedisError

    from xiva_source.feast_plugin.redis_scan import scan_entity_keys

    if ttl_seconds <= 0:
        return 0
    try:
        expire = _batch_expirer(client, ttl_seconds)
        extended = 0
        batch: list[bytes] = []
        # No de-duplication: a key SCAN returns twice just gets the same EXPIRE twice, and the set
        # of seen keys would grow with the population.
        for key in scan_entity_keys(client, layout, count=EXPIRY_PIPELINE_SIZE, unique=False):
            batch.append(key)
            if len(batch) >= EXPIRY_PIPELINE_SIZE:
                extended += expire(batch)
                batch = []
        if batch:
            extended += expire(batch)
    except RedisError as e:
        raise OnlineStoreError.failed(e, step="extending the online expiry") from e
    return extended


def extend_store_expiry(
    store: FeatureStore,
    client: RedisClient | None,
    ttl_seconds: int | None,
    views: Sequence[FeatureView],
) -> int:
    """Extend the expiry of every entity key of ``store``'s project for the entities of ``views``.

    Args:
        store: The feature store.
        client: The online store's Redis; ``None`` (not a Redis store) does nothing.
        ttl_seconds: The online store's ``key_ttl_seconds``; ``None`` or 0 (no expiry) does
            nothing.
        views: The views the run materialized (their join keys name the entities).

    Returns:
        How many keys got the new expiry.

    Raises:
        OnlineStoreError: Redis could not be reached or refused a command.
    """
    from xiva_source.feast_plugin.redis_format import RedisLayout

    if client is None or not ttl_seconds:
        return 0
    extended = 0
    for join_keys in {tuple(sorted(fv.join_keys)) for fv in views}:
        layout = RedisLayout.of(store.config, join_keys)
        extended += extend_online_expiry(client, layout, int(ttl_seconds))
    logger.info("extended the online expiry of %d entity keys to %ss", extended, ttl_seconds)
    return extended


def _batch_expirer(client: RedisClient, ttl_seconds: int) -> Callable[[list[bytes]], int]:
    """``EXPIRE`` a batch of keys: one Lua call (3x a pipeline), or a pipeline on a cluster."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):  # a script's keys must share a slot there

        def pipelined(keys: list[bytes]) -> int:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.expire(key, ttl_seconds)
            return sum(bool(r) for r in pipe.execute())

        return pipelined
    script = client.register_script(_EXPIRE_ALL)
    return lambda keys: int(script(keys=keys, args=[ttl_seconds]))
