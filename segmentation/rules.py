"""Rule checking: the operator allow-list, arities, size and depth limits, feature names.

Every rule is checked here *before* ``json-logic-qubit``'s operator functions see it. The checker
walks the rule iteratively (an explicit stack), so a hostile, deeply nested rule is rejected with a
:class:`~segmentation.errors.RuleError`, never a ``RecursionError``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from segmentation.errors import RuleError, UnknownFeatureError

__all__ = [
    "CLASSIC_OPERATORS",
    "FORBIDDEN_OPERATORS",
    "REFERENCE_PREFIX",
    "SEGMENT_OPERATORS",
    "Mode",
    "RuleInfo",
    "RuleLimits",
    "check_features",
    "check_rule",
    "reference_key",
]

Mode = Literal["standard", "segment"]

#: Operators a segment rule may use (features are scalars, so no array iteration).
SEGMENT_OPERATORS: frozenset[str] = frozenset(
    {
        "var", "missing", "missing_some",
        "if", "?:", "and", "or", "!", "!!",
        "==", "===", "!=", "!==", "<", "<=", ">", ">=", "in",
        "+", "-", "*", "/", "%", "min", "max",
        "cat", "substr",
        "segment",
    }
)  # fmt: skip

#: Every classic JsonLogic operator that ``segmentation.evaluate`` runs (``segment``, a reference
#: to another segment, exists in segment rules only).
CLASSIC_OPERATORS: frozenset[str] = (SEGMENT_OPERATORS - {"segment"}) | frozenset(
    {"merge", "map", "filter", "reduce", "all", "none", "some"}
)

#: Where an evaluated row holds its eligibility in another segment (``{"segment": name}``): a
#: key no feature name has (Feast names are identifiers), read only by the ``segment`` operator.
REFERENCE_PREFIX = "\x00segment\x00"


def reference_key(segment: str) -> str:
    """The row key / frame column holding the eligibility in ``segment`` (see
    :data:`REFERENCE_PREFIX`)."""
    return f"{REFERENCE_PREFIX}{segment}"


#: Operators json-logic-qubit knows but that never run here, with the reason.
FORBIDDEN_OPERATORS: dict[str, str] = {
    "method": "'method' calls arbitrary Python attributes and methods (it can reach os)",
    "log": "'log' writes rule data to the application log",
}

# (min, max) argument counts in segment rules; None = unbounded.
_ARITY: dict[str, tuple[int, int | None]] = {
    "var": (1, 2),
    "missing": (0, None),
    "missing_some": (2, 2),
    "if": (1, None),
    "?:": (3, 3),
    "and": (1, None),
    "or": (1, None),
    "!": (1, 1),
    "!!": (1, 1),
    "==": (2, 2),
    "===": (2, 2),
    "!=": (2, 2),
    "!==": (2, 2),
    "<": (2, 3),
    "<=": (2, 3),
    ">": (2, 2),
    ">=": (2, 2),
    "in": (2, 2),
    "+": (1, None),
    "-": (1, 2),
    "*": (1, None),
    "/": (2, 2),
    "%": (2, 2),
    "min": (1, None),
    "max": (1, None),
    "cat": (0, None),
    "substr": (2, 3),
    "map": (2, 2),
    "filter": (2, 2),
    "all": (2, 2),
    "none": (2, 2),
    "some": (2, 2),
    "reduce": (2, 3),
    "merge": (0, None),
    "segment": (1, 1),
}


class RuleLimits(BaseModel):
    """Size limits a rule must respect (a rule is data from a file: bound what it can cost)."""

    model_config = ConfigDict(frozen=True)

    max_depth: int = Field(default=32, ge=1)
    """Deepest nesting of objects and arrays."""
    max_nodes: int = Field(default=2000, ge=1)
    """Most values (operators, arrays, literals) in one rule."""
    max_array_length: int = Field(default=1000, ge=1)
    """Longest array literal (e.g. the list of an ``in``)."""
    max_string_length: int = Field(default=10_000, ge=1)
    """Longest string literal."""
    max_int_bits: int = Field(default=64, ge=1)
    """Widest integer literal, in bits (64: what a feature can hold; a wider one is refused)."""
    max_value_length: int = Field(default=10_000, ge=1)
    """Longest string (characters) or array (items) an evaluation may build (``cat``, ``merge``)."""
    max_result_bits: int = Field(default=1024, ge=64)
    """Widest integer an evaluation may compute (``*`` of big integers), in bits."""
    max_steps: int = Field(default=100_000, ge=1)
    """Most operations one ``evaluate`` call may run (``map``/``reduce``/``some``... over data)."""
    max_data_depth: int = Field(default=64, ge=1)
    """Deepest nesting of the data given to ``evaluate``."""
    max_batch_bytes: int = Field(default=64 * 2**20, ge=2**20)
    """Memory the vectorized path may hold for one rule's intermediate columns (rows are
    evaluated in slices to stay under it)."""


DEFAULT_LIMITS = RuleLimits()


@dataclass
class RuleInfo:
    """What checking a rule found out about it.

    Attributes:
        variables: Feature names read by ``var``, mapped to the path of their first use.
        operators: Operators used.
    """

    variables: dict[str, str] = field(default_factory=dict)
    operators: set[str] = field(default_factory=set)
    segments: dict[str, str] = field(default_factory=dict)
    """Segments referenced by ``{"segment": name}``, mapped to the path of their first use."""
    nodes: int = 0
    """How many values (operators, arrays, literals) the rule has."""


def _literal_problem(value: Any, limits: RuleLimits) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > limits.max_int_bits:
            digits = int(value.bit_length() * 0.30103) + 1  # str() refuses > 4,300 digits
            return (
                f"an integer literal of about {digits} digits is wider than "
                f"{limits.max_int_bits} bits"
            )
        return None
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"non-finite number {value!r}"
    return f"value of type {type(value).__name__} is not JSON"


def check_rule(
    rule: Any, *, mode: Mode = "segment", limits: RuleLimits = DEFAULT_LIMITS
) -> RuleInfo:
    """Check a rule's shape, operators, arities and size.

    Args:
        rule: The JSONLogic rule (a dict with one operator key).
        mode: ``"segment"`` (segment rules: scalar features, strict arities, ``var`` names must be
            literal strings) or ``"standard"`` (any classic JsonLogic for ``evaluate``).
        limits: Size limits.

    Returns:
        The variables and operators the rule uses.

    Raises:
        RuleError: The first problem found, with its path and the fix.
    """
    allowed = SEGMENT_OPERATORS if mode == "segment" else CLASSIC_OPERATORS
    info = RuleInfo()
    if mode == "segment" and not isinstance(rule, dict):
        raise RuleError(
            f"a rule must be a JSON object with one operator, got {type(rule).__name__}",
            'write it as e.g. {">": [{"var": "age"}, 30]}',
            path="$",
        )
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(rule, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise RuleError(
                f"the rule has more than {limits.max_nodes} values",
                "split it into several smaller rules",
                path=path,
            )
        if depth > limits.max_depth:
            raise RuleError(
                f"the rule is nested deeper than {limits.max_depth} levels",
                "flatten it (and/or take many arguments) or split it into several rules",
                path=path,
            )
        if isinstance(node, list | tuple):
            if len(node) > limits.max_array_length:
                raise RuleError(
                    f"an array has {len(node)} items, more than {limits.max_array_length}",
                    "use a shorter list, or a feature that groups the values",
                    path=path,
                )
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            problem = _literal_problem(node, limits)
            if problem:
                fix = (
                    f"use integers between -2**{limits.max_int_bits} and 2**{limits.max_int_bits}"
                    if isinstance(node, int)
                    else "use only JSON values in rules"
                )
                raise RuleError(problem, fix, path=path)
            if isinstance(node, str) and len(node) > limits.max_string_length:
                raise RuleError(
                    f"a string has {len(node)} characters, more than {limits.max_string_length}",
                    "use a shorter string",
                    path=path,
                )
            continue
        if len(node) != 1:
            raise RuleError(
                f"an object must have exactly one key (the operator), got {len(node)}",
                'write one operator per object, e.g. {"and": [{...}, {...}]}',
                path=path,
            )
        op, args = next(iter(node.items()))
        if not isinstance(op, str):
            raise RuleError(
                f"operator key {op!r} is not a string",
                "use one of the allowed operators as the object's key",
                path=path,
            )
        here = f"{path}.{op}"
        if op in FORBIDDEN_OPERATORS:
            raise RuleError(
                f"operator {op!r} is forbidden: {FORBIDDEN_OPERATORS[op]}",
                "express the condition with comparison and logic operators over features",
                path=here,
            )
        if op not in allowed:
            close = difflib.get_close_matches(op, sorted(allowed), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise RuleError(
                f"unknown operator {op!r}{hint}",
                f"use one of: {' '.join(sorted(allowed))}",
                path=here,
            )
        info.operators.add(op)
        argv = list(args) if isinstance(args, list | tuple) else [args]
        if mode == "segment":
            lo, hi = _ARITY[op]
            if len(argv) < lo or (hi is not None and len(argv) > hi):
                want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
                raise RuleError(
                    f"operator {op!r} takes {want} argument(s), got {len(argv)}",
                    f"give {op!r} {want} argument(s)",
                    path=here,
                )
            if op == "var":
                name = argv[0]
                if not isinstance(name, str) or not name:
                    raise RuleError(
                        "'var' must name a feature with a literal, non-empty string",
                        'write {"var": "customer_status"}',
                        path=here,
                    )
                info.variables.setdefault(name, here)
            elif op == "segment":
                ref = argv[0]
                if not isinstance(ref, str) or not ref:
                    raise RuleError(
                        "'segment' must name a segment with a literal, non-empty string",
                        'write {"segment": "gold_vip"}',
                        path=here,
                    )
                info.segments.setdefault(ref, here)
            elif op in ("missing", "missing_some"):
                names = argv[1] if op == "missing_some" else argv
                if op == "missing_some" and not isinstance(argv[0], int | float):
                    raise RuleError(
                        "'missing_some' needs a literal count first",
                        'write {"missing_some": [1, ["age", "city"]]}',
                        path=here,
                    )
                if op == "missing" and len(argv) == 1 and isinstance(argv[0], list):
                    names = argv[0]
                if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                    raise RuleError(
                        f"{op!r} takes literal feature names",
                        'write {"missing": ["age", "city"]}',
                        path=here,
                    )
                for n in names:
                    info.variables.setdefault(n, here)
        stack.append((args, here, depth + 1))
    info.nodes = nodes
    if mode == "segment":
        _static_size(rule, "$", limits)  # depth is bounded now: recursion is safe
    return info


def _static_size(node: Any, path: str, limits: RuleLimits) -> tuple[int, int]:
    """Upper bounds of a checked segment (sub-)rule's value: (string length, integer bits).

    A segment rule runs each node once per row and has no loops, so these bounds are what a row
    can cost; a rule whose literals alone exceed the limits is refused here, at validation, not
    while ``sizes``/``refresh`` run. A feature counts as 64 bits and as an empty string (its real
    length is checked when the rule runs: see ``evaluator``).
    """
    if isinstance(node, list | tuple):
        sizes = [_static_size(v, f"{path}[{i}]", limits) for i, v in enumerate(node)]
        return max((s for s, _ in sizes), default=0), max((b for _, b in sizes), default=0)
    if not isinstance(node, dict):
        if isinstance(node, str):
            return len(node), 0
        if isinstance(node, int):
            return node.bit_length() // 3 + 2, node.bit_length()
        return (len(repr(node)), 0) if isinstance(node, float) else (0, 0)
    op, args = next(iter(node.items()))
    here = f"{path}.{op}"
    if op in ("var", "missing", "missing_some"):
        return 20, 64
    argv = list(args) if isinstance(args, list | tuple) else [args]
    sizes = [_static_size(v, f"{here}[{i}]", limits) for i, v in enumerate(argv)]
    strings, bits = [s for s, _ in sizes], [b for _, b in sizes]
    if op == "cat":
        total = sum(strings)
        if total > limits.max_value_length:
            raise RuleError(
                f"'cat' can build a string of {total} characters, more than "
                f"{limits.max_value_length}",
                "concatenate fewer or shorter strings",
                path=here,
            )
        return total, 0
    if op == "substr":
        return strings[0], 0
    if op in ("+", "-", "*"):
        width = sum(bits) if op == "*" else max(bits) + len(bits).bit_length()
        if width > limits.max_result_bits:
            raise RuleError(
                f"{op!r} can compute an integer of {width} bits, more than "
                f"{limits.max_result_bits}",
                "multiply fewer or smaller numbers",
                path=here,
            )
        return width // 3 + 2, width
    if op in ("if", "?:", "and", "or", "min", "max", "%"):
        return max(strings, default=0), max(bits, default=0)
    return 8, 1  # comparisons, !, !!, in, /: a boolean or a float


def check_features(info: RuleInfo, feature_names: Collection[str]) -> None:
    """Check that every variable of a rule is a served feature.

    Args:
        info: The result of :func:`check_rule`.
        feature_names: The feature names the Feast repository serves.

    Raises:
        UnknownFeatureError: Lists every unknown name and the closest known ones.
    """
    unknown = [name for name in info.variables if name not in feature_names]
    if not unknown:
        return
    known = sorted(feature_names)
    suggestions = {n: difflib.get_close_matches(n, known, n=3, cutoff=0.5) for n in unknown}
    raise UnknownFeatureError(unknown, suggestions, path=info.variables[sorted(unknown)[0]])


def variables_of(rules: Iterable[Any]) -> set[str]:
    """Every feature name read by the given (already checked) segment rules."""
    names: set[str] = set()
    for rule in rules:
        names.update(check_rule(rule).variables)
    return names
