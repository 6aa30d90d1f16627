"""Usage counters without Redis: aggregation, UTC hours, the report table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from xiva_source.xiva_api.usage import MemoryUsageStore, UsageCounts, UsageReport, hour_bucket


def test_memory_store_aggregates_per_endpoint_and_hour() -> None:
    store = MemoryUsageStore()
    store.record("customer_list", requests=3, retries=1)
    store.record("customer_list", throttled=1)
    store.record("auth_create", requests=1, errors=1)
    report = store.report(hours=3)
    now = hour_bucket()
    assert report.hours[-1] == now and len(report.hours) == 3
    assert report.by_endpoint == {
        "auth_create": UsageCounts(requests=1, errors=1),
        "customer_list": UsageCounts(requests=3, throttled=1, retries=1),
    }
    assert report.by_hour[now] == UsageCounts(requests=4, throttled=1, retries=1, errors=1)
    assert report.totals == report.by_hour[now]
    assert report.by_hour[report.hours[0]] == UsageCounts()


def test_hour_bucket_is_utc() -> None:
    toronto_evening = datetime(2026, 3, 1, 19, 59, tzinfo=timezone(timedelta(hours=-4)))
    assert hour_bucket(toronto_evening) == "2026-03-01T23"


def test_a_naive_moment_is_utc() -> None:
    assert hour_bucket(datetime(2026, 3, 1, 23, 5)) == "2026-03-01T23"


def test_the_report_window_and_table() -> None:
    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    hours = [hour_bucket(now - timedelta(hours=i)) for i in (1, 0)]
    report = UsageReport.from_cells(
        hours,
        {hours[1]: {"custom_call": {"requests": 2}, "customer_list": {"requests": 5, "errors": 1}}},
    )
    assert list(report.by_endpoint) == ["customer_list", "custom_call"]  # known ones first
    assert report.totals == UsageCounts(requests=7, errors=1)
    lines = report.to_table().splitlines()
    assert lines[0] == "Xiva API usage, 2 h (2026-03-01T11:00 .. 2026-03-01T12:59 UTC)"
    assert lines[-1].split() == ["TOTAL", "7", "0", "0", "1"]
    assert MemoryUsageStore().report(1, now=now).hours == ["2026-03-01T12"]
    with pytest.raises(ValueError, match="hours must be >= 1"):
        MemoryUsageStore().report(0)
