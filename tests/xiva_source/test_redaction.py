"""Secret masking (bodies, URLs, headers, HTML pages) and errors that pickle: pure, no service."""

from __future__ import annotations

import pickle

import pytest

from xiva_source.dwh.errors import DwhError
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.redaction import body_excerpt, redact
from xiva_source.xiva_api.errors import XivaError, XivaRateLimitError

pytestmark = pytest.mark.unit


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
