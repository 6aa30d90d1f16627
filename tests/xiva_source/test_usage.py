"""API usage counters: in memory, in the real Redis, and the ``usage`` command."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import redis

from tests.conftest import SIM_PASSWORD, SIM_USER
from xiva_source.simulator import FaultConfig, XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.errors import XivaNotFoundError
from xiva_source.xiva_api.usage import (
    MemoryUsageStore,
    RedisUsageStore,
    UsageCounts,
    cli,
    hour_bucket,
)


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


def test_client_counts_in_redis_across_clients(
    sim: XivaSimulator, redis_url: str, redis_ns: str
) -> None:
    def client() -> XivaClient:
        return XivaClient(
            sim.base_url,
            SIM_USER,
            SIM_PASSWORD,
            requests_per_second=0,
            redis_url=redis_url,
            usage_prefix=f"{redis_ns}:usage",
        )

    ids = sim.customer_ids()
    first, second = client(), client()
    sim.set_faults(FaultConfig(kinds=("429",), count=1, paths={"customer_detail"}))
    first.get_customer(ids[0])  # login, 429, retry
    second.get_customer(ids[1])  # login
    with pytest.raises(XivaNotFoundError):
        second.get_customer_360("nobody")
    list(zip(range(60), second.iter_customers(), strict=False))  # two list pages

    report = first.usage()  # the deployment's numbers, whichever client asks
    assert report.by_endpoint["auth_create"] == UsageCounts(requests=2)
    assert report.by_endpoint["customer_detail"] == UsageCounts(requests=3, throttled=1, retries=1)
    assert report.by_endpoint["customer_360"] == UsageCounts(requests=1, errors=1)
    assert report.by_endpoint["customer_list"].requests == 2
    assert report.totals.requests == sim.counters()["total"] == 8
    r = redis.Redis.from_url(redis_url)
    key = f"{redis_ns}:usage:{hour_bucket()}"
    assert r.hget(key, "customer_detail:throttled") == b"1"
    ttl = int(r.ttl(key))  # type: ignore[arg-type]
    assert 7 * 86400 < ttl <= 8 * 86400
    r.close()


def test_usage_command_prints_a_table_and_json(
    redis_url: str,
    redis_ns: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RedisUsageStore(redis.Redis.from_url(redis_url), f"{redis_ns}:usage")
    store.record("customer_360", requests=12, retries=2, throttled=2)
    store.record("auth_create", requests=1)
    monkeypatch.setenv("REDIS_URL", redis_url)

    assert cli(["--hours", "2", "--prefix", f"{redis_ns}:usage"]) == 0
    table = capsys.readouterr().out
    assert "Xiva API usage, 2 h" in table
    lines = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}
    assert lines["customer_360"] == ["12", "2", "2", "0"]
    assert lines["auth_create"] == ["1", "0", "0", "0"]
    assert lines["TOTAL"] == ["13", "2", "2", "0"]
    assert lines[hour_bucket()] == ["13", "2", "2", "0"]

    assert cli(["--json", "--prefix", f"{redis_ns}:usage"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"] == {"requests": 13, "throttled": 2, "retries": 2, "errors": 0}
    assert len(data["hours"]) == 24


def test_usage_command_without_redis_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli([]) == 1
    assert "No REDIS_URL is configured" in capsys.readouterr().err


def test_usage_command_via_module_entry_point(
    redis_url: str, redis_ns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from xiva_source.__main__ import main

    assert main(["usage", "--redis-url", redis_url, "--prefix", f"{redis_ns}:usage"]) == 0
    assert "(no requests)" in capsys.readouterr().out


def test_redis_prefix_setting_namespaces_rate_and_usage_keys(
    xiva_env: XivaSimulator,
    redis_url: str,
    redis_ns: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("XIVA_REDIS_PREFIX", redis_ns)
    with XivaClient() as client:
        client.get_customer(xiva_env.customer_ids()[0])
        assert client.rate_key.startswith(f"{redis_ns}:rate:")
    r = redis.Redis.from_url(redis_url)
    try:
        usage_keys = list(r.scan_iter(match=f"{redis_ns}:usage:*"))
    finally:
        r.close()
    assert usage_keys, "usage counters live under the configured prefix"
    assert cli(["--json"]) == 0  # the command reads the same prefix from the settings
    report = json.loads(capsys.readouterr().out)
    assert report["by_endpoint"]["customer_detail"]["requests"] == 1
