"""Preview: per-rule counts and the running intersection equal hand-computed ones (real Redis)."""

from __future__ import annotations

import pytest

from segmentation import Segment, SegmentEngine, UnknownSegmentError
from segmentation.preview import preview
from tests.support.segmentation import look
from tests.support.segmentation.repo import FeastRepo

RICH = {">": [{"var": "total_revenue"}, 1000]}
PARIS = {"==": [{"var": "city"}, "Paris"]}
YOUNG = {"<": [{"var": "age"}, 60]}
SEGMENTS = [
    Segment(
        "pv_target",
        [
            {"name": "rich", "rule": RICH},
            {"name": "paris", "rule": PARIS},
            {"name": "young", "rule": YOUNG},
        ],
    ),
    Segment("pv_rich", [RICH]),
    Segment("pv_rich_paris", [{"segment": "pv_rich"}, {"name": "paris", "rule": PARIS}]),
    Segment("pv_nobody", [{"<": [{"var": "total_revenue"}, -1]}]),
]


@pytest.fixture(scope="module")
def engine(seg_repo: FeastRepo) -> SegmentEngine:
    return SegmentEngine(seg_repo.store, SEGMENTS, chunk=101)  # several chunks


def test_per_rule_counts_and_running_intersection(
    engine: SegmentEngine, seg_repo: FeastRepo
) -> None:
    table = look.rows(seg_repo)
    rich = look.greater("total_revenue", 1000)
    paris = look.equals("city", "Paris")
    young = look.less("age", 60)
    result = preview(engine, "pv_target", sample=7)
    assert result.population == len(table) == 603
    assert [r.name for r in result.rules] == ["rich", "paris", "young"]
    assert [r.passing for r in result.rules] == [
        len(look.members(table, rich)),
        len(look.members(table, paris)),
        len(look.members(table, young)),
    ]
    expected_members = look.members(table, rich, paris, young)
    assert [r.cumulative for r in result.rules] == [
        len(look.members(table, rich)),
        len(look.members(table, rich, paris)),
        len(expected_members),
    ]
    assert result.size == len(expected_members) > 7
    assert list(result.sample) == sorted(expected_members)[:7]  # the first 7 by id
    assert result.sample == preview(engine, "pv_target", sample=7).sample  # deterministic
    assert result.rules[0].rule == RICH
    doc = result.to_dict()
    assert doc["size"] == result.size and doc["rules"][2]["cumulative"] == result.size
    assert doc["rules"][1]["percent"] == pytest.approx(100 * result.rules[1].passing / 603, 1e-3)


def test_a_rule_referencing_another_segment(engine: SegmentEngine, seg_repo: FeastRepo) -> None:
    table = look.rows(seg_repo)
    rich = look.members(table, look.greater("total_revenue", 1000))
    both = look.members(table, look.greater("total_revenue", 1000), look.equals("city", "Paris"))
    result = preview(engine, "pv_rich_paris", sample=3)
    assert result.rules[0].passing == len(rich)
    assert [r.cumulative for r in result.rules] == [len(rich), len(both)]
    assert list(result.sample) == sorted(both)[:3]


def test_empty_segment_subset_and_errors(engine: SegmentEngine, seg_repo: FeastRepo) -> None:
    result = preview(engine, "pv_nobody")
    assert result.size == 0 and result.sample == () and result.rules[0].passing == 0
    ids = sorted(seg_repo.frame.index)[:50]
    table = {k: v for k, v in look.rows(seg_repo).items() if k in set(ids)}
    sub = preview(engine, "pv_rich", customer_ids=ids, sample=0)
    assert sub.population == 50 and sub.sample == ()
    assert sub.size == len(look.members(table, look.greater("total_revenue", 1000)))
    with pytest.raises(UnknownSegmentError, match="pv_unknown"):
        preview(engine, "pv_unknown")
    with pytest.raises(ValueError, match="sample"):
        preview(engine, "pv_rich", sample=-1)
