"""Compatibility: ``feature_store.yaml`` files written before the re-layout name this path.

New repositories use ``xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore``.
"""

from xiva_source.feast_plugin.offline_store import LoyaltyOfflineStore, LoyaltyOfflineStoreConfig

__all__ = ["LoyaltyOfflineStore", "LoyaltyOfflineStoreConfig"]
