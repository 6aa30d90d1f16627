"""Rules, groups and overlaps in plain words: every shipped example, every segment operator, and
odd input that must fall back to JSON, never raise."""

from __future__ import annotations

import pytest

from segmentation import Segment
from segmentation.loader import DEFAULT_SEGMENTS_DIR, load_segments
from segmentation.overlap import PairOverlap
from segmentation.report import groups_in_words, pair_in_words, rule_in_words, rules_in_words
from segmentation.report.words import MAX_RULE_CHARS
from segmentation.rules import SEGMENT_OPERATORS, check_rule

X, Y = {"var": "x"}, {"var": "y"}

# One rule per segment operator (each a valid segment rule) and its words.
BY_OPERATOR = {
    "var": ({"var": "vip"}, "vip"),
    "missing": ({"missing": ["age", "city"]}, "age or city is missing"),
    "missing_some": (
        {"missing_some": [1, ["age", "city"]]},
        "fewer than 1 of age and city are present",
    ),
    "if": ({"if": [{">": [X, 1]}, True, False]}, "if x > 1 then true, else false"),
    "?:": ({"?:": [{">": [X, 1]}, True, False]}, "if x > 1 then true, else false"),
    "and": ({"and": [{">": [X, 1]}, {"<": [Y, 2]}]}, "x > 1 and y < 2"),
    "or": ({"or": [{">": [X, 1]}, {"<": [Y, 2]}]}, "x > 1 or y < 2"),
    "!": ({"!": {">": [X, 1]}}, "x ≤ 1"),
    "!!": ({"!!": X}, "x is set (not empty, zero or false)"),
    "==": ({"==": [{"var": "customer_status"}, "active"]}, "customer_status is 'active'"),
    "===": ({"===": [X, 1]}, "x is 1"),
    "!=": ({"!=": [X, "churned"]}, "x is not 'churned'"),
    "!==": ({"!==": [X, 1]}, "x is not 1"),
    "<": ({"<": [X, 1000]}, "x < 1,000"),
    "<=": ({"<=": [18, {"var": "age"}, 29]}, "age is between 18 and 29"),
    ">": ({">": [{"var": "total_revenue"}, 500]}, "total_revenue > 500"),
    ">=": ({">=": [{"var": "churn_score"}, 0.7]}, "churn_score ≥ 0.7"),
    "in": ({"in": [{"var": "city"}, ["Paris", "Lyon"]]}, "city is one of 'Paris', 'Lyon'"),
    "+": ({">": [{"+": [X, Y]}, 3]}, "(x + y) > 3"),
    "-": ({">": [{"-": [X, Y]}, 3]}, "(x - y) > 3"),
    "*": ({">": [{"*": [X, 2]}, 3]}, "(x * 2) > 3"),
    "/": ({">": [{"/": [X, 2]}, 3]}, "(x / 2) > 3"),
    "%": ({"==": [{"%": [X, 2]}, 0]}, "(x mod 2) is 0"),
    "min": ({">": [{"min": [X, Y]}, 3]}, "min(x, y) > 3"),
    "max": ({">": [{"max": [X, Y]}, 3]}, "max(x, y) > 3"),
    "cat": ({"==": [{"cat": [X, "-", Y]}, "a-b"]}, "cat(x, '-', y) is 'a-b'"),
    "substr": ({"==": [{"substr": [X, 0, 2]}, "ab"]}, "substr(x, 0, 2) is 'ab'"),
    "segment": ({"segment": "gold_vip"}, "in segment 'gold_vip'"),
}


def test_every_segment_operator_has_words() -> None:
    assert set(BY_OPERATOR) == set(SEGMENT_OPERATORS)
    for op, (rule, words) in BY_OPERATOR.items():
        check_rule(rule)  # each example is a valid segment rule
        assert rule_in_words(rule) == words, op
        assert "{" not in words, op  # put in words, not shown as JSON


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (
            {
                "and": [
                    {"==": [{"var": "customer_status"}, "active"]},
                    {">": [{"var": "total_revenue"}, 500]},
                    {">": [{"var": "last_purchase_days_ago"}, 90]},
                ]
            },
            "customer_status is 'active' and total_revenue > 500 and last_purchase_days_ago > 90",
        ),
        # Parentheses where a reader needs them, and only there.
        ({"and": [{"or": [X, Y]}, {"segment": "s"}]}, "(x or y) and in segment 's'"),
        ({"or": [{"and": [X, Y]}, {"var": "z"}]}, "(x and y) or z"),
        ({"or": [{"or": [X, Y]}, {"var": "z"}]}, "x or y or z"),
        ({"or": [{"if": [X, Y, False]}, {"var": "z"}]}, "(if x then y, else false) or z"),
        ({"if": [X, 1, Y, 2, 3]}, "if x then 1, else if y then 2, else 3"),
        # Negations read as their opposite.
        ({"!": {"in": [{"var": "city"}, ["a", "b"]]}}, "city is not one of 'a', 'b'"),
        ({"!": {"in": [{"var": "city"}, ["a"]]}}, "city is not 'a'"),
        ({"!": {"segment": "gold"}}, "not in segment 'gold'"),
        ({"!": {"==": [X, "a"]}}, "x is not 'a'"),
        ({"!": {"missing": ["a", "b"]}}, "a and b are all present"),
        ({"!": {"<=": [1, X, 3]}}, "not (x is between 1 and 3)"),
        ({"!": X}, "not x"),
        ({"!": {"and": [X, Y]}}, "not (x and y)"),
        # Nulls, strings, numbers, long lists.
        ({"==": [X, None]}, "x is missing"),
        ({"!=": [None, X]}, "x is present"),
        ({"==": [X, "it's"]}, 'x is "it\'s"'),
        ({"<": [1, X, 3]}, "x is strictly between 1 and 3"),
        ({"in": ["@", {"var": "email"}]}, "email contains '@'"),
        ({"==": [X, 1234567.0]}, "x is 1,234,567"),
        ({"==": [X, True]}, "x is true"),
        ({"in": [X, list(range(12))]}, "x is one of 0, 1, 2, 3, 4, 5, 6, 7 and 4 more"),
        ({"==": [{"var": ["x", 0]}, 1]}, "x (else 0) is 1"),
        ({"-": [X]}, "-x"),
    ],
)
def test_rules_in_words(rule: object, words: str) -> None:
    assert rule_in_words(rule) == words


@pytest.mark.parametrize(
    ("rule", "shown"),
    [
        ({"method": ["x", "y"]}, '{"method":["x","y"]}'),  # unknown operator: compact JSON
        ({"a": 1, "b": 2}, '{"a":1,"b":2}'),  # not one operator
        ({"==": []}, '{"==":[]}'),  # a known operator, malformed
        ({">": [X, {"map": [1]}]}, 'x > {"map":[1]}'),  # only the sub-rule falls back
        ({"segment": [1]}, "in segment 1"),
        (42, "42"),
    ],
)
def test_what_cannot_be_put_in_words_is_shown_as_json(rule: object, shown: str) -> None:
    assert rule_in_words(rule) == shown


def test_hostile_rules_never_raise_and_stay_short() -> None:
    deep: object = X
    for _ in range(5000):
        deep = {"!": {"!!": deep}}
    assert "nested too deeply" in rule_in_words(deep)
    nested: object = 1
    for _ in range(5000):
        nested = [nested]
    assert rule_in_words({"in": [X, nested]}) == "(a rule nested too deeply to show)"
    long = rule_in_words({"==": [X, "y" * 50_000]})
    assert len(long) == MAX_RULE_CHARS and long.endswith("…")
    assert rule_in_words({"==": [X, float("nan")]}) == "x is nan"
    assert rule_in_words({"==": [X, {1, 2}]}).startswith("x is ")


def test_the_shipped_examples_read_as_sentences() -> None:
    segments = {s.name: s for s in load_segments(DEFAULT_SEGMENTS_DIR)}
    assert all(s.description for s in segments.values())  # every example says what it is for
    for seg in segments.values():
        for _, words in rules_in_words(seg):
            assert words and "{" not in words, (seg.name, words)
    assert rules_in_words(segments["lapsed_high_value"]) == [
        ("high_value", "total_revenue ≥ 1,000"),
        ("lapsed", "last_purchase_days_ago > 90"),
    ]
    assert rules_in_words(segments["gold_vip"]) == [
        (None, "customer_tier is one of 'gold', 'platinum'"),  # unnamed rules: no name shown
        (None, "customer_status is not 'churned'"),
    ]
    assert rules_in_words(segments["young_urban"])[0] == ("age_18_29", "age is between 18 and 29")
    assert rules_in_words(segments["at_risk"])[1] == (
        "worth_keeping",
        "lifetime_value ≥ 500 or customer_tier is one of 'gold', 'platinum'",
    )
    assert groups_in_words(segments["winback_offer_test"]) == (
        "10% held out as a control group; the rest split between 2 arms: A 50%, B 50%."
    )
    assert groups_in_words(segments["gold_vip"]) == (
        "Every eligible customer is targeted (no holdout, no split)."
    )
    assert groups_in_words(segments["gold_vip"], 0.05) == (
        "5% of all customers are the global control group; the rest targeted."
    )


def test_a_segment_reference_and_holdout_in_words() -> None:
    seg = Segment(
        "vip_test",
        [{"segment": "gold_vip"}, {"!": {"segment": "at_risk"}}],
        holdout=0.2,
    )
    assert [w for _, w in rules_in_words(seg)] == [
        "in segment 'gold_vip'",
        "not in segment 'at_risk'",
    ]
    assert groups_in_words(seg) == "20% held out as a control group; the rest targeted."


def test_an_overlap_in_words_names_the_smaller_segment_first() -> None:
    pair = PairOverlap("big", "small", 120, 2000, 300, 120 / 2180)
    assert pair_in_words(pair) == (
        "120 of the 300 members of small are also in big (40.0%); "
        "they are 6.0% of the 2,000 members of big."
    )
    assert pair_in_words(PairOverlap("a", "b", 0, 0, 0, None)) == "a and b share no customer."
