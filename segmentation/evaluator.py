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

from segmentation.errors import RuleError
from segmentation.rules import (
    CLASSIC_OPERATORS,
    DEFAULT_LIMITS,
    SEGMENT_OPERATORS,
    RuleLimits,
    check_rule,
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


def truthy(value: Any) -> bool:
    """JsonLogic truthiness (``json_logic``'s: Python's ``bool``)."""
    return bool(value)


def normalize_value(value: Any) -> Any:
    """One feature value as plain Python: NaN/None/pd.NA/pd.NaT -> None, numpy scalars -> Python.

    Containers are normalised recursively; other objects are returned unchanged.
    """
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
    if isinstance(value, dict):
        return {k: normalize_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize_value(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars (np.int64, np.float32, np.bool_...)
    if item is not None and type(value).__module__ == "numpy":
        try:
            return normalize_value(item())
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


def normalize_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """A row of features as a plain dict of normalised values (see :func:`normalize_value`)."""
    if not data:
        return {}
    return {k: normalize_value(v) for k, v in data.items()}


def _args(node: dict[str, Any]) -> tuple[str, list[Any]]:
    op, args = next(iter(node.items()))
    return op, list(args) if isinstance(args, list | tuple) else [args]


class _Evaluator:
    """The dispatcher; ``segment=True`` applies the segment null policy."""

    def __init__(self, *, segment: bool) -> None:
        self.segment = segment
        self.allowed = SEGMENT_OPERATORS if segment else CLASSIC_OPERATORS

    def run(self, node: Any, data: Any) -> Any:
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
        if self.segment:
            return self._segment_op(op, values, data)
        if op == "var":
            return _QUBIT["var"](data or {}, *values)
        if op in ("missing", "missing_some"):
            return _QUBIT[op](data or {}, *values)
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


_STANDARD = _Evaluator(segment=False)
_SEGMENT = _Evaluator(segment=True)


def evaluate(rule: Any, data: Any = None, *, limits: RuleLimits = DEFAULT_LIMITS) -> Any:
    """Evaluate a JsonLogic rule with standard semantics, safely.

    The rule is checked first (classic operators only; ``method`` and ``log`` are refused; size and
    depth limits), the data normalised (NaN/pd.NA -> None, numpy -> Python).

    Args:
        rule: A JsonLogic rule (or a literal, which evaluates to itself).
        data: The data object the rule's ``var`` reads.
        limits: Size limits for the rule.

    Returns:
        Whatever the rule evaluates to, as standard JsonLogic defines it.

    Raises:
        RuleError: The rule is refused, or fails while running (e.g. ``{"+": [null]}``).

    Example:
        >>> evaluate({">": [{"var": "age"}, 30]}, {"age": 41})
        True
    """
    check_rule(rule, mode="standard", limits=limits)
    data = normalize_data(data) if isinstance(data, Mapping) else normalize_value(data)
    try:
        return _STANDARD.run(rule, data)
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
