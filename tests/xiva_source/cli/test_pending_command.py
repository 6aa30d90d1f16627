"""``xiva-source pending``: the Xiva customers waiting for a retry (real PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from xiva_source.cli import main
from xiva_source.dwh.pending import pending_table_name, remember_pending

TABLE = pending_table_name("xiva_customer_snapshots")
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def test_pending_lists_counts_per_source_and_the_most_failed_first(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DWH_URL", pg_url)  # the snapshot table's database by default
    assert main(["pending"]) == 0
    assert capsys.readouterr().out.strip() == "pending_retries=0"

    remember_pending(pg_url, TABLE, "customer_source", {"a": "360 fetch failed: 503"}, now=NOW)
    remember_pending(pg_url, TABLE, "customer_source", {"a": "360 fetch failed: 503"}, now=NOW)
    remember_pending(pg_url, TABLE, "customer_source", {"b": "malformed record: x"}, now=NOW)
    remember_pending(pg_url, TABLE, "xiva_customers", {"c": "360 fetch failed: 500"}, now=NOW)

    assert main(["pending", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "pending_retries=3 (customer_source=2 xiva_customers=1)"
    assert lines[1] == (
        "a source=customer_source attempts=2 since=2026-11-25T03:00:00Z: 360 fetch failed: 503"
    )
    assert len(lines) == 3

    assert main(["pending", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pending_retries"] == 3 and data["by_source"]["xiva_customers"] == 1
    assert {c["customer_id"] for c in data["customers"]} == {"a", "b", "c"}
