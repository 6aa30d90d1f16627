"""Segments of segments: ``{"segment": name}`` references, evaluation order, cycles, unknowns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segmentation import (
    RuleError,
    Segment,
    SegmentCycleError,
    SegmentEngine,
    SegmentFileError,
    SegmentReferenceError,
    UnknownSegmentReferenceError,
    check_references,
    check_segments_dir,
    evaluate,
    evaluate_frame,
    evaluation_order,
    load_segments,
)
from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main

FEATURES = {"x", "city"}


def _seg(name: str, *rules: dict[str, object], **kw: object) -> Segment:
    return Segment(name, list(rules), **kw)  # type: ignore[arg-type]


ADULT = _seg("adult", {">=": [{"var": "x"}, 18]})
PARIS_ADULT = _seg("paris_adult", {"segment": "adult"}, {"==": [{"var": "city"}, "Paris"]})
NOT_PARIS_ADULT = _seg("not_paris_adult", {"!": {"segment": "paris_adult"}})
EITHER = _seg(
    "either", {"or": [{"segment": "paris_adult"}, {"<": [{"var": "x"}, 5]}, {"segment": "adult"}]}
)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    x = rng.integers(0, 40, n).astype("float64")
    x[rng.random(n) < 0.1] = np.nan
    city = rng.choice(np.array(["Paris", "Lyon", None], dtype=object), n)
    return pd.DataFrame({"x": x, "city": city}, index=[f"C{i:04d}" for i in range(n)])


def test_order_puts_references_first_and_keeps_the_given_order() -> None:
    given = [EITHER, NOT_PARIS_ADULT, PARIS_ADULT, ADULT]
    order = [s.name for s in evaluation_order(given)]
    assert order == ["adult", "paris_adult", "either", "not_paris_adult"]
    plain = [_seg("b", {"var": "x"}), _seg("a", {"var": "x"})]
    assert [s.name for s in evaluation_order(plain)] == ["b", "a"]


def test_chains_evaluate_like_the_per_row_path() -> None:
    frame = _frame()
    table = evaluate_frame([NOT_PARIS_ADULT, EITHER, PARIS_ADULT, ADULT], frame)
    assert list(table.columns) == ["not_paris_adult", "either", "paris_adult", "adult"]
    for cid, row in frame.iterrows():
        x = None if pd.isna(row["x"]) else row["x"]
        adult = x is not None and x >= 18
        paris_adult = adult and row["city"] == "Paris"
        assert table.at[cid, "adult"] == adult
        assert table.at[cid, "paris_adult"] == paris_adult
        assert table.at[cid, "not_paris_adult"] == (not paris_adult)
        assert table.at[cid, "either"] == (paris_adult or (x is not None and x < 5) or adult)
        feats = {"x": x, "city": row["city"]}
        assert PARIS_ADULT.matches(feats, {"adult": adult}) == paris_adult
        refs = {"paris_adult": paris_adult, "adult": adult}
        assert EITHER.matches(feats, refs) == table.at[cid, "either"]
    assert 0 < table["paris_adult"].sum() < table["adult"].sum() < len(frame)
    assert list(frame.columns) == ["x", "city"]  # the caller's frame is left alone


def test_per_row_fallback_sees_references() -> None:
    # `cat` has no column implementation: the `or` runs per row and must read the reference.
    seg = _seg(
        "odd", {"or": [{"segment": "adult"}, {"==": [{"cat": ["a", {"var": "city"}]}, "aLyon"]}]}
    )
    frame = _frame()
    table = evaluate_frame([seg, ADULT], frame)
    assert seg.fallbacks
    expected = table["adult"] | (frame["city"] == "Lyon")
    assert table["odd"].tolist() == expected.tolist()


def test_a_reference_is_eligibility_whatever_the_group() -> None:
    held = _seg("held", {">=": [{"var": "x"}, 18]}, holdout=0.9)
    ref = _seg("ref", {"segment": "held"})
    table = evaluate_frame([held, ref], _frame())
    assert table["ref"].tolist() == table["held"].tolist()  # 90% held out, all referenced


def test_reference_rules_are_checked() -> None:
    with pytest.raises(RuleError, match="literal, non-empty string"):
        _seg("s", {"segment": {"var": "x"}})
    with pytest.raises(RuleError, match="takes 1 argument"):
        _seg("s", {"segment": ["a", "b"]})
    with pytest.raises(RuleError, match="unknown operator 'segment'"):
        evaluate({"segment": "a"}, {})  # plain JsonLogic has no segments
    with pytest.raises(RuleError, match="'adult', which was not evaluated first"):
        PARIS_ADULT.matches({"x": 30, "city": "Paris"})
    with pytest.raises(UnknownSegmentReferenceError, match="unknown segment 'adult'"):
        evaluate_frame([PARIS_ADULT], _frame())
    assert PARIS_ADULT.references == {"adult": ("rule1", "$.segment")}
    assert Segment.from_dict(EITHER.to_dict()) == EITHER


def test_cycles_and_unknown_references_name_the_segments() -> None:
    a = _seg("a", {"segment": "b"})
    b = _seg("b", {"and": [{"var": "x"}, {"segment": "a"}]})
    me = _seg("me", {"segment": "me"})
    lost = _seg("lost", {"segment": "nowhere"})
    after = _seg("after", {"segment": "a"})
    ok, errors = check_references([a, b, me, lost, after, ADULT])
    assert [s.name for s in ok] == ["adult"]
    text = [str(e) for e in errors]
    assert any("cycle: a -> b -> a" in t and "segment 'a'" in t for t in text)
    assert any("cycle: me -> me" in t for t in text)
    unknown = next(e for e in errors if isinstance(e, UnknownSegmentReferenceError))
    assert unknown.name == "nowhere" and unknown.segment == "lost"
    assert "known: a, adult, after, b, lost, me" in str(unknown)
    assert any("segment 'after'" in t and "references segment 'a', which has an error" in t
               for t in text)  # fmt: skip
    assert all(isinstance(e, SegmentReferenceError) for e in errors)
    with pytest.raises(SegmentCycleError, match=r"a -> b -> a"):
        evaluation_order([a, b])


def _write(d: Path, name: str, data: object) -> None:
    (d / name).write_text(json.dumps(data))


def test_loader_reports_cycles_and_unknown_references_by_file(tmp_path: Path) -> None:
    d = tmp_path / "segs"
    d.mkdir()
    _write(d, "adult.json", ADULT.to_dict())
    _write(d, "paris.json", PARIS_ADULT.to_dict())
    _write(d, "loop.json", [_seg("p", {"segment": "q"}).to_dict(),
                            _seg("q", {"segment": "p"}).to_dict()])  # fmt: skip
    _write(d, "typo.json", _seg("typo", {"segment": "adutl"}).to_dict())
    segments, errors = check_segments_dir(d, feature_names=FEATURES)
    assert sorted(s.name for s in segments) == ["adult", "paris_adult"]
    messages = sorted(str(e) for e in errors)
    assert len(messages) == 2
    assert "loop.json: segment 'p', rule 'rule1', at $.segment" in messages[0]
    assert "cycle: p -> q -> p" in messages[0]
    assert "typo.json" in messages[1] and "unknown segment 'adutl'" in messages[1]
    assert "known: adult, p, paris_adult, q, typo" in messages[1]
    with pytest.raises(SegmentFileError, match=r"unknown segment .adutl."):
        load_segments(d, feature_names=FEATURES)


def test_validate_command_rejects_a_cycle(
    seg_repo: FeastRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "segs"
    d.mkdir()
    _write(d, "a.json", _seg("a", {"segment": "b"}, {">": [{"var": "age"}, 1]}).to_dict())
    _write(d, "b.json", _seg("b", {"segment": "a"}).to_dict())
    code = segmentation_main(["--repo", str(seg_repo.path), "--segments-dir", str(d), "validate"])
    out, err = capsys.readouterr()
    assert code == 1 and "0 segment(s) valid, 1 error(s)" in out
    assert "cycle: a -> b -> a" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def ref_engine(seg_repo: FeastRepo) -> SegmentEngine:
    segments = [
        _seg("in_paris_adult", {"segment": "paris"}, {">=": [{"var": "age"}, 30]}),
        _seg("paris", {"==": [{"var": "city"}, "Paris"]}),
        _seg("not_paris", {"!": {"segment": "paris"}}),
    ]
    return SegmentEngine(seg_repo.store, segments)


def test_engine_evaluates_references_in_order(
    ref_engine: SegmentEngine, seg_repo: FeastRepo
) -> None:
    assert ref_engine.order == ["paris", "in_paris_adult", "not_paris"]
    table = ref_engine.evaluate()
    frame = seg_repo.frame.reindex(table.index)
    fresh = ~frame.index.isin(seg_repo.stale_ids)
    paris = (frame["city"] == "Paris").fillna(False).to_numpy(dtype=bool) & fresh
    adult = (frame["age"] >= 30).fillna(False).to_numpy(dtype=bool) & fresh
    assert table["paris"].tolist() == paris.tolist()
    assert table["in_paris_adult"].tolist() == (paris & adult).tolist()
    assert table["not_paris"].tolist() == (~paris).tolist()
    # Asked for alone: what it references is evaluated too, only it is returned.
    alone = ref_engine.evaluate(segments=["in_paris_adult"])
    assert list(alone.columns) == ["in_paris_adult"]
    assert alone["in_paris_adult"].tolist() == table["in_paris_adult"].tolist()
    members = ref_engine.members("in_paris_adult")
    assert members == [c for c, ok in zip(table.index, paris & adult, strict=True) if ok]
    one = members[0]
    assert ref_engine.segments_of(one) == ["in_paris_adult", "paris"]
    assert ref_engine.sizes()["not_paris"] == len(table) - int(paris.sum())


def test_engine_refuses_unknown_references(seg_repo: FeastRepo) -> None:
    with pytest.raises(UnknownSegmentReferenceError, match=r"unknown segment 'paris' \(known: x\)"):
        SegmentEngine(seg_repo.store, [_seg("x", {"segment": "paris"})])
    loop = [_seg("x", {"segment": "y"}), _seg("y", {"segment": "x"})]
    with pytest.raises(SegmentCycleError, match="x -> y -> x"):
        SegmentEngine(seg_repo.store, loop)
