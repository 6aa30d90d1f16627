"""The engine on a real Feast repo and the real Redis: reader, staleness, memberships, export."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from segmentation import (
    DEFAULT_SEGMENTS_DIR,
    OnlineReader,
    Segment,
    SegmentEngine,
    UnknownFeatureError,
    UnknownSegmentError,
    load_segments,
)
from tests.support.segmentation.repo import FeastRepo, stored_rows, write_online

SEGMENTS = [
    Segment("paris_adults", [{">=": [{"var": "age"}, 30]}, {"==": [{"var": "city"}, "Paris"]}]),
    Segment("big_spenders", [{">": [{"var": "total_revenue"}, 1500]}]),
    Segment("likely_churn", [{">=": [{"var": "churn_score"}, 0.7]}]),
    Segment("no_status", [{"missing": ["customer_status"]}]),
]


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b)
    return bool(a == b)


@pytest.fixture(scope="module")
def engine(seg_repo: FeastRepo) -> SegmentEngine:
    return SegmentEngine(seg_repo.store, SEGMENTS)


def test_population_is_enumerated_with_scan(seg_repo: FeastRepo) -> None:
    reader = OnlineReader(seg_repo.store)
    assert reader.customer_ids() == sorted(seg_repo.frame.index)


def test_scan_ignores_a_project_whose_name_ends_like_ours(seg_repo: FeastRepo) -> None:
    reader = OnlineReader(seg_repo.store)
    foreign = reader.layout.entity_key("X1") + b"other_" + seg_repo.project.encode()
    reader.client.hset(foreign, "f", "v")  # type: ignore[arg-type]
    try:
        assert "X1" not in reader.customer_ids()
        assert reader.customer_id_of(foreign) is None
    finally:
        reader.client.delete(foreign)


def test_fast_reader_equals_get_online_features(seg_repo: FeastRepo) -> None:
    reader = OnlineReader(seg_repo.store, max_age=None, batch_size=97)
    ids = [*list(seg_repo.frame.index[:150]), "S00001", "NOBODY"]
    features = sorted(reader.features)
    ours = reader.read(ids, features)
    # A derived feature is served by the on-demand view (as of now, as the reader derives it).
    views = {f: "customer_time_features" if reader.features[f].fact else None for f in features}
    refs = [f"{views[f] or reader.features[f].view}:{f}" for f in features]
    stock = seg_repo.store.get_online_features(
        features=refs, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()
    for f in features:
        mine = [None if pd.isna(v) else v for v in ours[f].astype(object)]
        assert all(_same(a, b) for a, b in zip(mine, stock[f], strict=True)), f
    assert ours.loc["NOBODY"].isna().all()
    assert str(ours["age"].dtype) == "Int64" and ours["total_revenue"].dtype == "float64"
    one = reader.read_one("C00001", features)
    assert all(_same(one[f], stock[f][1]) for f in features)


def test_nulls_round_trip(seg_repo: FeastRepo) -> None:
    reader = OnlineReader(seg_repo.store)
    row = reader.read_one("C00000", ["age", "total_revenue", "customer_status", "churn_score"])
    assert row == {
        "age": None,
        "total_revenue": None,
        "customer_status": "active",
        "churn_score": None,
    }


def test_stale_values_read_as_missing(seg_repo: FeastRepo) -> None:
    feats = ["age", "city", "churn_score"]
    fresh = OnlineReader(seg_repo.store)
    assert fresh.read_one("S00001", feats)["age"] is None  # 5 days old, ttl 2 days
    ignore = OnlineReader(seg_repo.store, max_age=None)
    assert ignore.read_one("S00001", feats)["age"] == 19
    wider = OnlineReader(seg_repo.store, max_age={"customer_features": dt.timedelta(days=7)})
    assert wider.read_one("S00001", feats)["age"] == 19
    tight = OnlineReader(seg_repo.store, max_age=dt.timedelta(minutes=30))
    frame = tight.read(["C00001"], feats)
    assert frame.isna().all(axis=None)  # both views were written 1-2 hours ago
    later = seg_repo.now + dt.timedelta(days=3)
    assert fresh.read(["C00001"], feats, now=later)["age"].isna().all()


def test_engine_validates_feature_names(seg_repo: FeastRepo) -> None:
    with pytest.raises(UnknownFeatureError, match="did you mean customer_status"):
        SegmentEngine(seg_repo.store, [Segment("x", [{"==": [{"var": "status"}, "a"]}])])


def test_shipped_segments_load_against_the_repo(seg_repo: FeastRepo) -> None:
    engine = SegmentEngine(seg_repo.store, segments_dir=DEFAULT_SEGMENTS_DIR)
    assert set(engine.segments) == {s.name for s in load_segments()}
    sizes = engine.sizes()
    assert sizes["young_urban"] > 0 and sizes["at_risk"] > 0


def _expected(seg_repo: FeastRepo, seg: Segment, stale_as_missing: bool = True) -> list[str]:
    frame = seg_repo.frame.join(seg_repo.dwh, how="left", rsuffix="_dwh")
    out = []
    for cid, row in frame.iterrows():
        values = {str(k): v for k, v in row.items()}
        if stale_as_missing and cid in seg_repo.stale_ids:
            values = {k: (None if k in seg_repo.frame.columns else v) for k, v in values.items()}
        if seg.matches(values):
            out.append(str(cid))
    return sorted(out)


def test_members_sizes_and_segments_of(engine: SegmentEngine, seg_repo: FeastRepo) -> None:
    for seg in SEGMENTS:
        assert engine.members(seg.name) == _expected(seg_repo, seg), seg.name
    sizes = engine.sizes()
    assert sizes == {s.name: len(_expected(seg_repo, s)) for s in SEGMENTS}
    assert sizes["no_status"] > 0
    some = ["C00001", "C00004", "C00012", "S00002", "NOBODY"]
    assert engine.members("big_spenders", some) == [
        c for c in some if c in _expected(seg_repo, SEGMENTS[1])
    ]
    expected = {s.name: set(_expected(seg_repo, s)) for s in SEGMENTS}
    for cid in [*seg_repo.frame.index[:80], "S00000"]:
        assert engine.segments_of(cid) == [n for n in expected if cid in expected[n]], cid
    assert engine.segments_of("NOBODY") == ["no_status"]  # an unknown customer: all missing
    assert "no_status" in engine.segments_of("S00001")  # stale status reads as missing


def test_unknown_segment(engine: SegmentEngine) -> None:
    with pytest.raises(UnknownSegmentError, match="paris_adults"):
        engine.members("nope")


def test_refresh_memberships_deltas_history(seg_repo: FeastRepo) -> None:
    engine = SegmentEngine(seg_repo.store, SEGMENTS, history_limit=3)
    seg = "big_spenders"
    engine.memberships.delete(seg)
    first = engine.refresh([seg])[seg]
    members = engine.members(seg)
    assert first.size == len(members) > 0 and first.joined == members and first.left == []
    assert engine.stored_members(seg) == members
    assert engine.is_member(seg, members[0]) and not engine.is_member(seg, "C00000")
    # change two customers, refresh, and check who joined and left
    leaver, joiner = members[0], "C00001"
    changed = stored_rows(seg_repo.frame.loc[[leaver, joiner]])
    changed["total_revenue"] = [1.0, 9999.0]
    changed["event_timestamp"] = seg_repo.now
    write_online(seg_repo.store, "customer_features", changed)
    try:
        second = engine.refresh([seg])[seg]
        assert second.joined == [joiner] and second.left == [leaver]
        assert engine.joined(seg) == [joiner] and engine.left(seg) == [leaver]
        assert engine.is_member(seg, joiner) and not engine.is_member(seg, leaver)
        for _ in range(3):
            engine.refresh([seg])
        history = engine.history(seg)
        assert len(history) == 3  # trimmed to history_limit
        assert history[0].size == second.size and history[0].joined == 0
        assert engine.history(seg, limit=1) == history[:1]
    finally:
        original = stored_rows(seg_repo.frame.loc[[leaver, joiner]])
        original["event_timestamp"] = seg_repo.now + dt.timedelta(seconds=1)
        write_online(seg_repo.store, "customer_features", original)
    assert engine.refresh([seg])[seg].left == [joiner]


def test_refresh_to_empty_and_temp_keys_cleaned(seg_repo: FeastRepo) -> None:
    never = Segment("never", [{"<": [{"var": "age"}, -1]}])
    engine = SegmentEngine(seg_repo.store, [never])
    engine.memberships.delete("never")
    assert engine.refresh()["never"].size == 0
    assert engine.stored_members("never") == [] and not engine.is_member("never", "C00001")
    client = engine.reader.client
    assert list(client.scan_iter(match=f"segmentation:{seg_repo.project}:tmp:*")) == []
    generations = client.scan_iter(match=f"segmentation:{seg_repo.project}:gen:*")
    assert all(client.ttl(k) == -1 for k in generations)  # every key written was switched in
    assert not client.exists(engine.memberships.lock_key)


def test_export_csv_and_parquet(engine: SegmentEngine, tmp_path: Path) -> None:
    n = engine.export("paris_adults", tmp_path / "out.csv")
    csv = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert list(csv.columns) == ["customer_id", "group"] and n == len(csv) > 0
    assert set(csv["group"]) == {"target"}  # no holdout, splits or global control here
    assert csv["customer_id"].tolist() == engine.members("paris_adults")
    engine.export("paris_adults", tmp_path / "out.parquet", with_features=True)
    pq = pd.read_parquet(tmp_path / "out.parquet")
    assert set(pq.columns) == {"customer_id", "group", "age", "city"}
    assert (pq["city"] == "Paris").all() and (pq["age"] >= 30).all()
    from segmentation import SegmentationError

    with pytest.raises(SegmentationError, match=r"csv or \*\.parquet"):
        engine.export("paris_adults", tmp_path / "out.xlsx")
