"""The segmentation reader serves the features that age as of now, like Feast's on-demand view.

The project's own repository (facts stored: ``last_payment_date``, ``birth_date``) on the real
simulator and Redis; the customers are pulled with the pull's clock three days back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from feast import FeatureStore

from segmentation.engine import SegmentEngine
from segmentation.reader import OnlineReader
from segmentation.segment import Segment
from tests.support.feast import FeastEnv

NAMES = ["last_purchase_days_ago", "age"]


def test_reader_and_engine_derive_todays_values_from_facts_pulled_three_days_ago(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    feast_env.set_mode("xiva")
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC) - timedelta(days=3))
    reader = OnlineReader(store)
    assert reader.feature("age").fact == "birth_date"  # derived, read through its fact
    ids = reader.customer_ids()
    assert len(ids) > 100

    # Feast's on-demand view is the reference: the same derivation, as of now.
    feast = store.get_online_features(
        features=[f"customer_time_features:{n}" for n in NAMES],
        entity_rows=[{"customer_id": c} for c in ids],
    ).to_df()
    frame = reader.read(ids, ["city", *NAMES])
    assert list(frame.columns) == ["city", *NAMES]
    for name in NAMES:
        want = feast[name].astype("Int64").tolist()
        assert frame[name].astype("Int64").tolist() == want, name
    assert frame["age"].notna().sum() > 100
    one = ids[0]
    single = reader.read_one(one, NAMES)
    for n in NAMES:
        value = frame.loc[one, n]
        expected = None if value is None or str(value) == "<NA>" else int(str(value))
        assert single[n] == expected

    # A segment over a derived feature: members are the customers whose age is over 40 today.
    engine = SegmentEngine(store, segments=[Segment("over_40", [{">": [{"var": "age"}, 40]}])])
    members = set(engine.members("over_40"))
    ages = frame["age"]
    assert members == set(ages[ages.notna() & (ages > 40)].index)
    assert "age" in engine.feature_names
