"""Features that age: facts stored, ``last_purchase_days_ago`` and ``age`` derived as of the read.

On the real simulator, PostgreSQL (DWH + snapshot table) and Redis, through stock Feast:
customers pulled three days back read today's values online; training sets get each label's
values; a label before a customer's first ``lastUpdate`` gets nulls; the DWH's counts age too; a
store still holding the old stored counts does not crash.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from feast import FeatureStore

from tests.support.ageing import days_since, years_between
from tests.support.feast import FeastEnv
from xiva_source import dwh
from xiva_source.dwh import get_engine
from xiva_source.features.extractor import features_from_360

DERIVED = ["customer_time_features:last_purchase_days_ago", "customer_time_features:age"]


def _date(value: Any) -> date | None:
    """The UTC date of a 360 view's date or timestamp text (None when absent)."""
    if value is None:
        return None
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()


def _minus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a common year: the latest consistent date is the 28th
        return day.replace(year=day.year - years, day=28)


def _facts(view: dict[str, Any]) -> tuple[date | None, date | None]:
    person = view["customer"].get("engagedIndividual") or {}
    return _date(view["financial"].get("last_payment_date")), _date(person.get("birthDate"))


def _last_update(view: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(view["customer"]["lastUpdate"].replace("Z", "+00:00"))


def test_customers_pulled_three_days_ago_read_todays_day_counts_and_ages_online(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    feast_env.set_mode("xiva")
    sim = feast_env.sim
    store = FeatureStore(repo_path=str(feast_repo))
    pulled_at = datetime.now(UTC) - timedelta(days=3)  # the pull's clock: three days back
    store.materialize_incremental(end_date=pulled_at)
    views = {c: sim.view_360(c) for c in sim.customer_ids()}
    pulled = [c for c, v in views.items() if _last_update(v) <= pulled_at]
    assert len(pulled) > 100

    rows = [{"customer_id": c} for c in pulled]
    before = datetime.now(UTC).date()
    online = store.get_online_features(features=DERIVED, entity_rows=rows).to_dict()
    service = store.get_online_features(
        features=store.get_feature_service("ml_features"), entity_rows=rows
    ).to_dict()
    today = datetime.now(UTC).date()
    assert before == today, "the test crossed midnight UTC; run it again"

    aged = 0
    for i, cid in enumerate(pulled):
        paid, born = _facts(views[cid])
        want = {
            "last_purchase_days_ago": days_since(paid, today),
            "age": years_between(born, today),
        }
        got = {name: online[name][i] for name in want}
        assert got == want, cid
        assert {name: service[name][i] for name in want} == want, cid
        aged += paid is not None
    assert aged > 100  # most customers have a payment date: 3 days short before the fix
    assert any(v is not None for v in service["birth_date"])  # the fact is served too


def test_training_sets_get_each_labels_values_and_nulls_before_the_first_last_update(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    feast_env.set_mode("xiva")
    sim = feast_env.sim
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC))
    views = {c: sim.view_360(c) for c in sim.customer_ids()}
    ids = [c for c, v in views.items() if all(_facts(v))][:6]
    assert len(ids) == 6

    labels: list[tuple[str, datetime]] = []
    for cid in ids:
        first = _last_update(views[cid])
        labels += [
            (cid, first - timedelta(days=1)),  # before Xiva ever described it: nulls
            (cid, first + timedelta(hours=1)),
            (cid, first + timedelta(days=400)),  # a year later: older, longer since paying
        ]
    # A label column of any name: the offline store hands each label's time to the derivation.
    entity_df = pd.DataFrame(
        {"customer_id": [c for c, _ in labels], "label_time": [t for _, t in labels]}
    )
    out = store.get_historical_features(
        entity_df=entity_df,
        features=[*DERIVED, "customer_features:city", "customer_features:birth_date"],
    ).to_df()
    assert "__as_of" not in out.columns
    assert len(out) == len(labels)
    got = out.set_index(["customer_id", "label_time"])
    for cid, at in labels:
        row = got.loc[(cid, pd.Timestamp(at))]  # type: ignore[index]
        paid, born = _facts(views[cid])
        if at < _last_update(views[cid]):
            assert pd.isna(row["age"]) and pd.isna(row["last_purchase_days_ago"]), (cid, at)
            assert pd.isna(row["city"]) and pd.isna(row["birth_date"])
            continue
        assert row["age"] == years_between(born, at.date()), (cid, at)
        want_days = days_since(paid, at.date())
        assert (pd.isna(row["last_purchase_days_ago"]) and want_days is None) or row[
            "last_purchase_days_ago"
        ] == want_days, (cid, at)
    days = got["last_purchase_days_ago"]
    later = days.loc[[(c, pd.Timestamp(t)) for c, t in labels[2::3]]]
    sooner = days.loc[[(c, pd.Timestamp(t)) for c, t in labels[1::3]]]
    assert (later.to_numpy() - sooner.to_numpy() >= 399).all()  # not one value for every label


def _dwh_rows(env: FeastEnv) -> dict[str, dict[str, Any]]:
    with get_engine(env.dwh_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM customer_features_view")).mappings().all()
    return {str(r["customer_id"]): dict(r) for r in rows}


def test_the_dwhs_counts_age_like_xivas_facts(feast_env: FeastEnv, feast_repo: Path) -> None:
    feast_env.set_mode("dwh")
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC))
    rows = _dwh_rows(feast_env)
    ids = [
        c
        for c, r in rows.items()
        if r["age"] is not None and r["last_purchase_days_ago"] is not None
    ][:20]
    assert len(ids) == 20
    online = store.get_online_features(
        features=DERIVED, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()
    today = datetime.now(UTC).date()
    for i, cid in enumerate(ids):
        updated = rows[cid]["updated_at"].date()
        # the count plus the days since updated_at
        days = rows[cid]["last_purchase_days_ago"] + (today - updated).days
        assert online["last_purchase_days_ago"][i] == days, cid
        # the latest birth date consistent with the row: updated_at's date minus the age
        born = _minus_years(updated, rows[cid]["age"])
        assert online["age"][i] == years_between(born, today), cid

    # The same facts in a training set: as of updated_at the DWH's own counts come back.
    entity_df = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": [pd.Timestamp(rows[c]["updated_at"], tz="UTC") for c in ids],
        }
    )
    out = store.get_historical_features(entity_df=entity_df, features=DERIVED).to_df()
    by_id = out.set_index("customer_id")
    for cid in ids:
        assert by_id.loc[cid, "age"] == rows[cid]["age"], cid
        assert by_id.loc[cid, "last_purchase_days_ago"] == rows[cid]["last_purchase_days_ago"]


def test_a_store_with_the_old_stored_counts_serves_nulls_until_reloaded(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    """An existing deployment: online hashes and snapshot rows hold last_purchase_days_ago / age."""
    feast_env.set_mode("xiva")
    sim = feast_env.sim
    store = FeatureStore(repo_path=str(feast_repo))
    cid = sim.customer_ids()[5]
    options = store.config.offline_store
    old = pa.table(
        {
            "customer_id": [cid],
            "last_purchase_days_ago": pa.array([12], pa.int64()),
            "age": pa.array([40], pa.int64()),
            "event_timestamp": pa.array(
                [datetime(2020, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    dwh.append_snapshots(
        feast_env.dwh_url,
        options.snapshot_table,
        old,
        {"last_purchase_days_ago": pa.int64(), "age": pa.int64()},
    )
    # The old view's fields in the customer's online hash (what an old materialization wrote).
    from feast.protos.feast.types.Value_pb2 import Value

    from segmentation.reader import OnlineReader
    from xiva_source.feast_plugin.redis_format import field_name

    reader = OnlineReader(store)
    reader.client.hset(
        reader.key(cid),  # type: ignore[arg-type]
        mapping={
            field_name("customer_features", "age"): Value(int64_val=40).SerializeToString(),
            field_name("customer_features", "last_purchase_days_ago"): Value(
                int64_val=12
            ).SerializeToString(),
        },
    )
    online = store.get_online_features(features=DERIVED, entity_rows=[{"customer_id": cid}])
    assert online.to_dict()["age"] == [None]  # not the frozen 40: no fact yet
    assert reader.read_one(cid, ["age", "last_purchase_days_ago"]) == {
        "age": None,
        "last_purchase_days_ago": None,
    }

    # `xiva-source materialize --full` (here: Feast's own materialization) stores the facts; the
    # snapshot table gains the fact columns in place and old rows read as null facts.
    store.materialize(start_date=datetime(2000, 1, 1, tzinfo=UTC), end_date=datetime.now(UTC))
    _, born = _facts(sim.view_360(cid))
    today = datetime.now(UTC).date()
    online = store.get_online_features(features=DERIVED, entity_rows=[{"customer_id": cid}])
    assert online.to_dict()["age"] == [years_between(born, today)]
    training = store.get_historical_features(
        entity_df=pd.DataFrame(
            {"customer_id": [cid], "event_timestamp": [pd.Timestamp("2020-06-01", tz="UTC")]}
        ),
        features=DERIVED,
    ).to_df()
    assert training["age"].isna().all()  # the 2020 row held only the old counts
    first = features_from_360(sim.view_360(cid))
    assert first["birth_date"] is None or first["birth_date"].date() == born


@pytest.mark.parametrize("mode", ["auto"])
def test_auto_mode_merges_facts_and_serves_derived_values(
    feast_env: FeastEnv, feast_repo: Path, mode: str
) -> None:
    feast_env.set_mode(mode)
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC))
    rows = _dwh_rows(feast_env)
    sim = feast_env.sim
    today = datetime.now(UTC).date()
    dwh_only = [c for c in feast_env.dwh.dwh_only_ids if rows[c]["age"] is not None][:5]
    shared = [c for c in feast_env.dwh.shared_ids if _facts(sim.view_360(c))[1] is not None][:5]
    ids = dwh_only + shared
    online = store.get_online_features(
        features=DERIVED, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()
    for i, cid in enumerate(dwh_only):
        updated = rows[cid]["updated_at"].date()
        born = _minus_years(updated, rows[cid]["age"])
        assert online["age"][i] == years_between(born, today), cid
    for i, cid in enumerate(shared, start=len(dwh_only)):
        assert online["age"][i] == years_between(_facts(sim.view_360(cid))[1], today), (
            cid
        )  # xiva_first
