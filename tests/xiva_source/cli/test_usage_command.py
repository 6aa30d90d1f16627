"""The ``usage`` command (the counters themselves are tested in tests/xiva_source/xiva_api/)."""

from __future__ import annotations

import json

import pytest
import redis

from xiva_source.cli import main
from xiva_source.simulator import XivaSimulator
from xiva_source.xiva_api.client import XivaClient
from xiva_source.xiva_api.usage import RedisUsageStore, hour_bucket


def cli(argv: list[str]) -> int:
    """``xiva-source usage <argv>``."""
    return main(["usage", *argv])


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
    assert cli([]) == 2  # a missing setting: a configuration error
    err = capsys.readouterr().err
    assert "No REDIS_URL is configured" in err and "fix: Set REDIS_URL" in err


def test_usage_command_via_module_entry_point(
    redis_url: str, redis_ns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from xiva_source.__main__ import main as module_main

    assert module_main(["usage", "--redis-url", redis_url, "--prefix", f"{redis_ns}:usage"]) == 0
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
