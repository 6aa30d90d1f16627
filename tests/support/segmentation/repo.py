"""The segmentation tests' own Feast repository on the real Redis, shaped like ``feature_repo/``.

As in production the store keeps facts, never values that age: ``customer_features`` holds
``last_payment_date`` and ``birth_date`` (dates, at 00:00 UTC), and the on-demand view
``customer_time_features`` derives ``last_purchase_days_ago`` and ``age`` when they are read
(:func:`xiva_source.features.derived.derive_frame`, as the segmentation reader does);
``customer_dwh_features`` holds the DWH-only scores and ``customer_segments`` the served
memberships (online only). Only the sources differ: parquet files, the rows written with
``write_to_online_store`` (nulls included).

The builders write counts (an age, days since the last purchase) as of the repository's clock
(``now``, injectable) and store their facts (:func:`xiva_source.features.derived.facts_from_counts`,
the DWH's inverse of the derivation): read as of ``now``, every customer has the counts written.
A birth date is the latest one consistent with its age, so ages read the same for a year after
``now``; ``last_purchase_days_ago`` grows by one each day (read it with ``now=repo.now``).

Used by the fixtures of tests/segmentation/ (``seg_repo`` and the modules' own repositories).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType
from typing import Any

import pandas as pd

from xiva_source.feast_plugin.online_store import redis_url_to_feast
from xiva_source.features.catalogue import DERIVED_FEATURES, STANDARD_FEATURES
from xiva_source.features.derived import derive_frame, facts_from_counts
from xiva_source.timeutil import Clock, utc_now

__all__ = [
    "CITIES",
    "STATUSES",
    "STORED",
    "TIERS",
    "FeastRepo",
    "build_repo",
    "customer_time_features",
    "delete_project_keys",
    "stored_features",
    "stored_rows",
    "with_counts",
]

CITIES = ["Paris", "Lyon", "Toronto", "Montreal", None]
STATUSES = ["active", "inactive", "churned", None]
TIERS = ["bronze", "silver", "gold", "platinum", None]

STORED = list(STANDARD_FEATURES)
"""The standard features ``customer_features`` stores, in order (the catalogue's), which the
builders fill; the view also has the custom features (``stored_features()``), written empty."""


def stored_features() -> list[str]:
    """Every feature ``customer_features`` stores, as in ``feature_repo/``: standard + custom."""
    from xiva_source.feast_plugin.sources import xiva_feature_fields

    return [f.name for f in xiva_feature_fields()]


@dataclass
class FeastRepo:
    """The applied repository and what was written to it.

    Attributes:
        frame: ``customer_features`` rows as written (index ``customer_id``: the facts and
            ``event_timestamp``) with the derived counts (``age``, ``last_purchase_days_ago``)
            as of ``now``: what the engine reads then.
        dwh: ``customer_dwh_features`` rows as written.
        now: The repository's clock when it was built (facts are placed as of its date).
        stale_ids: Customers written with an event timestamp older than the view's ttl.
    """

    path: Path
    project: str
    store: Any  # feast.FeatureStore
    frame: pd.DataFrame
    dwh: pd.DataFrame
    now: dt.datetime
    stale_ids: list[str]


def with_counts(rows: pd.DataFrame, now: dt.datetime, **counts: Sequence[int | None]) -> None:
    """Store counts as their facts, as of ``now``: ``age=[...]`` sets ``birth_date`` (and
    ``age``), ``last_purchase_days_ago=[...]`` sets ``last_payment_date`` (and the count).

    Args:
        rows: Rows to change in place (one count per row, ``None`` for unknown).
        now: The moment the counts are true.
        **counts: A derived feature's name and its counts.
    """
    for name, values in counts.items():
        fact = DERIVED_FEATURES[name].fact
        column = pd.array(list(values), dtype="Int64")
        stamps = [now] * len(rows)
        rows[fact] = facts_from_counts(name, column, stamps).set_axis(rows.index)
        rows[name] = pd.Series(column, index=rows.index)


def stored_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (indexed by ``customer_id`` or not) as ``customer_features`` stores them (a
    feature the rows lack, a custom one, is missing)."""
    flat = rows.reset_index() if rows.index.name == "customer_id" else rows
    return flat.reindex(columns=["customer_id", *stored_features(), "event_timestamp"])


def _customer_rows(n: int, now: dt.datetime) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                "customer_id": f"C{i:05d}",
                "customer_status": STATUSES[i % 4],
                "total_revenue": None if i % 11 == 0 else round(37.5 * (i % 60) + 0.25, 2),
                "transaction_count": None if i % 13 == 0 else i % 25,
                "customer_tier": TIERS[i % 5],
                "city": CITIES[(i // 2) % 5],
                "event_timestamp": now - dt.timedelta(hours=1),
            }
        )
    df = pd.DataFrame(rows)
    df["transaction_count"] = df["transaction_count"].astype("Int64")
    with_counts(
        df,
        now,
        last_purchase_days_ago=[None if i % 17 == 0 else (i * 7) % 200 for i in range(n)],
        age=[None if i % 19 == 0 else 18 + (i % 60) for i in range(n)],
    )
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


def customer_time_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """The body of the on-demand view (``feature_repo/features.py``'s): the one derivation."""
    from xiva_source.features.derived import derive_frame

    return derive_frame(inputs)


def _fresh(func: Callable[..., Any]) -> FunctionType:
    """A new function object of ``func``'s code: Feast's decorator renames the module of the one
    it is given (``__main__``), after which its source could not be found for the next repo."""
    assert isinstance(func, FunctionType)
    return FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__)


def build_repo(
    path: Path, project: str, n: int, redis_url: str, *, clock: Clock = utc_now
) -> FeastRepo:
    """Write, apply and fill a Feast repo at ``path`` shaped like ``feature_repo/``.

    Args:
        path: The repository's directory (created).
        project: Its Feast project (its Redis keys end with it).
        n: Customers ``C00000``... (3 stale ones, ``S00000``..., are added).
        redis_url: The Redis of its online store (the ``redis_url`` fixture).
        clock: The repository's ``now`` (facts are placed as of its date).

    Returns:
        The repository and what was written.
    """
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Array, Float64, Int64, String

    from xiva_source.feast_plugin.sources import xiva_feature_fields

    path.mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    (path / "feature_store.yaml").write_text(
        f"""project: {project}
provider: local
registry: {path / "data" / "registry.db"}
online_store:
  type: redis
  connection_string: "{redis_url_to_feast(redis_url)}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""
    )
    now = clock().replace(microsecond=0)
    frame = _customer_rows(n, now)
    dwh = _dwh_rows(list(frame["customer_id"]), now)
    stored_rows(frame).to_parquet(path / "data" / "customers.parquet")
    dwh.to_parquet(path / "data" / "dwh.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    fv = FeatureView(
        name="customer_features",
        entities=[customer],
        ttl=dt.timedelta(days=2),
        schema=xiva_feature_fields(),  # as feature_repo/features.py
        online=True,
        source=FileSource(
            name="customers",
            path=str(path / "data" / "customers.parquet"),
            timestamp_field="event_timestamp",
        ),
    )
    time_features = on_demand_feature_view(
        sources=[fv[["last_payment_date", "birth_date"]]],
        schema=[Field(name=name, dtype=Int64) for name in DERIVED_FEATURES],
        mode="pandas",
        write_to_online_store=False,
    )(_fresh(customer_time_features))
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
    segments = FeatureView(
        name="customer_segments",
        entities=[customer],
        ttl=dt.timedelta(days=0),
        schema=[
            Field(name="segments", dtype=Array(String)),
            Field(name="segment_groups", dtype=Array(String)),
        ],
        online=False,
    )
    store = FeatureStore(repo_path=str(path))
    store.apply([customer, fv, time_features, dwh_fv, segments])
    store.write_to_online_store("customer_features", stored_rows(frame))
    store.write_to_online_store("customer_dwh_features", dwh)
    # A few customers whose customer_features values are older than the view's ttl (2 days).
    stale = _customer_rows(3, now)
    stale["customer_id"] = [f"S{i:05d}" for i in range(3)]
    stale["event_timestamp"] = now - dt.timedelta(days=5)
    store.write_to_online_store("customer_features", stored_rows(stale))
    frame = pd.concat([frame, stale], ignore_index=True)
    derived = derive_frame(frame, as_of=now)
    for name in DERIVED_FEATURES:  # the facts stored are the counts written, read as of now
        assert derived[name].equals(frame[name]), name
    return FeastRepo(
        path=path,
        project=project,
        store=store,
        frame=frame.set_index("customer_id"),
        dwh=dwh.set_index("customer_id"),
        now=now,
        stale_ids=list(stale["customer_id"]),
    )


def delete_project_keys(project: str, redis_url: str) -> None:
    """Delete every Redis key whose name ends with ``project`` (Feast keys and memberships)."""
    import redis

    r = redis.Redis.from_url(redis_url)
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


def write_online(store: Any, view: str, rows: pd.DataFrame) -> None:
    """What every writer does: mark the rows' customers changed (the journal read by incremental
    segment refreshes), write them with Feast's ``write_to_online_store``, mark them again."""
    from segmentation.journal import mark_changed
    from xiva_source.feast_plugin.online_store import online_redis_client

    client = online_redis_client(store.config)
    assert client is not None  # a Redis online store
    try:
        mark_changed(client, store.project, rows["customer_id"])
        store.write_to_online_store(view, rows)
        mark_changed(client, store.project, rows["customer_id"])
    finally:
        client.close()
