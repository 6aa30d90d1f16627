"""Point-in-time correct historical retrieval over the DWH and over Xiva's snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from feast import FeatureStore, FeatureView, Field
from feast.types import Float64

from tests.support.feast import FeastEnv
from xiva_source.dwh import get_engine
from xiva_source.features.derived import derive_row
from xiva_source.features.extractor import features_from_360


def _dwh(env: FeastEnv) -> dict[str, dict[str, Any]]:
    with get_engine(env.dwh_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM customer_features_view")).mappings().all()
    return {str(r["customer_id"]): dict(r) for r in rows}


def _updated(row: dict[str, Any]) -> pd.Timestamp:
    return pd.Timestamp(row["updated_at"]).tz_localize("UTC")


def test_dwh_features_are_point_in_time_correct_and_respect_the_ttl(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    store = FeatureStore(repo_path=str(feast_repo))
    dwh = _dwh(feast_env)
    ids = [c for c in feast_env.dwh.shared_ids if dwh[c]["churn_score"] is not None][:4]
    before = [_updated(dwh[c]) - timedelta(days=1) for c in ids]
    after = [_updated(dwh[c]) + timedelta(hours=1) for c in ids]
    entity_df = pd.DataFrame({"customer_id": ids * 2, "event_timestamp": before + after})
    out = store.get_historical_features(
        entity_df=entity_df, features=["customer_dwh_features:churn_score"]
    ).to_df()
    by_row = out.set_index(["customer_id", "event_timestamp"])["churn_score"]
    for cid, b, a in zip(ids, before, after, strict=True):
        assert pd.isna(by_row[(cid, b)])  # the row did not exist yet
        assert by_row[(cid, a)] == pytest.approx(float(dwh[cid]["churn_score"]))

    short = store.get_feature_view("customer_dwh_features")
    short = FeatureView(
        name="churn_short_ttl",
        entities=[store.get_entity("customer")],
        ttl=timedelta(days=1),
        schema=[Field(name="churn_score", dtype=Float64)],
        source=short.batch_source,
    )
    store.apply([short])
    late = [_updated(dwh[c]) + timedelta(days=2) for c in ids]
    fresh = [_updated(dwh[c]) + timedelta(hours=12) for c in ids]
    entity_df = pd.DataFrame({"customer_id": ids * 2, "event_timestamp": late + fresh})
    out = store.get_historical_features(
        entity_df=entity_df, features=["churn_short_ttl:churn_score"], full_feature_names=True
    ).to_df()
    values = out["churn_short_ttl__churn_score"].tolist()
    assert all(pd.isna(v) for v in values[: len(ids)])  # older than the ttl
    assert values[len(ids) :] == pytest.approx([float(dwh[c]["churn_score"]) for c in ids])


def test_xiva_history_comes_from_the_snapshots_of_past_pulls(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    feast_env.set_mode("xiva")
    sim = feast_env.sim
    store = FeatureStore(repo_path=str(feast_repo))
    ids = sim.customer_ids()[50:53]
    old = {c: features_from_360(sim.view_360(c)) for c in ids}
    store.materialize_incremental(end_date=datetime.now(UTC))

    sim.update_customers(ids=ids)
    new = {c: features_from_360(sim.view_360(c)) for c in ids}
    store.materialize_incremental(end_date=datetime.now(UTC))

    rows: list[tuple[str, datetime, Any]] = []
    for c in ids:
        t_old, t_new = old[c]["event_timestamp"], new[c]["event_timestamp"]
        assert t_new > t_old
        rows.append((c, t_old - timedelta(seconds=1), None))
        rows.append((c, t_old + (t_new - t_old) / 2, old[c]["transaction_count"]))
        rows.append((c, t_new + timedelta(seconds=1), new[c]["transaction_count"]))
    entity_df = pd.DataFrame(
        {"customer_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows]}
    )
    out = store.get_historical_features(
        entity_df=entity_df, features=["customer_features:transaction_count"]
    ).to_df()
    got = out.set_index(["customer_id", "event_timestamp"])["transaction_count"]
    for cid, ts, want in rows:
        value = got[(cid, pd.Timestamp(ts))]
        assert pd.isna(value) if want is None else value == want, (cid, ts, value, want)


def test_auto_mode_history_merges_per_feature_and_serves_a_training_set(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC))  # records Xiva snapshots
    sim, dwh = feast_env.sim, _dwh(feast_env)
    xiva = {c: features_from_360(sim.view_360(c)) for c in feast_env.dwh.shared_ids}
    gaps = [c for c in xiva if xiva[c]["birth_date"] is None and dwh[c]["age"] is not None][:3]
    both = [c for c in xiva if xiva[c]["birth_date"] is not None and dwh[c]["age"] is not None][:3]
    assert gaps and both
    now = pd.Timestamp(datetime.now(UTC))
    entity_df = pd.DataFrame({"customer_id": gaps + both, "event_timestamp": now})
    out = store.get_historical_features(
        entity_df=entity_df,
        features=["customer_features:birth_date", "customer_time_features:age"],
    ).to_df()
    born = dict(zip(out["customer_id"], out["birth_date"], strict=True))
    ages = dict(zip(out["customer_id"], out["age"], strict=True))
    for c in gaps:  # Xiva null -> the DWH's fact: its age as of updated_at, aged since
        updated = _updated(dwh[c])
        assert born[c].year == updated.year - dwh[c]["age"]
        assert ages[c] >= dwh[c]["age"]
    for c in both:  # xiva_first
        assert born[c] == pd.Timestamp(xiva[c]["birth_date"])
        assert ages[c] == derive_row(xiva[c], as_of=now.to_pydatetime())["age"]

    # The documented training recipe: labels from customer_churn_history.
    with get_engine(feast_env.dwh_url).connect() as conn:
        labels = pd.read_sql(
            sa.text(
                "SELECT CAST(customer_id AS TEXT) AS customer_id, snapshot_date, churned "
                "FROM customer_churn_history"
            ),
            conn,
        )
    labels["event_timestamp"] = pd.to_datetime(labels.pop("snapshot_date"), utc=True)
    training = store.get_historical_features(
        entity_df=labels, features=store.get_feature_service("ml_features")
    ).to_df()
    assert len(training) == len(labels)
    assert {"churned", "total_revenue", "churn_score", "customer_status"} <= set(training.columns)
    assert training["churn_score"].notna().sum() > 0
