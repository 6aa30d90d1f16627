"""Compatibility: ``feature_store.yaml`` files written before the re-layout name this path.

New repositories use ``xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore``.
"""

from xiva_source.feast_plugin.online_store import (
    LoyaltyRedisOnlineStore,
    LoyaltyRedisOnlineStoreConfig,
)

__all__ = ["LoyaltyRedisOnlineStore", "LoyaltyRedisOnlineStoreConfig"]
