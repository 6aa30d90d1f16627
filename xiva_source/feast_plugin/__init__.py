"""The Feast plugin: the project's data sources, offline store and online store, for Feast.

Modules, one concern each:

- :mod:`~xiva_source.feast_plugin.sources`: ``XivaSource``, ``DwhSource``, ``CustomerSource``
- :mod:`~xiva_source.feast_plugin.column_types`: source column types -> Feast value types
- :mod:`~xiva_source.feast_plugin.offline_store`: ``LoyaltyOfflineStore`` (config, store, job)
- :mod:`~xiva_source.feast_plugin.point_in_time`: the point-in-time engine of historical retrieval
- :mod:`~xiva_source.feast_plugin.online_store`: ``LoyaltyRedisOnlineStore`` bound to the
  repository's settings, and the online store's Redis client (:func:`online_redis_client`)
- :mod:`~xiva_source.feast_plugin.on_demand`: python-mode on-demand views without Feast's
  generic overhead, online (the store's read) and in training sets (the retrieval job)
- :mod:`~xiva_source.feast_plugin.redis_format`: Feast's Redis storage format (keys, fields,
  value codec, the newer-wins write script), the ONLY package that knows it or touches Feast's
  private helpers for it; :mod:`~xiva_source.feast_plugin.redis_scan`: the one ``SCAN`` of its keys
- :mod:`~xiva_source.feast_plugin.online_rows`: Arrow chunks -> Feast's online rows, column-wise
- :mod:`~xiva_source.feast_plugin.bulk_writer`: ``BulkWriter``, Arrow tables straight into
  Feast's Redis layout (newer-write-wins in one Lua script), sent by
  :mod:`~xiva_source.feast_plugin.bulk_send` (single Redis or cluster)
- :mod:`~xiva_source.feast_plugin.registry_reader`: ``feature_store.yaml`` and the file registry
  read without Feast's SDK (``read_repository``), for the commands that only read the registry
- :mod:`~xiva_source.feast_plugin.repo_settings`: where the entry points Feast calls load the
  settings of the repository (the only ``load_settings`` of the plugin)
- :mod:`~xiva_source.feast_plugin.run_state`: the shared run state (watermarks per source, modes,
  the marker, Feast's pull records), below the job and the plugin, which both write it
- :mod:`~xiva_source.feast_plugin.feast_runs`: what Feast's own materialization records in it,
  and how the job carries on from it (``carry_on``)
- :mod:`~xiva_source.feast_plugin.errors`: ``OnlineStoreError``, ``RepositoryError``,
  ``CorruptedStateError``, ``FeatureNameCollisionError``

Every name loads on first use (:mod:`xiva_source.lazy`), so
``import xiva_source.feast_plugin.errors`` does not import Feast. Registries and
``feature_store.yaml`` files written before the re-layout name ``xiva_source.sources``,
``xiva_source.offline_store`` and ``xiva_source.online_store``: shims keep those paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.feast_plugin.bulk_writer import BulkWriter
    from xiva_source.feast_plugin.errors import (
        CorruptedStateError,
        FeatureNameCollisionError,
        OnlineStoreError,
        RepositoryError,
    )
    from xiva_source.feast_plugin.feast_runs import carry_on
    from xiva_source.feast_plugin.offline_store import (
        LoyaltyOfflineStore,
        LoyaltyOfflineStoreConfig,
        LoyaltyRetrievalJob,
    )
    from xiva_source.feast_plugin.online_rows import to_online_rows
    from xiva_source.feast_plugin.online_store import (
        LoyaltyRedisOnlineStore,
        LoyaltyRedisOnlineStoreConfig,
        bind_online_config,
        online_redis_client,
        redis_url_to_feast,
    )
    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.feast_plugin.redis_scan import scan_entity_keys
    from xiva_source.feast_plugin.registry_reader import LightRepository, read_repository
    from xiva_source.feast_plugin.repo_settings import repo_settings
    from xiva_source.feast_plugin.run_state import (
        FileRunState,
        RedisRunState,
        RunState,
        StateSnapshot,
        state_for_config,
    )
    from xiva_source.feast_plugin.sources import (
        CustomerSource,
        DwhSource,
        XivaSource,
        xiva_feature_fields,
    )

__all__ = lazy.attach(__name__, __file__)
