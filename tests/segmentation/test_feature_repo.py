"""Segmentation over the project's own ``feature_repo``, materialized from Xiva and the DWH.

The other engine tests use a small repository of their own; this one checks the real wiring: the
shipped segments validate against the features the repository serves, and the fast reader +
vectorized path give exactly what stock Feast reads + per-row evaluation give.
"""

from __future__ import annotations

from pathlib import Path

from feast import FeatureStore

from segmentation import DEFAULT_SEGMENTS_DIR, SegmentEngine, load_segments
from tests.support.feast import FeastEnv
from xiva_source.cli import segmentation_main as segmentation_cli
from xiva_source.jobs.materialize import run_materialization


def test_shipped_segments_over_the_materialized_feature_repo(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    summary = run_materialization(str(feast_repo), progress=False)
    assert summary.status == "ok"

    store = FeatureStore(repo_path=str(feast_repo))
    engine = SegmentEngine(store)  # validates every shipped segment against the repo's features
    shipped = {s.name for s in load_segments(DEFAULT_SEGMENTS_DIR)}
    assert set(engine.segments) == shipped and len(shipped) >= 4
    assert {"customer_status", "total_revenue", "churn_score"} <= engine.feature_names

    # Stock path: every customer through get_online_features, segments evaluated per row.
    ids = sorted(set(feast_env.dwh.customer_ids) | set(feast_env.dwh.xiva_only_ids))
    refs = [
        f"{view}:{feature.name}"
        for view in ("customer_features", "customer_dwh_features")
        for feature in store.get_feature_view(view).features
    ]
    # age and last_purchase_days_ago: derived when read by the on-demand view (as of now).
    derived = store.get_on_demand_feature_view("customer_time_features")
    refs += [f"customer_time_features:{feature.name}" for feature in derived.features]
    rows = store.get_online_features(
        features=refs, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()
    expected = {
        name: sorted(
            cid
            for i, cid in enumerate(rows["customer_id"])
            if seg.matches({k: v[i] for k, v in rows.items()})
        )
        for name, seg in engine.segments.items()
    }
    assert any(expected.values()), "the demo data should put someone in some segment"

    sizes = engine.sizes()  # whole population, enumerated from Redis
    assert sizes == {name: len(members) for name, members in expected.items()}
    for name, members in expected.items():
        assert sorted(engine.members(name)) == members
    for cid in ids[:25]:
        assert sorted(engine.segments_of(cid)) == sorted(
            name for name, members in expected.items() if cid in members
        )

    assert segmentation_cli(["--repo", str(feast_repo), "validate"]) == 0
