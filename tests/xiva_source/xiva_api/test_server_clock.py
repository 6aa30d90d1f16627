"""Xiva's clock from the ``Date`` header of its answers (pure logic, an injected host clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from xiva_source.xiva_api.server_clock import ServerClock

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z on this host's clock


def test_the_skew_is_the_servers_date_minus_this_hosts_time() -> None:
    clock = ServerClock(clock=lambda: NOW)
    assert clock.skew is None  # nothing answered yet
    clock.observe("Wed, 31 Dec 2025 23:30:00 GMT")
    assert clock.skew == timedelta(minutes=-30)  # Xiva 30 minutes behind
    clock.observe("Thu, 01 Jan 2026 00:30:00 GMT")
    assert clock.skew == timedelta(minutes=30)  # the latest answer counts


def test_an_asctime_date_is_gmt() -> None:
    clock = ServerClock(clock=lambda: NOW)
    clock.observe("Thu Jan  1 00:30:00 2026")
    assert clock.skew == timedelta(minutes=30)


@pytest.mark.parametrize("header", [None, "", "yesterday", "Thu, 99 Jan 2026 00:00:00 GMT"])
def test_a_missing_or_unusable_date_header_changes_nothing(header: str | None) -> None:
    clock = ServerClock(clock=lambda: NOW)
    clock.observe("Thu, 01 Jan 2026 00:00:10 GMT")
    clock.observe(header)
    assert clock.skew == timedelta(seconds=10)
