"""The vectorized path gives exactly the per-row results (differential, property-based)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentation import Segment, compile_rule

INTS = st.one_of(st.none(), st.integers(-50, 50))
FLOATS = st.one_of(st.none(), st.floats(-100, 100, allow_nan=False).map(lambda x: round(x, 2)))
WORDS = ["", "a", "b", "ab", "Paris", "5"]
STRS = st.one_of(st.none(), st.sampled_from(WORDS))

num_leaf = st.one_of(
    st.just({"var": "i"}),
    st.just({"var": "f"}),
    st.builds(lambda d: {"var": ["i", d]}, st.integers(-3, 3)),
    st.integers(-20, 20),
    st.floats(-20, 20, allow_nan=False).map(lambda x: round(x, 1)),
)
str_leaf = st.one_of(st.just({"var": "s"}), st.sampled_from(WORDS), st.none())


def _num(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            lambda op, a: {op: a},
            st.sampled_from(["+", "*", "min", "max"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        st.builds(
            lambda op, a, b: {op: [a, b]}, st.sampled_from(["-", "/", "%"]), children, children
        ),
        st.builds(lambda a: {"-": [a]}, children),
    )


num_expr = st.recursive(num_leaf, _num, max_leaves=6)
any_value = st.one_of(num_expr, str_leaf, st.booleans())


def _boolean(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            lambda op, a: {op: a},
            st.sampled_from(["and", "or"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        st.builds(
            lambda op, a: {op: a}, st.sampled_from(["!", "!!"]), st.one_of(children, any_value)
        ),
        st.builds(lambda c, a, b: {"if": [c, a, b]}, children, children, children),
        st.builds(lambda c, a, b: {"?:": [c, a, b]}, children, num_expr, num_expr).map(
            lambda r: {">": [r, 0]}
        ),
    )


comparison = st.one_of(
    st.builds(
        lambda op, a, b: {op: [a, b]},
        st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "===", "!=="]),
        num_expr,
        num_expr,
    ),
    st.builds(
        lambda op, a, b, c: {op: [a, b, c]},
        st.sampled_from(["<", "<="]),
        num_expr,
        num_expr,
        num_expr,
    ),
    st.builds(
        lambda op, a, b: {op: [a, b]},
        st.sampled_from(["==", "!=", "===", "!==", "<"]),
        str_leaf,
        str_leaf,
    ),
    st.builds(
        lambda op, a, b: {op: [a, b]},
        st.sampled_from(["==", "!=", "<", ">="]),
        any_value,
        any_value,
    ),
    st.builds(
        lambda a, items: {"in": [a, items]},
        st.just({"var": "s"}),
        st.lists(st.sampled_from(WORDS), max_size=3),
    ),
    st.builds(
        lambda a, items: {"in": [a, items]}, num_expr, st.lists(st.integers(-5, 5), max_size=3)
    ),
    st.builds(lambda a: {"in": [a, {"var": "s"}]}, st.sampled_from(WORDS)),
    st.builds(
        lambda names: {"missing": names},
        st.lists(st.sampled_from(["i", "f", "s", "b"]), min_size=1, max_size=3),
    ),
    st.builds(
        lambda n, names: {"missing_some": [n, names]},
        st.integers(0, 3),
        st.lists(st.sampled_from(["i", "f", "s"]), min_size=1, max_size=3),
    ),
    st.builds(lambda a: {"==": [{"cat": [{"var": "s"}, a]}, "ab"]}, str_leaf),
    st.builds(lambda a: {"!!": a}, num_expr),
)
rules = st.recursive(comparison, _boolean, max_leaves=5)

frames = st.integers(1, 25).flatmap(
    lambda n: st.builds(
        lambda i, f, s, b: pd.DataFrame(
            {
                "i": pd.array(i, dtype="Int64"),
                "f": np.array([np.nan if x is None else x for x in f], dtype="float64"),
                "s": pd.Series(s, dtype=object),
                "b": np.array(b, dtype=bool),
            }
        ),
        st.lists(INTS, min_size=n, max_size=n),
        st.lists(FLOATS, min_size=n, max_size=n),
        st.lists(STRS, min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


def _per_row(seg: Segment, frame: pd.DataFrame) -> list[bool]:
    return [seg.matches({str(c): v for c, v in frame.iloc[k].items()}) for k in range(len(frame))]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules, frame=frames)
def test_vectorized_equals_per_row(rule: Any, frame: pd.DataFrame) -> None:
    seg = Segment("p", [rule])
    assert seg.mask(frame).tolist() == _per_row(seg, frame), rule


@settings(max_examples=150, deadline=None)
@given(rules=st.lists(rules, min_size=1, max_size=3), frame=frames)
def test_segments_with_several_rules(rules: list[Any], frame: pd.DataFrame) -> None:
    seg = Segment("p", rules)
    assert seg.mask(frame).tolist() == _per_row(seg, frame)


FRAME = pd.DataFrame(
    {
        "age": pd.array([25, None, 40, 31], dtype="Int64"),
        "city": np.array(["Paris", "Lyon", None, "Paris"], dtype=object),
        "total_revenue": [10.0, np.nan, 2500.0, 999.5],
    },
    index=pd.Index(["a", "b", "c", "d"], name="customer_id"),
)


def test_mask_is_a_named_boolean_series() -> None:
    seg = Segment("young_paris", [{"<": [{"var": "age"}, 35]}, {"==": [{"var": "city"}, "Paris"]}])
    mask = seg.mask(FRAME)
    assert mask.dtype == bool and mask.name == "young_paris"
    assert mask.to_dict() == {"a": True, "b": False, "c": False, "d": True}
    assert seg.fallbacks == []
    assert all(r.compiled.fully_vectorized for r in seg.rules)


def test_fallback_is_visible(caplog: pytest.LogCaptureFixture) -> None:
    seg = Segment("p", [{"==": [{"substr": [{"var": "city"}, 0, 1]}, "P"]}])
    with caplog.at_level(logging.WARNING, logger="segmentation.vectorized"):
        assert seg.mask(FRAME).tolist() == [True, False, False, True]
        seg.mask(FRAME)
    assert seg.fallbacks == [("rule1", "$.==[0]", "operator 'substr' has no column implementation")]
    assert not seg.rules[0].compiled.fully_vectorized
    assert len([r for r in caplog.records if "per row" in r.getMessage()]) == 1  # logged once


def test_compile_rule_checks() -> None:
    from segmentation import RuleError

    with pytest.raises(RuleError):
        compile_rule({"method": ["x", "upper"]})
    compiled = compile_rule({"between": 1} if False else {"<=": [18, {"var": "age"}, 30]})
    assert compiled.mask(FRAME).tolist() == [True, False, False, False]


def test_missing_column_is_all_missing() -> None:
    seg = Segment("p", [{"!": {"var": "churn_score"}}, {"missing": ["churn_score"]}])
    assert seg.mask(FRAME).all()
    assert Segment("q", [{">": [{"var": "churn_score"}, 0]}]).mask(FRAME).sum() == 0


@settings(max_examples=100, deadline=None)
@given(rules=st.lists(rules, min_size=2, max_size=4), frame=frames)
def test_evaluate_frame_shares_columns_without_changing_results(
    rules: list[Any], frame: pd.DataFrame
) -> None:
    from segmentation import evaluate_frame

    segments = [Segment(f"s{i}", [r]) for i, r in enumerate(rules)]
    table = evaluate_frame(segments, frame)
    assert list(table.columns) == [s.name for s in segments]
    for s in segments:
        assert table[s.name].tolist() == _per_row(s, frame)
