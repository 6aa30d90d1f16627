"""The job's use of the shared run state (:mod:`xiva_source.feast_plugin.run_state`).

The state's schema, its stores and its parsing live in the plugin, below the job, because Feast's
own materialization (the offline store, the online store) writes it too
(:mod:`xiva_source.feast_plugin.feast_runs`). Here: which state a run of a store uses, and which
fields a run cannot do without. A run needs, for each view it reads incrementally, the watermarks
of the view's sources and the view's mode; one of them corrupted stops the run before it reads or
writes anything (:class:`~xiva_source.feast_plugin.errors.CorruptedStateError`, exit 4, its fix
the exact repair). A corrupted field the run rewrites anyway (``--full``, a wiped store, the run
records) or does not use is a warning, never a guess: see docs/operations.md, "The shared state".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from xiva_source.feast_plugin.feast_runs import view_mode
from xiva_source.feast_plugin.run_state import (
    MODE_SOURCES,
    RunState,
    mode_field,
    state_for_config,
    watermark_field,
)

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from xiva_source.feast_plugin.registry_reader import LightRepository
    from xiva_source.redis_client import RedisClient

__all__ = ["needed_fields", "state_for_store"]


def state_for_store(store: FeatureStore | LightRepository, client: RedisClient | None) -> RunState:
    """The shared state of ``store``'s project: Redis when the online store is Redis, else a file.

    Args:
        store: The feature store.
        client: The online store's Redis client, ``None`` when it is not Redis.
    """
    return state_for_config(store.config, client)


def needed_fields(feature_views: Iterable[FeatureView], mode: str) -> list[str]:
    """The fields an incremental run of ``feature_views`` in ``mode`` reads (watermarks, modes).

    Args:
        feature_views: The views the run materializes.
        mode: ``FEATURE_STORE_DATA_SOURCE`` of the run.
    """
    fields: list[str] = []
    for fv in feature_views:
        sources = MODE_SOURCES.get(view_mode(fv.batch_source, mode), ())
        fields += [watermark_field(fv.name, source) for source in sources]
        fields.append(mode_field(fv.name))
    return fields
