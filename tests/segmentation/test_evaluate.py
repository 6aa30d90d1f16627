"""Safe per-row evaluation: the official suite, the compat suites, hostile rules, normalisation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import json_logic
import numpy as np
import pandas as pd
import pytest

from segmentation import CLASSIC_OPERATORS, RuleError, RuleLimits, evaluate, normalize_value
from segmentation.errors import SegmentationError

#: The official suite and the compat suites, copied (origin and licence: its README.md).
JSONLOGIC = Path(__file__).resolve().parents[1] / "data" / "jsonlogic"
OFFICIAL = [c for c in json.loads((JSONLOGIC / "tests.json").read_text()) if not isinstance(c, str)]

#: Measured on json-logic-qubit 0.9.1 behind the safe layer (docs/segmentation.md has the table).
COMPAT_PASS_FLOOR = 749


def _same(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_official_suite_has_277_cases() -> None:
    assert len(OFFICIAL) == 277


@pytest.mark.parametrize(
    ("rule", "data", "expected"), OFFICIAL, ids=[json.dumps(c[0])[:60] for c in OFFICIAL]
)
def test_official_suite(rule: Any, data: Any, expected: Any) -> None:
    assert _same(evaluate(rule, data), expected)


def _operators(x: Any, acc: set[str]) -> set[str]:
    if isinstance(x, dict):
        for k, v in x.items():
            acc.add(k)
            _operators(v, acc)
    elif isinstance(x, list):
        for v in x:
            _operators(v, acc)
    return acc


def _compat_counts(run: Any) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "not_applicable": 0}
    for path in sorted((JSONLOGIC / "compat-suites").rglob("*.json")):
        for case in json.loads(path.read_text()):
            if not isinstance(case, dict):
                continue
            if "result" not in case or not _operators(case["rule"], set()) <= CLASSIC_OPERATORS:
                counts["not_applicable"] += 1
                continue
            try:
                got = run(case["rule"], case.get("data"))
            except Exception as e:  # a failing case is counted, whatever it raises
                got = e
            counts["pass" if _same(got, case["result"]) else "fail"] += 1
    return counts


def test_compat_suites_counts(record_property: Any) -> None:
    ours = _compat_counts(evaluate)
    raw = _compat_counts(json_logic.jsonLogic)
    record_property("compat_counts", json.dumps(ours))
    print(f"compat suites: ours {ours}, raw json-logic-qubit {raw}")
    assert sum(ours.values()) == 1138
    assert ours["pass"] >= COMPAT_PASS_FLOOR
    assert ours["pass"] >= raw["pass"]  # the safe layer loses none of qubit's semantics


@pytest.mark.parametrize(
    "rule",
    [
        {"method": [{"var": "x"}, "__class__"]},
        {"method": ["os", "system", ["echo pwned"]]},
        {"method": [{"method": [{"var": "x"}, "__class__"]}, "__subclasses__"]},
        {"and": [True, {"method": ["abc", "upper"]}]},
        {"if": [True, {"map": [[1], {"method": [{"var": ""}, "__class__"]}]}, 0]},
        {"log": "secret"},
    ],
)
def test_method_and_log_are_refused(rule: Any, tmp_path: Path) -> None:
    with pytest.raises(RuleError) as err:
        evaluate(rule, {"x": 1})
    assert "forbidden" in str(err.value) and "Fix:" in str(err.value)


def test_dotted_custom_operations_never_run() -> None:
    json_logic.add_operation("os", __import__("os"))
    try:
        with pytest.raises(RuleError, match=r"unknown operator 'os\.system'"):
            evaluate({"os.system": ["echo pwned"]})
    finally:
        json_logic.rm_operation("os")


def test_evaluation_guard_refuses_unchecked_operators() -> None:
    """Even a rule that skipped checking cannot reach an operator outside the table."""
    from segmentation.evaluator import evaluate_segment_value

    with pytest.raises(RuleError, match="not allowed"):
        evaluate_segment_value({"method": ["x", "upper"]}, {})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"frobnicate": [1, 2]}, "unknown operator 'frobnicate'"),
        ({"vra": "x"}, "did you mean var"),
        ({"a": 1, "b": 2}, "exactly one key"),
        ({1: 2}, "not a string"),
        ({(1, 2): 3}, "not a string"),
        ({"==": [{"var": "x"}, {1, 2}]}, "not JSON"),
        ({"==": [{"var": "x"}, float("nan")]}, "non-finite"),
        ({"in": [1, list(range(5000))]}, "more than 1000"),
        ({"cat": ["x" * 20_000]}, "characters"),
    ],
)
def test_hostile_rules_get_clear_errors(rule: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message) as err:
        evaluate(rule, {})
    assert "Fix:" in str(err.value)


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    rule: Any = {"var": "x"}
    for _ in range(100_000):
        rule = {"!": rule}
    with pytest.raises(RuleError, match="nested deeper than 32") as err:
        evaluate(rule, {"x": 1})
    assert err.value.path and err.value.path.startswith("$.!")


def test_too_many_nodes() -> None:
    rule = {"and": [{"==": [{"var": "x"}, i]} for i in range(900)]}
    with pytest.raises(RuleError, match="more than 2000 values"):
        evaluate(rule, {})
    assert evaluate(rule, {"x": 1}, limits=RuleLimits(max_nodes=10_000)) is False


def test_runtime_failures_are_rule_errors() -> None:
    with pytest.raises(RuleError, match="evaluation failed") as err:
        evaluate({"+": [None, 1]}, {})
    assert isinstance(err.value, SegmentationError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), None),
        (None, None),
        (pd.NA, None),
        (pd.NaT, None),
        (np.int64(7), 7),
        (np.float32(1.5), 1.5),
        (np.float64(2.5), 2.5),
        (np.str_("a"), "a"),
        (np.float64("nan"), None),
        (np.bool_(True), True),
        ("x", "x"),
        ([np.int8(1), float("nan")], [1, None]),
    ],
)
def test_normalize_value(value: Any, expected: Any) -> None:
    got = normalize_value(value)
    assert got == expected and type(got) is type(expected)


def test_evaluate_normalises_data() -> None:
    data = {"age": np.int64(40), "score": np.float64("nan"), "city": pd.NA}
    assert evaluate({">": [{"var": "age"}, 30]}, data) is True
    assert evaluate({"var": "score"}, data) is None
    assert evaluate({"missing": ["city", "age"]}, data) == ["city"]
    assert math.isclose(evaluate({"+": [{"var": "age"}, 0.5]}, data), 40.5)
