"""Hostile rules, data and files have a bounded cost: each probe of issue 10 gives a clear error
within a second or two and a few hundred MB (measured here: wall time and tracemalloc's peak)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from segmentation import (
    EvaluationLimitError,
    RuleError,
    RuleLimits,
    Segment,
    SegmentFileError,
    check_segments_dir,
    evaluate,
    evaluate_frame,
    load_segments,
)
from segmentation.loader import MAX_SEGMENT_FILE_BYTES

MB = 2**20


@contextmanager
def bounded(megabytes: int = 300) -> Iterator[None]:
    """The block allocates at most ``megabytes`` at its peak (tracemalloc).

    Work is bounded by counting, not by a clock: the evaluator refuses past ``max_steps``
    operations and the size limits (each probe asserts the refusal it gets), so no wall time is
    asserted here (machines are shared and noisy; timings belong in bench/).
    """
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < megabytes * MB, f"peaked at {peak / MB:.0f} MB"


def refused(call: Callable[[], Any], error: type[Exception] = EvaluationLimitError) -> str:
    with bounded(), pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert "Fix:" in text
    return text


# -- segmentation.evaluate (standard JsonLogic, untrusted rule and data) ---------------------------


def test_reduce_cat_doubling_stops_at_the_string_limit() -> None:
    rule = {
        "reduce": [
            {"merge": [list(range(40))]},
            {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]},
            "doubling!",
        ]
    }
    assert len(json.dumps(rule, separators=(",", ":"))) < 260  # the 229-byte probe's size
    assert "'cat' would build a string of more than 10000 characters" in refused(
        lambda: evaluate(rule)
    )


def test_merge_doubling_stops_at_the_array_limit() -> None:
    rule = {
        "reduce": [
            list(range(40)),
            {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]},
            [1],
        ]
    }
    assert "'merge' would build an array" in refused(lambda: evaluate(rule))


def test_nested_quantifiers_stop_at_the_work_budget() -> None:
    items = list(range(30))
    rule: Any = {"==": [1, 2]}
    for level in range(8):  # 30**8 evaluations without a budget
        rule = {"none" if level % 2 else "some": [items, rule]}
    text = refused(lambda: evaluate(rule))
    assert "more than 100000 operations" in text


def test_work_budget_counts_data_items_too() -> None:
    rule = {"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]}
    assert evaluate(rule, {"xs": list(range(1000))})[-1] == 1000  # ordinary data: fine
    refused(lambda: evaluate(rule, {"xs": list(range(100_000))}))
    # the limits are per call and can be raised for trusted data
    big = RuleLimits(max_steps=1_000_000)
    assert len(evaluate(rule, {"xs": list(range(100_000))}, limits=big)) == 100_000


def test_multiplying_huge_integers_is_refused() -> None:
    huge = 10**4298  # 4,299 digits: the largest int Python parses from text
    rule = {"*": [{"var": "a"}, {"var": "a"}, {"var": "a"}]}
    assert "'*' would compute with an integer of about" in refused(
        lambda: evaluate(rule, {"a": huge})
    )
    squaring = {"reduce": [list(range(30)), {"*": [{"var": "accumulator"}] * 2}, 3]}
    refused(lambda: evaluate(squaring))
    assert evaluate({"*": [{"var": "a"}, 2]}, {"a": 2**62}) == 2**63  # ordinary: exact


def test_deep_data_is_a_clear_error_not_a_recursion_error() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = {"a": deep}
    text = refused(lambda: evaluate({"var": "a.a"}, deep))
    assert "nested deeper than 64 levels" in text
    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    refused(lambda: evaluate({"var": "x"}, {"x": nested}))
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    refused(lambda: evaluate({"var": "self"}, cyclic))


def test_integer_literals_beyond_64_bits_are_refused() -> None:
    text = refused(lambda: evaluate({"+": [10**400, 1]}), RuleError)
    assert "integer literal of about 401 digits is wider than 64 bits" in text
    assert evaluate({"+": [2**63, 1]}) == 2**63 + 1
    assert evaluate({"-": [-(2**64) + 1, 1]}) == -(2**64)


# -- segment rules: refused at validation what would fail sizes / refresh ------------------------


def test_segment_with_a_400_digit_literal_is_refused_at_validation() -> None:
    rule = {">": [{"var": "total_revenue"}, int("9" * 400)]}
    with pytest.raises(RuleError, match="wider than 64 bits") as info:
        Segment("whales", [rule])
    assert info.value.segment == "whales" and info.value.path == "$.>[1]"


def test_segment_cat_bound_is_checked_at_validation() -> None:
    literal = "x" * 10_000  # each literal within the string limit ...
    rule = {"==": [{"cat": [literal] * 999 + [{"var": "city"}]}, "Paris"]}  # ~10 MB a row
    text = refused(lambda: Segment("fat", [rule]), RuleError)
    assert "'cat' can build a string of 9990020 characters, more than 10000" in text
    Segment("ok", [{"==": [{"cat": ["x" * 5000, {"var": "city"}]}, "Paris"]}])


def test_segment_product_bound_is_checked_at_validation() -> None:
    rule = {">": [{"*": [{"var": "age"}] * 20}, 1]}  # 20 x 64 bits
    assert "can compute an integer of 1280 bits" in refused(
        lambda: Segment("pow", [rule]), RuleError
    )
    Segment("ok", [{">": [{"*": [{"var": "age"}] * 4}, 1]}])


def test_oversized_feature_values_are_missing_in_both_paths() -> None:
    seg = Segment("c", [{"==": [{"cat": [{"var": "city"}, "!"]}, "Paris!"]}])
    frame = pd.DataFrame({"city": ["Paris", "P" * 20_000, None]})
    assert [seg.matches({str(k): v for k, v in r.items()}) for r in frame.to_dict("records")] == [
        True,
        False,
        False,
    ]
    assert seg.mask(frame).tolist() == [True, False, False]
    prod = Segment("p", [{">": [{"*": [{"var": "n"}, {"var": "n"}]}, 0]}])
    assert not prod.matches({"n": 10**4000})  # too large to compute: missing, so false


def test_integers_beyond_float64_agree_in_both_paths() -> None:
    big = 2**62
    rule = {"==": [{"*": [{"var": "n"}] + [big] * 15}, {"*": [{"var": "n"}] + [big] * 15}]}
    seg = Segment("big", [rule])  # 64 + 15 x 63 bits: within max_result_bits
    frame = pd.DataFrame({"n": pd.array([1, 2**40, None], dtype="Int64")})
    assert seg.mask(frame).tolist() == [
        seg.matches({str(k): v for k, v in r.items()}) for r in frame.to_dict("records")
    ]
    assert seg.matches({"n": 3}) and not seg.matches({"n": None})


def test_vectorized_memory_is_bounded_for_big_rules() -> None:
    """A 1,000-term rule over 50,000 rows: slices keep the columns under max_batch_bytes."""
    n = 50_000
    frame = pd.DataFrame({"x": np.arange(n, dtype="float64"), "city": ["Paris"] * n})
    wide = Segment("wide", [{">": [{"+": [{"var": "x"}] + [1] * 999}, 50_000]}])
    assert wide.rules[0].compiled.slice_rows(frame) < n
    with bounded(megabytes=300):
        mask = wide.mask(frame)
    assert int(mask.sum()) == 998  # x + 999 > 50,000
    cat = Segment("cat", [{"==": [{"cat": ["y" * 9000, {"var": "city"}]}, "z"]}])
    assert cat.rules[0].compiled.slice_rows(frame) < n
    with bounded(megabytes=300):
        assert not evaluate_frame([cat], frame)["cat"].any()


# -- segment files ---------------------------------------------------------------------------------


def _good(d: Path) -> None:
    (d / "a_good.yaml").write_text(
        "name: good\ndescription: fine\nrules:\n  - {'>': [{'var': 'age'}, 30]}\n"
    )


def test_yaml_alias_bomb_is_refused_in_any_field(tmp_path: Path) -> None:
    _good(tmp_path)
    bomb = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i, prev in zip("bcdefghij", "abcdefghi", strict=True):
        bomb.append(f"{i}: &{i} [{','.join(['*' + prev] * 9)}]")
    (tmp_path / "bomb.yaml").write_text(
        "\n".join(bomb) + "\nname: bomb\ndescription: *j\nrules:\n  - {'>': [{'var': 'age'}, 1]}\n"
    )
    (tmp_path / "alias.yaml").write_text(
        "name: alias\nrules:\n  - &r {'>': [{'var': 'age'}, 1]}\n  - *r\n"
    )
    with bounded():
        segments, errors = check_segments_dir(tmp_path)
    assert [s.name for s in segments] == ["good"]
    assert len(errors) == 2
    assert all("aliases (*name) are not allowed" in str(e) for e in errors)


def test_segment_files_have_a_size_limit(tmp_path: Path) -> None:
    _good(tmp_path)
    one = json.dumps({"name": "s{}", "description": "d" * 200, "rules": [{"!": [1]}]})
    body = "[" + ",".join(one.replace("{}", str(i)) for i in range(9_000)) + "]"
    (tmp_path / "huge.json").write_text(body)
    assert len(body) > MAX_SEGMENT_FILE_BYTES
    with bounded():
        segments, errors = check_segments_dir(tmp_path)
    assert [s.name for s in segments] == ["good"]
    assert len(errors) == 1 and "more than the limit of 1,048,576" in str(errors[0])
    assert isinstance(errors[0], SegmentFileError)
    with pytest.raises(SegmentFileError):
        load_segments(tmp_path)
    assert len(load_segments(tmp_path, max_file_bytes=4 * MB)) == 9_001
    # the probe: 100 MB of small rules (a sparse file: the size is checked before reading)
    with (tmp_path / "huge.json").open("r+b") as f:
        f.truncate(100 * MB)
    with bounded():
        _, errors = check_segments_dir(tmp_path)
    assert "104,857,600 bytes, more than the limit" in str(errors[0])
    (tmp_path / "huge.json").write_text(body)
    # and a directory holds at most MAX_SEGMENTS: the file past it is reported, not loaded
    (tmp_path / "more.json").write_text(body.replace('"s', '"t'))
    segments, errors = check_segments_dir(tmp_path, max_file_bytes=4 * MB)
    assert len(segments) == 9_001 and "more than 10,000 segments" in str(errors[0])


def test_description_and_rule_names_are_bounded() -> None:
    with pytest.raises(RuleError, match="description must be text"):
        Segment("d", [{">": [{"var": "age"}, 1]}], description="x" * 10_001)
    with pytest.raises(RuleError, match="description must be text"):
        Segment.from_dict({"name": "d", "description": ["x"], "rules": [{"!": [1]}]})
    with pytest.raises(RuleError, match="name of rule 1"):
        Segment("d", [{"name": ["x"] * 5, "rule": {">": [{"var": "age"}, 1]}}])
    assert Segment.from_dict({"name": "d", "description": 2024, "rules": [{"!": [1]}]})
