"""Xiva and DWH data sources for the loyalty feature store.

Every public name loads on first use (PEP 562), so ``import xiva_source.<package>.errors`` is cheap
and commands such as ``xiva-source usage`` start without importing Feast.

Example:
    >>> from xiva_source import XivaClient, extract_customer_features
    >>> features = extract_customer_features("c3a23741-f257-4fec-ac82-b61554ae0811")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

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
        MaterializationStateError,
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

__all__ = lazy.attach(__name__, __file__)
