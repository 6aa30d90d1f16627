"""The extractor fetching 360 views through the client, from the simulator served over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.features.extractor import extract_customer_features, features_from_360
from xiva_source.settings import load_settings
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaNotFoundError

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_extract_customer_features_fetches_the_360_view(sim: XivaSimulator) -> None:
    cid = sim.customer_ids()[10]
    with XivaClient(sim.base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0) as client:
        row = extract_customer_features(cid, client=client, now=NOW)
        assert row == features_from_360(sim.view_360(cid), now=NOW)
        with pytest.raises(XivaNotFoundError):
            extract_customer_features("nobody", client=client)


def test_extract_customer_features_builds_a_client_from_settings(xiva_env: XivaSimulator) -> None:
    cid = xiva_env.customer_ids()[11]
    assert extract_customer_features(cid, now=NOW) == features_from_360(
        xiva_env.view_360(cid), now=NOW
    )


def test_extract_customer_features_uses_the_settings_passed_in(sim: XivaSimulator) -> None:
    # No XIVA_* variable is set (tests/conftest.py clears them): only the argument names Xiva.
    settings = load_settings(
        xiva_api_base_url=sim.base_url,
        xiva_api_username=SIM_USER,
        xiva_api_password=SIM_PASSWORD,
    )
    cid = sim.customer_ids()[12]
    row = extract_customer_features(cid, now=NOW, settings=settings)
    assert row == features_from_360(sim.view_360(cid), now=NOW)
