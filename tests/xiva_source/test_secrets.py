"""No password or token in any log record, error message, repr or pickled error."""

from __future__ import annotations

import logging
import pickle
import re
import time

import pytest

from tests.conftest import SIM_PASSWORD, SIM_USER
from xiva_source.dwh.errors import DwhError
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.redaction import body_excerpt, redact
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaAuthenticationError, XivaError, XivaRateLimitError

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


def test_redaction_of_bodies_urls_and_headers() -> None:
    body = (
        '{"access": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "refresh": "r-123", "detail": "ok"}'
    )
    excerpt = body_excerpt(body)
    assert excerpt is not None and "eyJ" not in excerpt and "r-123" not in excerpt
    assert '"detail": "ok"' in excerpt
    assert redact("password=hunter2&user=x") == "password=***&user=x"
    assert redact("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer ***"
    assert redact("redis://admin:pw@host:6379") == "redis://admin:***@host:6379"
    err = XivaError("failed", url="https://bob:pw@xiva/api?x=1", body=body)
    assert "pw@" not in str(err) and "eyJ" not in str(err)


def test_html_bodies_become_short_visible_text() -> None:
    page = "<html><head><script>var t='eyJa.eyJb.c';</script></head><body><h1>502 Bad Gateway</h1>"
    page += "<p>nginx</p>" + "<div>padding</div>" * 100 + "</body></html>"
    excerpt = body_excerpt(page)
    assert excerpt is not None and excerpt.startswith("502 Bad Gateway nginx")
    assert len(excerpt) <= 200 and "<" not in excerpt and excerpt.endswith("...")


def test_errors_pickle_with_their_attributes() -> None:
    err = XivaRateLimitError("slow down", retry_after=5.0, status=429, body="x", url="u")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is XivaRateLimitError and str(copy) == str(err)
    assert (copy.retry_after, copy.status, copy.body, copy.url) == (5.0, 429, "x", "u")
    store_err = AllSourcesFailedError({"xiva": err, "dwh": DwhError("connection refused")})
    assert "every source failed" in str(store_err) and "FEATURE_STORE_DATA_SOURCE" in str(store_err)
    assert pickle.loads(pickle.dumps(store_err)).source == "xiva+dwh"
