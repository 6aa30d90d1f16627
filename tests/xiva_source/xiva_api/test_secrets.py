"""No password or token in any log record, error message or repr of a whole client session.

The redaction patterns and error pickling (pure logic) are in tests/xiva_source/test_redaction.py.
"""

from __future__ import annotations

import logging
import re
import time

import pytest

from tests.support.services import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaAuthenticationError, XivaError

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+")


def test_a_whole_session_logs_no_secret(
    sim: XivaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    sim.set_token_lifetimes(access=1.0)
    client = XivaClient(sim.base_url, SIM_USER, SIM_PASSWORD, requests_per_second=0)
    ids = sim.customer_ids()
    client.get_customer(ids[0])
    seen_tokens = set()
    assert client._tokens is not None and client._tokens._pair is not None
    seen_tokens |= {client._tokens._pair.access, client._tokens._pair.refresh}
    sim.set_faults(FaultConfig(kinds=("429", "502_html", "drop"), count=3, retry_after="zero"))
    time.sleep(2.05)  # refresh due
    client.get_customer(ids[1])
    sim.revoke_refresh_tokens()
    time.sleep(2.05)  # refresh fails: log in again
    client.get_customer(ids[2])
    seen_tokens |= {client._tokens._pair.access, client._tokens._pair.refresh}
    errors: list[XivaError] = []
    for bad in (
        XivaClient(sim.base_url, SIM_USER, "not-" + SIM_PASSWORD, requests_per_second=0),
        XivaClient(sim.base_url, requests_per_second=0),
    ):
        with pytest.raises(XivaAuthenticationError) as info:
            bad.get_customer(ids[0])
        errors.append(info.value)

    texts = [r.getMessage() for r in caplog.records]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(client), repr(client._tokens), repr(client._tokens._pair)]
    assert any("retry" in t for t in texts) and any("Logging in" in t for t in texts)
    for text in texts:
        assert SIM_PASSWORD not in text
        assert not JWT.search(text), text
        assert not any(tok and tok in text for tok in seen_tokens)
