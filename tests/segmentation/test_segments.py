"""Segments: definition, validation against feature names, loading from JSON/YAML, null policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from segmentation import (
    DEFAULT_SEGMENTS_DIR,
    FEATURE_NAME_HINT,
    RuleError,
    Segment,
    SegmentFileError,
    UnknownFeatureError,
    check_segments_dir,
    load_segments,
)

FEATURES = {
    "customer_status", "total_revenue", "transaction_count", "last_purchase_days_ago",
    "customer_tier", "city", "age", "avg_transaction_value", "lifetime_value", "churn_score",
}  # fmt: skip


def test_rules_plain_and_named() -> None:
    seg = Segment(
        "buyers",
        [
            {">": [{"var": "transaction_count"}, 3]},
            {"name": "rich", "rule": {">=": [{"var": "total_revenue"}, 100]}},
        ],
        "d",
    )
    assert [r.name for r in seg.rules] == ["rule1", "rich"]
    assert seg.features == {"transaction_count", "total_revenue"}
    assert seg.matches({"transaction_count": 5, "total_revenue": 100.0})
    assert not seg.matches({"transaction_count": 5, "total_revenue": 99.0})
    assert Segment.from_dict(seg.to_dict()) == seg


def test_unknown_feature_lists_names_suggestions_and_hint() -> None:
    seg = Segment(
        "s",
        [
            {
                "name": "r",
                "rule": {
                    "and": [{"==": [{"var": "status"}, "active"]}, {">": [{"var": "revenue"}, 1]}]
                },
            }
        ],
    )
    with pytest.raises(UnknownFeatureError) as err:
        seg.validate(FEATURES)
    e = err.value
    assert e.unknown == ["revenue", "status"]
    assert "customer_status" in e.suggestions["status"]
    assert "total_revenue" in e.suggestions["revenue"]
    text = str(e)
    assert FEATURE_NAME_HINT in text
    assert "segment 's'" in text and "rule 'r'" in text and "did you mean" in text


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"method": [{"var": "age"}, "__class__"]}], "forbidden"),
        ([{"map": [[1], {"var": ""}]}], "unknown operator 'map'"),
        ([[1, 2]], "must be a JSON object"),
        (["age > 3"], "must be a JSON object"),
        ([{"<": [{"var": "age"}]}], "takes 2 to 3 argument"),
        ([{">": [{"var": "age"}, 1, 2]}], "takes 2 argument"),
        ([{"var": {"var": "x"}}], "literal, non-empty string"),
        ([{"missing": [{"var": "x"}]}], "literal feature names"),
        ([], "non-empty list of rules"),
    ],
)
def test_malformed_segment_rules(rules: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message) as err:
        Segment("bad", rules)
    assert "segment 'bad'" in str(err.value) and "Fix:" in str(err.value)


def test_bad_segment_names_and_keys() -> None:
    with pytest.raises(RuleError, match="invalid segment name"):
        Segment("has space", [{"!!": 1}])
    with pytest.raises(RuleError, match="unknown key"):
        Segment.from_dict({"name": "x", "rules": [{"!!": 1}], "rulez": []})


# --- null policy -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"<": [{"var": "age"}, 30]}, False),
        ({">=": [{"var": "age"}, 30]}, False),
        ({"<=": [{"var": "age"}, 30]}, False),
        ({"<=": [18, {"var": "age"}, 30]}, False),
        ({"==": [{"var": "age"}, 0]}, False),
        ({"==": [{"var": "age"}, None]}, False),
        ({"!=": [{"var": "age"}, 30]}, False),
        ({"!==": [{"var": "city"}, "Paris"]}, False),
        ({"in": [{"var": "city"}, ["Paris", None]]}, False),
        ({"!": {"var": "age"}}, True),
        ({"!!": {"var": "age"}}, False),
        ({"missing": ["age"]}, True),
        ({">": [{"+": [{"var": "age"}, 1]}, 0]}, False),
        ({"<": [{"/": [{"var": "total_revenue"}, 0]}, 1]}, False),
        ({"<": [{"var": "city"}, 5]}, False),
        ({">": [{"var": ["age", 40]}, 30]}, True),
    ],
)
def test_missing_never_satisfies_a_comparison(rule: Any, expected: bool) -> None:
    seg = Segment("s", [rule])
    for missing in (None, float("nan"), pd.NA, np.float64("nan")):
        assert seg.matches({"age": missing, "city": missing, "total_revenue": 5.0}) is expected
    frame = pd.DataFrame(
        {"age": pd.array([None], dtype="Int64"), "city": [None], "total_revenue": [5.0]}
    )
    assert bool(seg.mask(frame).iloc[0]) is expected


def test_standard_semantics_stay_available() -> None:
    from segmentation import evaluate

    rule = {"!=": [{"var": "age"}, 30]}
    assert evaluate(rule, {"age": None}) is True  # standard JsonLogic: null != 30
    assert Segment("s", [rule]).matches({"age": None}) is False  # the segment null policy
    assert evaluate({"==": [None, None]}) is True
    assert Segment("s", [{"==": [{"var": "age"}, None]}]).matches({"age": None}) is False


# --- files -------------------------------------------------------------------------------------
def test_shipped_segments_are_valid() -> None:
    segments = load_segments(DEFAULT_SEGMENTS_DIR, feature_names=FEATURES)
    names = {s.name for s in segments}
    assert {"active_frequent_buyers", "lapsed_high_value", "young_urban", "at_risk"} <= names
    assert all(s.description for s in segments)


def test_segments_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one.json").write_text(
        json.dumps({"name": "one", "rules": [{"==": [{"var": "city"}, "Lyon"]}]})
    )
    (tmp_path / "two.yml").write_text(
        "segments:\n  - name: two\n    rules:\n      - {'>': [{'var': 'age'}, 3]}\n"
    )
    (tmp_path / "notes.txt").write_text("ignored")
    monkeypatch.setenv("SEGMENTS_DIR", str(tmp_path))
    assert [s.name for s in load_segments()] == ["one", "two"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.json", "{not json", "invalid JSON: line 1, column 2: Expecting property name"),
        ("b.yaml", "? [a, b]\n: 1\n", "invalid YAML"),  # an unhashable (list) key
        (
            "g.yaml",
            "name: g\nrules:\n  - {'>': [{'var': 'age'}, 3]\n  - x\n",
            "invalid YAML: line 4, column 3: expected ',' or '}', but got '-'",
        ),
        ("c.yaml", "- 3\n", "segment definition is an object"),
        ("d.json", "42", "expected a segment object"),
        (
            "e.json",
            json.dumps({"name": "e", "rules": [{"==": [{"var": "status"}, "x"]}]}),
            "status",
        ),
        ("f.json", "[" * 100_000, "invalid JSON"),
    ],
)
def test_bad_files_are_reported(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(SegmentFileError, match=message) as err:
        load_segments(tmp_path, feature_names=FEATURES)
    assert name in str(err.value) and "Fix:" in str(err.value)


def test_check_collects_every_error(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_text(json.dumps({"name": "ok", "rules": [{"!!": {"var": "age"}}]}))
    (tmp_path / "dup.json").write_text(
        json.dumps({"name": "ok", "rules": [{"!!": {"var": "age"}}]})
    )
    (tmp_path / "bad.json").write_text(
        json.dumps({"name": "bad", "rules": [{"==": [{"var": "agee"}, 1]}]})
    )
    segments, errors = check_segments_dir(tmp_path, feature_names=FEATURES)
    assert [s.name for s in segments] == ["ok"]
    text = "\n".join(map(str, errors))
    assert len(errors) == 2 and "also defined" in text and "'agee' (did you mean age?)" in text


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SegmentFileError, match="does not exist"):
        load_segments(tmp_path / "nope")
