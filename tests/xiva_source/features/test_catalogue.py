"""The feature catalogue: the one place the feature facts live, importable without pyarrow."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from xiva_source import features
from xiva_source.features import catalogue, extractor


def test_the_catalogue_lists_the_contracts_features() -> None:
    assert (catalogue.ENTITY, catalogue.EVENT_TIMESTAMP) == ("customer_id", "event_timestamp")
    assert list(catalogue.STANDARD_FEATURES) == [
        "customer_status",
        "total_revenue",
        "transaction_count",
        "last_payment_date",
        "customer_tier",
        "city",
        "birth_date",
    ]
    # Stored: facts that stay true; derived at read time: the features that age.
    assert catalogue.STANDARD_FEATURES["last_payment_date"] == "timestamp"
    assert catalogue.STANDARD_FEATURES["birth_date"] == "timestamp"
    assert {n: (d.fact, d.unit) for n, d in catalogue.DERIVED_FEATURES.items()} == {
        "last_purchase_days_ago": ("last_payment_date", "days"),
        "age": ("birth_date", "years"),
    }
    assert not set(catalogue.DERIVED_FEATURES) & set(catalogue.STANDARD_FEATURES)
    assert dict(catalogue.DWH_ONLY_FEATURES) == {
        "avg_transaction_value": pa.float64(),
        "lifetime_value": pa.float64(),
        "churn_score": pa.float64(),
    }
    assert list(catalogue.DWH_ONLY_FEATURE_TYPES) == list(catalogue.DWH_ONLY_FEATURES)
    assert not set(catalogue.DWH_ONLY_FEATURES) & set(catalogue.STANDARD_FEATURES)


def test_the_extractor_and_the_package_re_export_the_catalogue() -> None:
    assert extractor.STANDARD_FEATURES is catalogue.STANDARD_FEATURES
    assert extractor.FeatureType is catalogue.FeatureType
    assert features.DWH_ONLY_FEATURES is catalogue.DWH_ONLY_FEATURES
    for name in features.__all__:
        assert getattr(features, name) is not None, name
    with pytest.raises(AttributeError):
        features.NO_SUCH_NAME  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.usefixtures("subprocesses")
def test_importing_features_loads_no_arrow_until_the_arrow_types_are_asked_for() -> None:
    code = (
        "import sys, xiva_source.features as f; a = 'pyarrow' in sys.modules; "
        "f.DWH_ONLY_FEATURES; print(a, 'pyarrow' in sys.modules, 'sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "False"]
