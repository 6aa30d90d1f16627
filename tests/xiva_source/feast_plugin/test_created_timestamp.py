"""A DwhSource's ``created_timestamp_column`` decides rows tied on the event timestamp, on every
path: the materialization job, Feast's own materialization (``pull_all`` / ``pull_latest``), the
Ray parts, and historical retrieval (compared with Feast's PostgreSQL store in
``test_historical_vs_feast.py``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import redis
import sqlalchemy as sa
import yaml
from feast import Entity, FeatureStore, FeatureView, Field, ValueType
from feast.types import Float64

from xiva_source.feast_plugin.offline_store import LoyaltyOfflineStore
from xiva_source.feast_plugin.ray_support import PullSpec, ReadPart, read_part
from xiva_source.feast_plugin.sources import DwhSource
from xiva_source.features.catalogue import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from xiva_source.pipeline.context import PullOptions
from xiva_source.pipeline.pull import pull_batches
from xiva_source.pipeline.report import PullReport
from xiva_source.settings import load_settings

T1 = datetime(2024, 5, 1, 12, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
END = T2 + timedelta(days=1)


def _at(minutes: int) -> datetime:
    return T1 + timedelta(minutes=minutes)


# (customer, score, updated_at, loaded_at), in storage order: the winner is never the first
# nor the last row of its tie as stored.
ROWS = [
    ("a", 1.0, T1, _at(5)),
    ("a", 2.0, T1, _at(9)),  # a: the latest created of the tie at T1
    ("a", 3.0, T1, _at(7)),
    ("b", 4.0, T1, None),  # a row without a created timestamp loses a tie
    ("b", 5.0, T1, _at(1)),  # b
    ("b", 6.0, T1, None),
    ("c", 7.0, T2, _at(1)),  # c: the later timestamp wins whatever the created timestamps
    ("c", 8.0, T1, _at(90)),
    ("d", 9.0, T2, None),  # d: alone at its timestamp, served without a created timestamp
]
LATEST = {"a": 2.0, "b": 5.0, "c": 7.0, "d": 9.0}


@dataclass
class TieRepo:
    """An applied repository with one view over the ``ties`` table."""

    path: Path
    project: str
    store: FeatureStore


@pytest.fixture
def tie_repo(
    pg_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TieRepo]:
    from xiva_source.dwh import dispose_engines

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE ties (customer_id TEXT, score DOUBLE PRECISION, "
                "updated_at TIMESTAMPTZ, loaded_at TIMESTAMPTZ)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO ties VALUES (:c, :s, :u, :l)"),
            [{"c": c, "s": s, "u": u, "l": c_at} for c, s, u, c_at in ROWS],
        )
    engine.dispose()
    monkeypatch.setenv("DWH_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    project = f"ties_{uuid.uuid4().hex[:10]}"
    path = tmp_path / "repo"
    path.mkdir()
    (path / "feature_store.yaml").write_text(
        yaml.safe_dump(
            {
                "project": project,
                "registry": str(path / "registry.db"),
                "provider": "local",
                "offline_store": {
                    "type": "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore"
                },
                "online_store": {
                    "type": "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"
                },
                "entity_key_serialization_version": 3,
            }
        )
    )
    store = FeatureStore(repo_path=str(path))
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="tie_view",
        entities=[customer],
        ttl=timedelta(days=30),
        schema=[Field(name="score", dtype=Float64)],
        source=DwhSource(
            name="tie_src",
            table="ties",
            timestamp_field="updated_at",
            created_timestamp_column="loaded_at",
        ),
    )
    store.apply([customer, view])
    yield TieRepo(path, project, store)
    _wipe_online(project, redis_url)
    dispose_engines()


def _wipe_online(project: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{project}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _online(store: FeatureStore) -> dict[str, float | None]:
    ids = sorted(LATEST)
    got = store.get_online_features(
        features=["tie_view:score"], entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()
    return dict(zip(got["customer_id"], got["score"], strict=True))


def _source(repo: TieRepo) -> DwhSource:
    source = repo.store.get_feature_view("tie_view").batch_source
    assert isinstance(source, DwhSource)
    return source


def test_the_job_and_feasts_materialization_serve_the_latest_created_of_tied_rows(
    tie_repo: TieRepo, redis_url: str
) -> None:
    from xiva_source.jobs.materialize import run_materialization

    summary = run_materialization(tie_repo.path, end_date=END, full=True)
    assert summary.exit_code == 0, summary
    assert _online(tie_repo.store) == LATEST

    # Feast's own materialization (pull_all): it used to fail reading the created column.
    _wipe_online(tie_repo.project, redis_url)
    store = FeatureStore(repo_path=str(tie_repo.path))
    store.materialize(start_date=T1 - timedelta(days=1), end_date=END)
    assert _online(store) == LATEST


def test_pulls_give_one_row_per_timestamp_with_its_created_timestamp(tie_repo: TieRepo) -> None:
    source = _source(tie_repo)
    settings = load_settings(repo_path=tie_repo.path)
    tables = list(
        pull_batches(
            source, settings=settings, feature_names=["score"], start_date=None, end_date=END
        )
    )
    rows = pa.concat_tables(tables).to_pylist()
    # Oldest first, one row per customer and timestamp: the last row of a customer is its latest.
    assert [r[EVENT_TIMESTAMP] for r in rows] == sorted(r[EVENT_TIMESTAMP] for r in rows)
    assert sorted((r["customer_id"], r["score"]) for r in rows) == [
        ("a", 2.0),
        ("b", 5.0),
        ("c", 7.0),
        ("c", 8.0),
        ("d", 9.0),
    ]
    last = {r["customer_id"]: r["score"] for r in rows}
    assert last == LATEST
    created = {r["customer_id"]: r[CREATED_TIMESTAMP] for r in rows if r["customer_id"] != "c"}
    assert created == {"a": _at(9), "b": _at(1), "d": None}

    # Feast's pull_latest: one row per customer, the timestamps under the source's names.
    config = tie_repo.store.config
    latest = LoyaltyOfflineStore.pull_latest_from_table_or_query(
        config, source, ["customer_id"], ["score"], "updated_at", "loaded_at", T1, END
    ).to_arrow()
    assert latest.column_names == ["customer_id", "score", "updated_at", "loaded_at"]
    assert dict(
        zip(*latest.select(["customer_id", "score"]).to_pydict().values(), strict=True)
    ) == (LATEST)

    # The Ray parts (run in-process here): a customer range as the job reads it, and Feast's
    # pull_latest shape.
    options = PullOptions.from_repo_config(config)
    spec = PullSpec(source, settings, ("score",), None, END, options)
    part = pa.concat_tables(read_part(spec, ReadPart(None, "c"), PullReport())).to_pylist()
    assert sorted((r["customer_id"], r["score"], r[CREATED_TIMESTAMP]) for r in part) == [
        ("a", 2.0, _at(9)),
        ("b", 5.0, _at(1)),
    ]
    feast_spec = PullSpec(
        source,
        settings,
        ("score",),
        None,
        END,
        options,
        timestamp_field="updated_at",
        created_timestamp_column="loaded_at",
        for_feast=True,
        latest=True,
    )
    whole = pa.concat_tables(read_part(feast_spec, ReadPart(whole=True), PullReport()))
    assert whole.column_names == ["customer_id", "score", "updated_at", "loaded_at"]
    assert dict(zip(*whole.select(["customer_id", "score"]).to_pydict().values(), strict=True)) == (
        LATEST
    )


def test_historical_ties_and_a_missing_created_timestamp(
    tie_repo: TieRepo, caplog: pytest.LogCaptureFixture
) -> None:
    entity_df = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d", "c"], "event_timestamp": [T1, T1, T1, T2, T2]}
    )
    out = tie_repo.store.get_historical_features(
        entity_df=entity_df, features=["tie_view:score"]
    ).to_df()
    # d's row has no created timestamp: still served (Feast's PostgreSQL store would not).
    assert out["score"].tolist() == [2.0, 5.0, 8.0, 9.0, 7.0]

    # Without a created timestamp column a tie is unspecified: one row each, and a warning.
    bare = FeatureView(
        name="bare_view",
        entities=[tie_repo.store.get_entity("customer")],
        ttl=timedelta(days=30),
        schema=[Field(name="score", dtype=Float64)],
        source=DwhSource(name="bare_src", table="ties", timestamp_field="updated_at"),
    )
    tie_repo.store.apply([bare])
    with caplog.at_level(logging.WARNING):
        out = tie_repo.store.get_historical_features(
            entity_df=entity_df, features=["bare_view:score"]
        ).to_df()
    assert len(out) == len(entity_df)
    assert out["score"].tolist()[2:] == [8.0, 9.0, 7.0]
    assert out["score"].tolist()[0] in (1.0, 2.0, 3.0)
    assert any("created_timestamp_column" in r.getMessage() for r in caplog.records)
