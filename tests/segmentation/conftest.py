"""A Feast repository of the segmentation tests' own, on the real Redis.

Session-scoped: a temporary repo (project unique per session) with ``customer_features`` and the
DWH-only ``customer_dwh_features``, applied with the Python SDK, online rows written with
``write_to_online_store`` (nulls included). The project's Redis keys are deleted at session end.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import REDIS_URL
from xiva_source.feast_plugin.online_store import redis_url_to_feast

REDIS_CONN = redis_url_to_feast(REDIS_URL)

CITIES = ["Paris", "Lyon", "Toronto", "Montreal", None]
STATUSES = ["active", "inactive", "churned", None]
TIERS = ["bronze", "silver", "gold", "platinum", None]


@dataclass
class FeastRepo:
    """The applied repository and what was written to it."""

    path: Path
    project: str
    store: Any  # feast.FeatureStore
    frame: pd.DataFrame  # customer_features rows as written (index customer_id)
    dwh: pd.DataFrame  # customer_dwh_features rows as written
    now: dt.datetime
    stale_ids: list[str]  # written with an event timestamp older than the ttl


def _customer_rows(n: int, now: dt.datetime) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                "customer_id": f"C{i:05d}",
                "customer_status": STATUSES[i % 4],
                "total_revenue": None if i % 11 == 0 else round(37.5 * (i % 60) + 0.25, 2),
                "transaction_count": None if i % 13 == 0 else i % 25,
                "last_purchase_days_ago": None if i % 17 == 0 else (i * 7) % 200,
                "customer_tier": TIERS[i % 5],
                "city": CITIES[(i // 2) % 5],
                "age": None if i % 19 == 0 else 18 + (i % 60),
                "event_timestamp": now - dt.timedelta(hours=1),
            }
        )
    df = pd.DataFrame(rows)
    df["transaction_count"] = df["transaction_count"].astype("Int64")
    df["last_purchase_days_ago"] = df["last_purchase_days_ago"].astype("Int64")
    df["age"] = df["age"].astype("Int64")
    return df


def _dwh_rows(ids: list[str], now: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "avg_transaction_value": [float(i % 90) + 0.5 for i in range(len(ids))],
            "lifetime_value": [
                None if i % 9 == 0 else float(i * 13 % 2000) for i in range(len(ids))
            ],
            "churn_score": [None if i % 7 == 0 else (i % 10) / 10 for i in range(len(ids))],
            "event_timestamp": [now - dt.timedelta(hours=2)] * len(ids),
        }
    )


def build_repo(path: Path, project: str, n: int) -> FeastRepo:
    """Write, apply and fill a Feast repo at ``path`` (also used by bench/segmentation.py)."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    path.mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    (path / "feature_store.yaml").write_text(
        f"""project: {project}
provider: local
registry: {path / "data" / "registry.db"}
online_store:
  type: redis
  connection_string: "{REDIS_CONN}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    frame = _customer_rows(n, now)
    dwh = _dwh_rows(list(frame["customer_id"]), now)
    frame.to_parquet(path / "data" / "customers.parquet")
    dwh.to_parquet(path / "data" / "dwh.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    fv = FeatureView(
        name="customer_features",
        entities=[customer],
        ttl=dt.timedelta(days=2),
        schema=[
            Field(name="customer_status", dtype=String),
            Field(name="total_revenue", dtype=Float64),
            Field(name="transaction_count", dtype=Int64),
            Field(name="last_purchase_days_ago", dtype=Int64),
            Field(name="customer_tier", dtype=String),
            Field(name="city", dtype=String),
            Field(name="age", dtype=Int64),
        ],
        online=True,
        source=FileSource(
            name="customers",
            path=str(path / "data" / "customers.parquet"),
            timestamp_field="event_timestamp",
        ),
    )
    dwh_fv = FeatureView(
        name="customer_dwh_features",
        entities=[customer],
        ttl=dt.timedelta(days=30),
        schema=[
            Field(name="avg_transaction_value", dtype=Float64),
            Field(name="lifetime_value", dtype=Float64),
            Field(name="churn_score", dtype=Float64),
        ],
        online=True,
        source=FileSource(
            name="dwh", path=str(path / "data" / "dwh.parquet"), timestamp_field="event_timestamp"
        ),
    )
    store = FeatureStore(repo_path=str(path))
    store.apply([customer, fv, dwh_fv])
    store.write_to_online_store("customer_features", frame)
    store.write_to_online_store("customer_dwh_features", dwh)
    # A few customers whose customer_features values are older than the view's ttl (2 days).
    stale = frame.iloc[:0].copy()
    stale_rows = _customer_rows(3, now)
    stale_rows["customer_id"] = [f"S{i:05d}" for i in range(3)]
    stale_rows["event_timestamp"] = now - dt.timedelta(days=5)
    stale = stale_rows
    store.write_to_online_store("customer_features", stale)
    frame = pd.concat([frame, stale], ignore_index=True)
    return FeastRepo(
        path=path,
        project=project,
        store=store,
        frame=frame.set_index("customer_id"),
        dwh=dwh.set_index("customer_id"),
        now=now,
        stale_ids=list(stale["customer_id"]),
    )


def delete_project_keys(project: str) -> None:
    """Delete every Redis key whose name ends with ``project`` (Feast keys and memberships)."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    for pattern in (f"*{project}", f"segmentation:{project}:*"):
        batch = []
        for key in r.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) >= 5000:
                r.delete(*batch)
                batch = []
        if batch:
            r.delete(*batch)
    r.close()


@pytest.fixture(scope="session")
def seg_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeastRepo]:
    """The session's Feast repo: 600 customers (+3 stale) on the real Redis."""
    project = f"segtest_{uuid.uuid4().hex[:10]}"
    repo = build_repo(tmp_path_factory.mktemp("seg_repo"), project, 600)
    yield repo
    delete_project_keys(project)
