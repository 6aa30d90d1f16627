"""Xiva and DWH data sources for the loyalty feature store.

The client-side names (client, errors, settings, extractor) import eagerly and stay light; the Feast
plugin names (sources, stores, the materialization job) load on first use, so commands such as
``python -m xiva_source usage`` start without importing Feast.

Example:
    >>> from xiva_source import XivaClient, extract_customer_features
    >>> features = extract_customer_features("a0d35428-691f-4375-9118-d2bdf6811426")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.features.extractor import (
    custom_feature,
    extract_customer_features,
    feature_schema,
    features_from_360,
)
from xiva_source.jobs.errors import (
    LiveRefreshError,
    MaterializationConfigError,
    MaterializationError,
    MaterializationFailedError,
)
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.settings import DataSourceMode, MergeStrategy, Settings, load_settings
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import (
    XivaAuthenticationError,
    XivaBadResponseError,
    XivaConnectionError,
    XivaError,
    XivaNotConfiguredError,
    XivaNotFoundError,
    XivaRateLimitError,
    XivaRetryBudgetError,
    XivaServerError,
)
from xiva_source.xiva_api.usage import UsageReport

if TYPE_CHECKING:
    from xiva_source.feast_plugin.offline_store import (
        LoyaltyOfflineStore,
        LoyaltyOfflineStoreConfig,
    )
    from xiva_source.feast_plugin.online_store import (
        LoyaltyRedisOnlineStore,
        LoyaltyRedisOnlineStoreConfig,
    )
    from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource
    from xiva_source.jobs.materialize import RunSummary, run_materialization
    from xiva_source.jobs.refresh import refresh_customer
    from xiva_source.pipeline.pull import PullReport, pull_batches

_LAZY = {
    "CustomerSource": "xiva_source.feast_plugin.sources",
    "DwhSource": "xiva_source.feast_plugin.sources",
    "XivaSource": "xiva_source.feast_plugin.sources",
    "LoyaltyOfflineStore": "xiva_source.feast_plugin.offline_store",
    "LoyaltyOfflineStoreConfig": "xiva_source.feast_plugin.offline_store",
    "LoyaltyRedisOnlineStore": "xiva_source.feast_plugin.online_store",
    "LoyaltyRedisOnlineStoreConfig": "xiva_source.feast_plugin.online_store",
    "PullReport": "xiva_source.pipeline.pull",
    "pull_batches": "xiva_source.pipeline.pull",
    "RunSummary": "xiva_source.jobs.materialize",
    "run_materialization": "xiva_source.jobs.materialize",
    "refresh_customer": "xiva_source.jobs.refresh",
}

__all__ = [
    "AllSourcesFailedError",
    "CustomerSource",
    "DataSourceError",
    "DataSourceMode",
    "DwhError",
    "DwhSource",
    "LiveRefreshError",
    "LoyaltyOfflineStore",
    "LoyaltyOfflineStoreConfig",
    "LoyaltyRedisOnlineStore",
    "LoyaltyRedisOnlineStoreConfig",
    "MaterializationConfigError",
    "MaterializationError",
    "MaterializationFailedError",
    "MergeStrategy",
    "PullReport",
    "RunSummary",
    "Settings",
    "UsageReport",
    "XivaAuthenticationError",
    "XivaBadResponseError",
    "XivaClient",
    "XivaConnectionError",
    "XivaError",
    "XivaNotConfiguredError",
    "XivaNotFoundError",
    "XivaRateLimitError",
    "XivaRetryBudgetError",
    "XivaServerError",
    "XivaSource",
    "custom_feature",
    "extract_customer_features",
    "feature_schema",
    "features_from_360",
    "load_settings",
    "pull_batches",
    "refresh_customer",
    "run_materialization",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xiva_source' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
