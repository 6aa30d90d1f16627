"""Segments in plain words: a JSONLogic rule as a sentence, a segment's groups, an overlap.

For people who do not read JSONLogic (the report's cards, ``segmentation report``)::

    {"and": [{"==": [{"var": "status"}, "active"]}, {">": [{"var": "total_revenue"}, 500]}]}
    -> status is 'active' and total_revenue > 500

Every operator of :data:`~segmentation.rules.SEGMENT_OPERATORS` has its words; anything else (an
unknown operator, a malformed node, a rule nested deeper than :data:`MAX_DEPTH`) falls back to
compact JSON for that sub-rule, so the functions never raise on odd input. A text longer than
:data:`MAX_RULE_CHARS` is cut with an ellipsis. The results are plain text: escape them before
putting them into HTML.

Example:
    >>> rule_in_words({"<=": [18, {"var": "age"}, 29]})
    'age is between 18 and 29'
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segmentation.overlap import PairOverlap
    from segmentation.segment import Segment

__all__ = [
    "MAX_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_RULE_CHARS",
    "groups_in_words",
    "pair_in_words",
    "rule_in_words",
    "rules_in_words",
]

MAX_DEPTH = 40
"""Deeper sub-rules are shown as JSON (checked rules are at most 32 deep)."""
MAX_LIST_ITEMS = 8
"""Items of a literal list shown before "and N more"."""
MAX_RULE_CHARS = 1_000
"""Longest text of one rule; a longer one is cut with an ellipsis."""

_COMPARISONS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}
_EQUALITY = {"==": "is", "===": "is", "!=": "is not", "!==": "is not"}
_NEGATED = {"is": "is not", "is not": "is", "<": "≥", "≤": ">", ">": "≤", "≥": "<"}
_ARITHMETIC = {"+": "+", "-": "-", "*": "*", "/": "/", "%": "mod"}
# Binding strength of what a sub-rule's words are: a weaker child is put in parentheses.
_IF, _OR, _AND, _NOT, _ATOM = 0, 1, 2, 3, 4


def _json(node: Any) -> str:
    try:
        return json.dumps(node, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # a cycle or a key json cannot write
        return "(a rule that is not JSON)"
    except RecursionError:
        return "(a rule nested too deeply to show)"


def _number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return repr(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return repr(value)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return f'"{value}"' if "'" in value and '"' not in value else f"'{value}'"
    if isinstance(value, list | tuple):
        return "[" + _items(value) + "]"
    return _json(value)


def _items(values: Sequence[Any], conjunction: str = ",") -> str:
    shown = [_literal(v) if not isinstance(v, dict) else _json(v) for v in values[:MAX_LIST_ITEMS]]
    more = len(values) - len(shown)
    if more > 0:
        return ", ".join(shown) + f" and {more:,} more"
    if conjunction != "," and len(shown) > 1:
        return ", ".join(shown[:-1]) + f" {conjunction} " + shown[-1]
    return ", ".join(shown)


def _args(node: Mapping[str, Any]) -> tuple[str, list[Any]]:
    op, raw = next(iter(node.items()))
    return str(op), list(raw) if isinstance(raw, list | tuple) else [raw]


class _Words:
    """One rule's words: ``phrase(node)`` returns (text, binding strength)."""

    def phrase(self, node: Any, depth: int = 0) -> tuple[str, int]:
        if depth > MAX_DEPTH:
            return _json(node), _ATOM
        if not isinstance(node, dict):
            return _literal(node), _ATOM
        if len(node) != 1:
            return _json(node), _ATOM
        op, argv = _args(node)
        method = _OPERATORS.get(op)
        if method is None:
            return _json(node), _ATOM
        try:
            return method(self, argv, depth + 1)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            return _json(node), _ATOM  # a malformed node of a known operator

    def text(self, node: Any, depth: int, above: int = _ATOM) -> str:
        """The words of ``node``, in parentheses when they bind weaker than ``above``."""
        words, strength = self.phrase(node, depth)
        return f"({words})" if strength < above else words

    # The operators, in the order of SEGMENT_OPERATORS.

    def var(self, argv: list[Any], depth: int) -> tuple[str, int]:
        name = argv[0]
        if not isinstance(name, str):
            return _json({"var": argv}), _ATOM
        if len(argv) > 1:
            return f"{name} (else {self.text(argv[1], depth)})", _ATOM
        return name, _ATOM

    def missing(self, argv: list[Any], depth: int) -> tuple[str, int]:
        del depth
        names = argv[0] if len(argv) == 1 and isinstance(argv[0], list) else argv
        return f"{_names(names, 'or')} is missing", _NOT

    def missing_some(self, argv: list[Any], depth: int) -> tuple[str, int]:
        del depth
        need, names = argv
        return f"fewer than {_literal(need)} of {_names(names, 'and')} are present", _NOT

    def if_(self, argv: list[Any], depth: int) -> tuple[str, int]:
        parts = []
        for i in range(0, len(argv) - 1, 2):
            cond, then = self.text(argv[i], depth, _NOT), self.text(argv[i + 1], depth, _NOT)
            parts.append(f"{'if' if i == 0 else 'else if'} {cond} then {then}")
        if len(argv) % 2:
            last = self.text(argv[-1], depth, _NOT)
            parts.append(f"else {last}" if parts else last)
        return ", ".join(parts), _IF

    def and_(self, argv: list[Any], depth: int) -> tuple[str, int]:
        if len(argv) == 1:
            return self.phrase(argv[0], depth)
        return " and ".join(self.text(a, depth, _AND) for a in argv), _AND

    def or_(self, argv: list[Any], depth: int) -> tuple[str, int]:
        if len(argv) == 1:
            return self.phrase(argv[0], depth)
        # An "and" inside an "or" gets parentheses too: readers do not know the precedence.
        parts = []
        for a in argv:
            words, strength = self.phrase(a, depth)
            parts.append(f"({words})" if strength in (_IF, _AND) else words)
        return " or ".join(parts), _OR

    def not_(self, argv: list[Any], depth: int) -> tuple[str, int]:
        inner = argv[0]
        if isinstance(inner, dict) and len(inner) == 1:
            op, args = _args(inner)
            if op in _EQUALITY or (op in _COMPARISONS and len(args) == 2):
                return self.compare_op(args, depth, op=op, negate=True)
            if op == "in":
                return self._in(args, depth, negate=True)
            if op == "segment":
                return f"not in segment {_literal(args[0])}", _ATOM
            if op == "missing":
                names = args[0] if len(args) == 1 and isinstance(args[0], list) else args
                verb = "is" if len(names) == 1 else "are all"
                return f"{_names(names, 'and')} {verb} present", _NOT
            if op == "!":
                return self.truthy(args, depth)
        return f"not {self.text(inner, depth, _ATOM)}", _NOT

    def truthy(self, argv: list[Any], depth: int) -> tuple[str, int]:
        return f"{self.text(argv[0], depth)} is set (not empty, zero or false)", _NOT

    def compare_op(
        self, argv: list[Any], depth: int, *, op: str, negate: bool = False
    ) -> tuple[str, int]:
        if op in _COMPARISONS and len(argv) == 3:
            low, value, high = (self.text(a, depth, _ATOM) for a in argv)
            inclusive = op == "<="
            words = f"{value} is {'' if inclusive else 'strictly '}between {low} and {high}"
            return (f"not ({words})" if negate else words), _NOT
        left, right = argv
        verb = _EQUALITY.get(op) or _COMPARISONS[op]
        if negate:
            verb = _NEGATED[verb]
        if verb in ("is", "is not") and (left is None or right is None):
            subject = right if left is None else left
            present = "missing" if verb == "is" else "present"
            return f"{self.text(subject, depth, _ATOM)} is {present}", _NOT
        return f"{self.text(left, depth, _ATOM)} {verb} {self.text(right, depth, _ATOM)}", _NOT

    def in_(self, argv: list[Any], depth: int) -> tuple[str, int]:
        return self._in(argv, depth)

    def _in(self, argv: list[Any], depth: int, *, negate: bool = False) -> tuple[str, int]:
        needle, haystack = argv
        left = self.text(needle, depth, _ATOM)
        if isinstance(haystack, list):
            if not haystack:
                return f"{left} is {'' if negate else 'never '}in an empty list", _NOT
            if len(haystack) == 1:
                return f"{left} is {'not ' if negate else ''}{_literal(haystack[0])}", _NOT
            return f"{left} is {'not ' if negate else ''}one of {_items(haystack)}", _NOT
        container = self.text(haystack, depth, _ATOM)
        return f"{container} {'does not contain' if negate else 'contains'} {left}", _NOT

    def arithmetic_op(self, argv: list[Any], depth: int, *, op: str) -> tuple[str, int]:
        if op == "-" and len(argv) == 1:
            return f"-{self.text(argv[0], depth, _ATOM)}", _ATOM
        if len(argv) == 1:
            return self.phrase(argv[0], depth)
        joined = f" {_ARITHMETIC[op]} ".join(self.text(a, depth, _ATOM) for a in argv)
        return f"({joined})", _ATOM

    def function_op(self, argv: list[Any], depth: int, *, op: str) -> tuple[str, int]:
        return f"{op}({', '.join(self.text(a, depth) for a in argv)})", _ATOM

    def segment(self, argv: list[Any], depth: int) -> tuple[str, int]:
        del depth
        return f"in segment {_literal(argv[0])}", _ATOM


def _names(names: Any, conjunction: str) -> str:
    if not isinstance(names, list | tuple):
        return _json(names)
    plain = [str(n) if isinstance(n, str) else _json(n) for n in names[:MAX_LIST_ITEMS]]
    more = len(names) - len(plain)
    if more > 0:
        return ", ".join(plain) + f" and {more:,} more"
    if len(plain) > 1:
        return ", ".join(plain[:-1]) + f" {conjunction} " + plain[-1]
    return plain[0] if plain else "nothing"


_OPERATORS: dict[str, Callable[[_Words, list[Any], int], tuple[str, int]]] = {
    "var": _Words.var,
    "missing": _Words.missing,
    "missing_some": _Words.missing_some,
    "if": _Words.if_,
    "?:": _Words.if_,
    "and": _Words.and_,
    "or": _Words.or_,
    "!": _Words.not_,
    "!!": _Words.truthy,
    "in": _Words.in_,
    "segment": _Words.segment,
    **{op: partial(_Words.compare_op, op=op) for op in (*_EQUALITY, *_COMPARISONS)},
    **{op: partial(_Words.arithmetic_op, op=op) for op in _ARITHMETIC},
    **{op: partial(_Words.function_op, op=op) for op in ("min", "max", "cat", "substr")},
}


def rule_in_words(rule: Any) -> str:
    """A JSONLogic rule as readable text (never raises).

    Args:
        rule: A rule, normally checked (:func:`~segmentation.rules.check_rule`); anything else
            is shown as compact JSON where it cannot be put in words.

    Returns:
        Plain text (not escaped), at most :data:`MAX_RULE_CHARS` characters.
    """
    try:
        text, _ = _Words().phrase(rule)
    except RecursionError:
        text = _json(rule)
    if len(text) > MAX_RULE_CHARS:
        text = text[: MAX_RULE_CHARS - 1] + "…"
    return text


def rules_in_words(segment: Segment) -> list[tuple[str | None, str]]:
    """Each rule of a segment as ``(name, words)``; the name is None when the definition gave
    none (``rule1``, ``rule2``...). A customer is a member when every rule holds."""
    out: list[tuple[str | None, str]] = []
    for i, rule in enumerate(segment.rules, start=1):
        name = None if rule.name == f"rule{i}" else rule.name
        out.append((name, rule_in_words(rule.rule)))
    return out


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def groups_in_words(segment: Segment, global_control: float = 0.0) -> str:
    """How a segment's eligible customers are split, in one sentence.

    Args:
        segment: The segment (its ``holdout`` and ``splits``).
        global_control: The global control fraction (``SEGMENTS_GLOBAL_CONTROL``).
    """
    parts: list[str] = []
    if global_control:
        parts.append(f"{_pct(global_control)} of all customers are the global control group")
    if segment.holdout:
        parts.append(f"{_pct(segment.holdout)} held out as a control group")
    if segment.splits:
        arms = ", ".join(f"{arm} {_pct(f)}" for arm, f in segment.splits.items())
        parts.append(f"the rest split between {len(segment.splits)} arms: {arms}")
    elif parts:
        parts.append("the rest targeted")
    else:
        return "Every eligible customer is targeted (no holdout, no split)."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def pair_in_words(pair: PairOverlap) -> str:
    """``"120 of 300 members of a are also in b (40.0%); 6.0% of b's 2,000."``

    The smaller segment is named first (its share is the telling one).
    """
    if pair.both == 0:
        return f"{pair.a} and {pair.b} share no customer."
    small, small_size, large, large_size = pair.a, pair.size_a, pair.b, pair.size_b
    if pair.size_b < pair.size_a:
        small, small_size, large, large_size = large, large_size, small, small_size
    return (
        f"{pair.both:,} of the {small_size:,} members of {small} are also in {large} "
        f"({100 * pair.both / small_size:.1f}%); they are {100 * pair.both / large_size:.1f}% "
        f"of the {large_size:,} members of {large}."
    )
