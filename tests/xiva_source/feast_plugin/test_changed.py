"""Feast's own writes through the project's online store mark the changed-customers journal
(before and after the write), as the job and live refresh do (real Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from feast import FeatureStore

from tests.support.feast import make_repo
from tests.support.services import REDIS_URL
from xiva_source.feast_plugin.changed import journal_keys


def test_feast_writes_through_our_store_mark_the_journal(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = f"chg_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("FEATURE_STORE_ENV_FILE", "none")
    repo = make_repo(tmp_path / "repo", project)
    store = FeatureStore(repo_path=str(repo))
    client = redis.Redis.from_url(redis_url)
    journal, seq, _ = journal_keys(project)
    try:
        ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(3)]
        rows = pd.DataFrame(
            {
                "customer_id": ids,
                "avg_transaction_value": [1.0, 2.0, 3.0],
                "lifetime_value": [1.0, 2.0, 3.0],
                "churn_score": [0.1, 0.2, 0.3],
                "updated_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 3,
            }
        )
        store.write_to_online_store("customer_dwh_features", rows)
        entries: Any = client.zrange(journal, 0, -1, withscores=True)
        marked = {m.decode(): s for m, s in entries}
        assert sorted(marked) == sorted(ids)
        sequence: Any = client.get(seq)
        assert int(sequence or 0) == 2  # before the write, and after it
    finally:
        keys = list(client.scan_iter(match=f"*{project}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
