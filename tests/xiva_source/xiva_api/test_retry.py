"""Retry-After parsing and the bounded retry policy (pure; the HTTP behaviour is in test_client)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from xiva_source.xiva_api.errors import XivaRateLimitError, XivaRetryBudgetError, XivaServerError
from xiva_source.xiva_api.retry import RETRY_AFTER_MARGIN, RetryPolicy, parse_retry_after


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _server_error() -> XivaServerError:
    return XivaServerError("Xiva failed", status=503, body="<html><b>busy</b></html>", url="u")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (" 2 ", 2.0), ("0", None), (None, None), ("", None), ("soon", None)],
)
def test_parse_retry_after_seconds_zero_missing_and_garbage(
    header: str | None, expected: float | None
) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_future_and_past() -> None:
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(future)
    assert seconds is not None and 28.0 <= seconds <= 30.0
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) is None  # already passed: back off instead


def test_retry_after_is_never_undercut() -> None:
    state = RetryPolicy().start()
    assert state.next_wait(_server_error(), 3.0) == 3.0 + RETRY_AFTER_MARGIN


def test_backoff_is_jittered_and_bounded_by_an_exponential_ceiling() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0, max_attempts=100, budget=1e9)
    state = policy.start()
    waits = [state.next_wait(_server_error(), None) for _ in range(8)]
    ceilings = [min(4.0, 0.5 * 2**i) for i in range(8)]
    assert all(0.0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert len(set(waits)) > 1  # jittered, not a fixed schedule


def test_retry_after_above_the_maximum_fails_fast_with_what_to_do() -> None:
    state = RetryPolicy(max_retry_after=120).start()
    with pytest.raises(XivaRateLimitError) as info:
        state.next_wait(XivaRateLimitError("throttled", retry_after=3600), 3600.0)
    err = info.value
    assert err.retry_after == 3600.0 and err.status == 429
    assert "Xiva asked to wait 3600 s (Retry-After) which exceeds XIVA_MAX_RETRY_AFTER=120" in str(
        err
    )
    assert "XIVA_REQUESTS_PER_SECOND" in str(err)
    assert isinstance(err.__cause__, XivaRateLimitError)


def test_budget_exhausted_fails_before_waiting() -> None:
    clock = FakeClock()
    state = RetryPolicy(budget=10.0).start(clock=clock)
    assert state.next_wait(_server_error(), 4.0) == pytest.approx(4.05)
    clock.now += 4.05
    with pytest.raises(XivaRetryBudgetError) as info:
        state.next_wait(_server_error(), 6.0)  # 4.05 + 6.05 > 10
    err = info.value
    assert err.attempts == 2 and err.elapsed == pytest.approx(4.05)
    assert "XIVA_RETRY_BUDGET=10" in str(err)
    assert isinstance(err.last_error, XivaServerError) and err.__cause__ is err.last_error
    assert err.status == 503 and err.body == "busy"


def test_attempts_are_bounded() -> None:
    state = RetryPolicy(max_attempts=3, budget=1e9).start()
    state.next_wait(_server_error(), 0.001)
    state.next_wait(_server_error(), 0.001)
    with pytest.raises(XivaRetryBudgetError, match="3 attempts"):
        state.next_wait(_server_error(), 0.001)


def test_each_retry_and_the_giving_up_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    state = RetryPolicy(max_attempts=2, budget=1e9).start()
    with caplog.at_level(logging.INFO, logger="xiva_source.xiva_api.client"):
        assert state.wait_before_retry(_server_error(), 2.0, "customer_list") == pytest.approx(2.05)
        with pytest.raises(XivaRetryBudgetError):
            state.wait_before_retry(_server_error(), None, "customer_list")
    retry, gave_up = caplog.messages
    assert retry == "Xiva customer_list: HTTP 503; retry 1 in 2.05 s (Retry-After 2 s)"
    assert gave_up.startswith("Xiva customer_list: giving up: Gave up after 2 attempts")
