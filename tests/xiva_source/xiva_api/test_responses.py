"""What an answer means: JSON decoding and the error (with its advice) for each failed status."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from xiva_source.xiva_api.errors import (
    XivaAuthenticationError,
    XivaBadResponseError,
    XivaConnectionError,
    XivaError,
    XivaNotFoundError,
    XivaRateLimitError,
    XivaServerError,
)
from xiva_source.xiva_api.responses import (
    connection_error,
    customer_page,
    decode_json,
    error_for,
    json_object,
)

URL = "http://xiva.test/api/customerManagement/v4/customer/"


def _response(status: int, body: Any = None, **headers: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.url = URL
    text = body if isinstance(body, str) else json.dumps(body)
    resp._content = text.encode()
    resp.headers.update(headers)
    return resp


@pytest.mark.parametrize(
    ("status", "endpoint", "kind", "advice"),
    [
        (401, "auth_create", XivaAuthenticationError, "XIVA_API_USERNAME and XIVA_API_PASSWORD"),
        (400, "auth_refresh", XivaAuthenticationError, "logs in again"),
        (403, "customer_detail", XivaAuthenticationError, "permissions"),
        (404, "auth_create", XivaNotFoundError, "must be the API root"),
        (404, "customer_detail", XivaNotFoundError, "Check the customer id"),
        (429, "customer_list", XivaRateLimitError, "XIVA_REQUESTS_PER_SECOND"),
        (503, "customer_360", XivaServerError, "server-side"),
        (418, "customer_360", XivaError, "does not match"),
    ],
)
def test_each_failed_status_maps_to_its_error_and_advice(
    status: int, endpoint: str, kind: type[XivaError], advice: str
) -> None:
    error = error_for(_response(status, {"detail": "said so"}), endpoint, "jane")
    assert type(error) is kind
    assert advice in str(error) and "said so" in str(error)
    assert error.status == status and error.url == URL


def test_a_429_carries_retry_after_and_an_html_5xx_says_so() -> None:
    throttled = error_for(_response(429, {}, **{"Retry-After": "7"}), "customer_list", "jane")
    assert isinstance(throttled, XivaRateLimitError) and throttled.retry_after == 7.0
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    failed = error_for(_response(502, page, **{"Content-Type": "text/html"}), "customer_360", None)
    assert "(an HTML error page)" in str(failed) and failed.body == "502 Bad Gateway"


def test_bodies_that_are_not_what_was_expected_are_bad_responses() -> None:
    with pytest.raises(XivaBadResponseError, match="an HTML page where a customer was expected"):
        decode_json(_response(200, "<!DOCTYPE html><p>login</p>"), "a customer")
    with pytest.raises(XivaBadResponseError, match="a JSON list where a customer"):
        json_object(_response(200, [1]), "a customer")
    assert json_object(_response(200, {"id": "a"}), "a customer") == {"id": "a"}


def test_a_list_answer_becomes_a_raw_page_with_its_total() -> None:
    page = customer_page(_response(200, [], **{"X-Total-Count": "12"}))
    assert (page.data, page.total_count, page.status, page.url) == ([], 12, 200, URL)
    assert customer_page(_response(200, [], **{"X-Total-Count": "many"})).total_count is None


def test_a_timeout_names_the_setting_to_raise() -> None:
    cause = requests.ReadTimeout("slow")
    error = connection_error(cause, "customer_list", URL, 2.5)
    assert isinstance(error, XivaConnectionError) and error.__cause__ is cause
    assert "timed out" in str(error) and "XIVA_TIMEOUT (now 2.5 s)" in str(error)
