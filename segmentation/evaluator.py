"""Safe per-row JSONLogic evaluation on top of ``json-logic-qubit``.

``json_logic.jsonLogic`` dispatches through module-level tables that include ``method`` (a rule
could call ``{"method": [{"var": "x"}, "__class__"]}`` and walk to ``os``). So this module never
calls ``jsonLogic`` itself: it walks the rule with its own dispatcher, whose table holds only the
allow-listed operators, and borrows ``json-logic-qubit``'s functions for the operators' semantics.
A rule is checked (:func:`segmentation.rules.check_rule`) before it runs, and the dispatcher
refuses anything outside the table while it runs: two independent guards.

Two semantics:

* :func:`evaluate` is standard JsonLogic (it passes the official suite).
* :func:`evaluate_segment_rule` adds the segment null policy: a comparison with a missing operand is
  false (both ``==`` and ``!=``), arithmetic on a missing value is missing, and evaluation
  errors (``"a" < 1``, division by zero) give false / missing instead of raising.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any

import json_logic

from segmentation.errors import EvaluationLimitError, RuleError
from segmentation.rules import (
    CLASSIC_OPERATORS,
    DEFAULT_LIMITS,
    SEGMENT_OPERATORS,
    RuleLimits,
    check_rule,
    reference_key,
)

__all__ = [
    "evaluate",
    "evaluate_segment_rule",
    "evaluate_segment_value",
    "normalize_data",
    "normalize_value",
    "truthy",
]

# The operator functions of json-logic-qubit, restricted to the allow-list. Logical and scoped
# operators are re-implemented below because qubit's versions recurse through its global table.
_QUBIT: dict[str, Callable[..., Any]] = {
    op: fn
    for op, fn in json_logic.operations.items()
    if op in CLASSIC_OPERATORS and op not in {"if", "?:", "and", "or"}
}
_COMPARISONS = frozenset({"==", "===", "<", "<=", ">", ">="})
_NEGATED = frozenset({"!=", "!=="})
_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "min", "max"})
_STRINGS = frozenset({"cat", "substr"})
_GROWING = frozenset({"cat", "merge", "+", "-", "*", "/", "%", "min", "max"})
_LIMIT_FIX = (
    "simplify the rule or give it less data (map, filter, reduce, all, some and none run their "
    "rule once per item); or raise segmentation.RuleLimits for this call"
)


def truthy(value: Any) -> bool:
    """JsonLogic truthiness (``json_logic``'s: Python's ``bool``)."""
    return bool(value)


def normalize_value(value: Any, *, max_depth: int = DEFAULT_LIMITS.max_data_depth) -> Any:
    """One feature value as plain Python: NaN/None/pd.NA/pd.NaT -> None, numpy scalars -> Python.

    Containers are normalised recursively, at most ``max_depth`` levels deep; other objects are
    returned unchanged.

    Raises:
        EvaluationLimitError: The value is nested deeper than ``max_depth`` (or is cyclic).
    """
    return _normalize(value, 0, max_depth)


def _normalize(value: Any, depth: int, max_depth: int) -> Any:
    if value is None:
        return None
    kind = type(value)
    if kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        return None if math.isnan(value) else value
    if isinstance(value, float):  # np.float64 subclasses float: make it plain
        return None if math.isnan(value) else float(value)
    if isinstance(value, str):  # np.str_
        return str(value)
    if isinstance(value, dict | list | tuple):
        if depth >= max_depth:
            raise EvaluationLimitError(
                f"the data is nested deeper than {max_depth} levels",
                "flatten the data, or raise RuleLimits.max_data_depth for this call",
            )
        if isinstance(value, dict):
            return {k: _normalize(v, depth + 1, max_depth) for k, v in value.items()}
        return [_normalize(v, depth + 1, max_depth) for v in value]
    item = getattr(value, "item", None)  # numpy scalars (np.int64, np.float32, np.bool_...)
    if item is not None and type(value).__module__ == "numpy":
        try:
            return _normalize(item(), depth, max_depth)
        except (TypeError, ValueError):
            return value
    if _is_pandas_missing(value):
        return None
    if isinstance(value, _dt.datetime) and hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    return value


def _is_pandas_missing(value: Any) -> bool:
    module = type(value).__module__
    if not module.startswith("pandas"):
        return False
    import pandas as pd

    return value is pd.NA or value is pd.NaT


def normalize_data(
    data: Mapping[str, Any] | None, *, max_depth: int = DEFAULT_LIMITS.max_data_depth
) -> dict[str, Any]:
    """A row of features as a plain dict of normalised values (see :func:`normalize_value`)."""
    if not data:
        return {}
    return {k: _normalize(v, 1, max_depth) for k, v in data.items()}


def _width(value: Any, limit: int) -> int:
    """About how many characters ``str(value)`` has (counting stops past ``limit``)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3 + 2
    if isinstance(value, list | tuple | dict):
        total = 2
        for item in value.values() if isinstance(value, dict) else value:
            total += _width(item, limit) + 2
            if total > limit:
                break
        return total
    return 24


def _bits(value: Any) -> int:
    """About how many bits ``value`` has as a number (a numeric string is parsed by qubit)."""
    if isinstance(value, int):
        return value.bit_length()
    if isinstance(value, str):
        return len(value) * 10 // 3
    return 0


def _growth_problem(op: str, values: list[Any], limits: RuleLimits) -> str | None:
    """Why running ``op`` on ``values`` would build a value over the limits (None: it would not).

    Checked *before* the operation, so a doubling rule stops at the limit, not after allocating.
    """
    most = limits.max_value_length
    if op == "cat":
        total = 0
        for v in values:
            total += _width(v, limits.max_value_length)
            if total > limits.max_value_length:
                return (
                    f"'cat' would build a string of more than {limits.max_value_length} characters"
                )
        return None
    if op == "merge":
        items = sum(len(v) if isinstance(v, list | tuple) else 1 for v in values)
        if items > limits.max_value_length:
            return f"'merge' would build an array of {items} items, more than {most}"
        return None
    bits = [_bits(v) for v in values]
    width = sum(bits) if op == "*" else max(bits, default=0)
    if width > limits.max_result_bits:
        return (
            f"{op!r} would compute with an integer of about {width} bits, "
            f"more than {limits.max_result_bits}"
        )
    return None


def _args(node: dict[str, Any]) -> tuple[str, list[Any]]:
    op, args = next(iter(node.items()))
    return op, list(args) if isinstance(args, list | tuple) else [args]


class _Evaluator:
    """The dispatcher; ``segment=True`` applies the segment null policy."""

    def __init__(self, *, segment: bool, limits: RuleLimits = DEFAULT_LIMITS) -> None:
        self.segment = segment
        self.allowed = SEGMENT_OPERATORS if segment else CLASSIC_OPERATORS
        self.limits = limits
        self.steps = 0  # standard mode only: a segment rule has no loops (bounded by its size)

    def run(self, node: Any, data: Any) -> Any:
        if not self.segment:
            self.steps += 1
            if self.steps > self.limits.max_steps:
                raise EvaluationLimitError(
                    f"the evaluation ran more than {self.limits.max_steps} operations",
                    _LIMIT_FIX,
                )
        if isinstance(node, list | tuple):
            return [self.run(x, data) for x in node]
        if not isinstance(node, dict):
            return node
        op, args = _args(node)
        if op not in self.allowed:  # the evaluation-time guard
            raise RuleError(f"operator {op!r} is not allowed", "check the rule before running it")
        if op in ("if", "?:"):
            for i in range(0, len(args) - 1, 2):
                if truthy(self.run(args[i], data)):
                    return self.run(args[i + 1], data)
            return self.run(args[-1], data) if len(args) % 2 else None
        if op == "and" or op == "or":
            current: Any = False
            for arg in args:
                current = self.run(arg, data)
                if truthy(current) is (op == "or"):
                    return current
            return current
        if op in ("map", "filter", "reduce", "all", "none", "some"):
            return self._scoped(op, args, data)
        values = [self.run(a, data) for a in args]
        if op in _GROWING:
            problem = _growth_problem(op, values, self.limits)
            if problem is not None:
                if self.segment:  # the null policy: a value too large to compute is missing
                    return None
                raise EvaluationLimitError(problem, _LIMIT_FIX)
        if self.segment:
            return self._segment_op(op, values, data)
        if op == "var":
            return _QUBIT["var"]({} if data is None else data, *values)
        if op in ("missing", "missing_some"):
            return _QUBIT[op]({} if data is None else data, *values)
        return _QUBIT[op](*values)

    def _scoped(self, op: str, args: list[Any], data: Any) -> Any:
        items = self.run(args[0], data)
        logic = args[1]
        if op == "reduce":
            initial = self.run(args[2], data) if len(args) > 2 else None
            if not isinstance(items, list):
                return initial
            return reduce(
                lambda acc, cur: self.run(logic, {"accumulator": acc, "current": cur}),
                items,
                initial,
            )
        if not isinstance(items, list):
            return [] if op in ("map", "filter") else op == "none"
        if op == "map":
            return [self.run(logic, x) for x in items]
        if op == "all":
            return bool(items) and all(truthy(self.run(logic, x)) for x in items)
        kept = [x for x in items if truthy(self.run(logic, x))]
        if op == "filter":
            return kept
        return not kept if op == "none" else bool(kept)

    def _segment_op(self, op: str, values: list[Any], data: Any) -> Any:
        if op == "segment":  # eligibility in another segment, evaluated before this one
            key = reference_key(values[0])
            if not isinstance(data, Mapping) or key not in data:
                raise RuleError(
                    f"the rule references segment {values[0]!r}, which was not evaluated first",
                    "evaluate the segments in dependency order (SegmentEngine, evaluate_frame, "
                    "Segment.matches(features, references={...}))",
                )
            return bool(data[key])
        if op == "var":
            value = data.get(values[0]) if isinstance(data, Mapping) else None
            return values[1] if value is None and len(values) > 1 else value
        if op in ("missing", "missing_some"):
            return _QUBIT[op](data, *values)
        if op in _COMPARISONS or op in _NEGATED or op == "in":
            if any(v is None for v in values):
                return False
            try:
                return bool(_QUBIT[op](*values))
            except (TypeError, ValueError, OverflowError):
                return False
        if op in _ARITHMETIC or op in _STRINGS:
            if any(v is None for v in values):
                return None
            try:
                result = _QUBIT[op](*values)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError, IndexError):
                return None
            if isinstance(result, float) and not math.isfinite(result):
                return None
            return result
        return _QUBIT[op](*values)  # "!" and "!!"


_SEGMENT = _Evaluator(segment=True)


def evaluate(rule: Any, data: Any = None, *, limits: RuleLimits = DEFAULT_LIMITS) -> Any:
    """Evaluate a JsonLogic rule with standard semantics, safely.

    The rule is checked first (classic operators only; ``method`` and ``log`` are refused; size and
    depth limits), the data normalised (NaN/pd.NA -> None, numpy -> Python).

    Args:
        rule: A JsonLogic rule (or a literal, which evaluates to itself).
        data: The data object the rule's ``var`` reads.
        limits: Size limits for the rule and budgets for its evaluation (see
            :class:`~segmentation.rules.RuleLimits`).

    Returns:
        Whatever the rule evaluates to, as standard JsonLogic defines it.

    Raises:
        RuleError: The rule is refused, or fails while running (e.g. ``{"+": [null]}``).
        EvaluationLimitError: (a ``RuleError``) the evaluation ran over ``limits``: more than
            ``max_steps`` operations, a ``cat``/``merge`` result over ``max_value_length``, an
            integer over ``max_result_bits``, data nested deeper than ``max_data_depth``.

    Example:
        >>> evaluate({">": [{"var": "age"}, 30]}, {"age": 41})
        True
    """
    check_rule(rule, mode="standard", limits=limits)
    depth = limits.max_data_depth
    if isinstance(data, Mapping):
        data = normalize_data(data, max_depth=depth)
    else:
        data = normalize_value(data, max_depth=depth)
    try:
        return _Evaluator(segment=False, limits=limits).run(rule, data)
    except RuleError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, IndexError) as e:
        raise RuleError(
            f"evaluation failed: {type(e).__name__}: {e}",
            "check the operand types of the rule against the data",
        ) from e


def evaluate_segment_rule(rule: Any, features: Mapping[str, Any]) -> bool:
    """Evaluate a *checked* segment rule on one row with the segment null policy.

    Args:
        rule: A rule that passed ``check_rule(rule, mode="segment")``.
        features: The row, already normalised (see :func:`normalize_data`).

    Returns:
        Whether the row satisfies the rule.
    """
    return truthy(_SEGMENT.run(rule, features))


def evaluate_segment_value(rule: Any, features: Mapping[str, Any]) -> Any:
    """The raw value of a checked segment (sub-)rule on one row (the vectorized fallback)."""
    return _SEGMENT.run(rule, features)
