"""Features: the standard feature catalogue and the extractor of Xiva 360 views.

- :mod:`~xiva_source.features.catalogue`: the one place the feature facts live (the entity and
  event-timestamp columns, the standard features and their types, the DWH-only features);
- :mod:`~xiva_source.features.extractor`: a 360 view to a row of features, and the registry of
  custom features (:func:`custom_feature`).

Both are light (no SQLAlchemy, pandas or Arrow); names load on first use (:mod:`xiva_source.lazy`)
and :data:`DWH_ONLY_FEATURES` (Arrow types) loads pyarrow on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.features.catalogue import (
        DWH_ONLY_FEATURE_TYPES,
        DWH_ONLY_FEATURES,
        ENTITY,
        EVENT_TIMESTAMP,
        STANDARD_FEATURES,
        FeatureType,
    )
    from xiva_source.features.extractor import (
        CustomFeature,
        custom_feature,
        custom_features,
        extract_customer_features,
        feature_schema,
        features_from_360,
        remove_custom_feature,
        wrong_customer,
    )

__all__ = lazy.attach(__name__, __file__)
