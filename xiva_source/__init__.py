"""Xiva and DWH data sources for the loyalty feature store.

Every public name loads on first use (PEP 562), so ``import xiva_source.<package>.errors`` is cheap
and commands such as ``xiva-source usage`` start without importing Feast.

Example:
    >>> from xiva_source import XivaClient, extract_customer_features
    >>> features = extract_customer_features("c3a23741-f257-4fec-ac82-b61554ae0811")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source.lazy import lazy_exports

if TYPE_CHECKING:
    from xiva_source.dwh.errors import DwhError
    from xiva_source.errors import ConfigurationError, DataSourceError, LoyaltyError
    from xiva_source.feast_plugin.offline_store import (
        LoyaltyOfflineStore,
        LoyaltyOfflineStoreConfig,
    )
    from xiva_source.feast_plugin.online_store import (
        LoyaltyRedisOnlineStore,
        LoyaltyRedisOnlineStoreConfig,
    )
    from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource
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
    from xiva_source.jobs.materialize import RunSummary, run_materialization
    from xiva_source.jobs.refresh import refresh_customer
    from xiva_source.pipeline.errors import AllSourcesFailedError
    from xiva_source.pipeline.pull import PullReport, pull_batches
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

_XIVA_ERRORS = (
    "XivaAuthenticationError",
    "XivaBadResponseError",
    "XivaConnectionError",
    "XivaError",
    "XivaNotConfiguredError",
    "XivaNotFoundError",
    "XivaRateLimitError",
    "XivaRetryBudgetError",
    "XivaServerError",
)
# Every public name loads on first use: ``import xiva_source.<pkg>.errors`` stays cheap and
# ``xiva-source usage`` starts without Feast.
_LAZY: dict[str, str] = {
    "ConfigurationError": "xiva_source.errors",
    "DataSourceError": "xiva_source.errors",
    "LoyaltyError": "xiva_source.errors",
    "DwhError": "xiva_source.dwh.errors",
    "AllSourcesFailedError": "xiva_source.pipeline.errors",
    "LiveRefreshError": "xiva_source.jobs.errors",
    "MaterializationConfigError": "xiva_source.jobs.errors",
    "MaterializationError": "xiva_source.jobs.errors",
    "MaterializationFailedError": "xiva_source.jobs.errors",
    "DataSourceMode": "xiva_source.settings",
    "MergeStrategy": "xiva_source.settings",
    "Settings": "xiva_source.settings",
    "load_settings": "xiva_source.settings",
    "XivaClient": "xiva_source.xiva_api.client",
    "UsageReport": "xiva_source.xiva_api.usage",
    "custom_feature": "xiva_source.features.extractor",
    "extract_customer_features": "xiva_source.features.extractor",
    "feature_schema": "xiva_source.features.extractor",
    "features_from_360": "xiva_source.features.extractor",
    **dict.fromkeys(_XIVA_ERRORS, "xiva_source.xiva_api.errors"),
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
    "ConfigurationError",
    "CustomerSource",
    "DataSourceError",
    "DataSourceMode",
    "DwhError",
    "DwhSource",
    "LiveRefreshError",
    "LoyaltyError",
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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
