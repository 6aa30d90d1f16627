"""The :class:`Segment`: a name, a description and rules that must all hold."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentation.errors import RuleError
from segmentation.evaluator import evaluate_segment_rule, normalize_data
from segmentation.rules import RuleInfo, check_features, check_rule
from segmentation.vectorized import CompiledRule, compile_rule

__all__ = ["NamedRule", "Segment", "evaluate_frame"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAX_DESCRIPTION = 10_000


@dataclass(frozen=True)
class NamedRule:
    """One rule of a segment.

    Attributes:
        name: The rule's name (``rule1``, ``rule2``... when the definition gives none).
        rule: The JSONLogic rule.
    """

    name: str
    rule: dict[str, Any]
    info: RuleInfo = field(compare=False, repr=False)
    compiled: CompiledRule = field(compare=False, repr=False)


class Segment:
    """A customer segment: every rule must hold for a customer to be a member.

    Rules are checked when the segment is built (allow-listed operators, arities, size limits);
    feature names are checked by :meth:`validate` against the Feast repository.

    Args:
        name: Identifier (letters, digits, ``_ . -``); used in Redis keys and file names.
        rules: JSONLogic objects, or ``{"name": ..., "rule": {...}}`` objects.
        description: What the segment is for.

    Raises:
        RuleError: A rule is malformed or not allowed (the message names segment, rule, path).

    Example:
        >>> s = Segment("adults", [{">=": [{"var": "age"}, 18]}])
        >>> s.matches({"age": 40}), s.matches({"age": None})
        (True, False)
    """

    def __init__(
        self, name: str, rules: Sequence[Mapping[str, Any]], description: str = ""
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RuleError(
                f"invalid segment name {name!r}",
                "use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit",
                segment=str(name),
            )
        if isinstance(rules, Mapping) or not isinstance(rules, Sequence) or not rules:
            raise RuleError(
                "a segment needs a non-empty list of rules",
                'write "rules": [{...}, ...]',
                segment=name,
            )
        if description is None:
            description = ""
        elif isinstance(description, int | float):  # YAML reads `description: 2024` as a number
            description = str(description)
        if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
            raise RuleError(
                f"the description must be text of at most {_MAX_DESCRIPTION:,} characters, got "
                + (f"{len(description):,}" if isinstance(description, str) else "a non-string"),
                "write a short description",
                segment=name,
            )
        self.name = name
        self.description = description
        built: list[NamedRule] = []
        for i, item in enumerate(rules, start=1):
            rule_name = f"rule{i}"
            body: Any = item
            if isinstance(item, Mapping) and "rule" in item and set(item) <= {"name", "rule"}:
                given = item.get("name") or rule_name
                if not isinstance(given, str) or len(given) > 128:
                    raise RuleError(
                        f"the name of rule {i} is not a string of at most 128 characters",
                        'write e.g. "name": "high_value"',
                        segment=name,
                    )
                rule_name = given
                body = item["rule"]
            try:
                info = check_rule(body, mode="segment")
                compiled = compile_rule(body)
            except RuleError as e:
                raise e.located(segment=name, rule=rule_name) from e
            built.append(NamedRule(rule_name, body, info, compiled))
        self.rules: tuple[NamedRule, ...] = tuple(built)

    @classmethod
    def from_dict(cls, data: Any) -> Segment:
        """Build a segment from ``{"name": ..., "description": ..., "rules": [...]}``.

        Raises:
            RuleError: The object is not a segment definition, or a rule is refused.
        """
        if not isinstance(data, Mapping) or "name" not in data or "rules" not in data:
            raise RuleError(
                "a segment definition is an object with 'name' and 'rules'",
                'write {"name": "...", "description": "...", "rules": [{...}]}',
                segment=str(data.get("name")) if isinstance(data, Mapping) else None,
            )
        extra = set(data) - {"name", "description", "rules"}
        if extra:
            raise RuleError(
                f"unknown key(s) {sorted(map(str, extra))} in the segment definition",
                "keep only name, description and rules",
                segment=str(data["name"]),
            )
        return cls(data["name"], data["rules"], data.get("description") or "")

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data (what :meth:`from_dict` reads)."""
        return {
            "name": self.name,
            "description": self.description,
            "rules": [{"name": r.name, "rule": r.rule} for r in self.rules],
        }

    @property
    def features(self) -> set[str]:
        """Every feature name the rules read."""
        return {v for r in self.rules for v in r.info.variables}

    @property
    def fallbacks(self) -> list[tuple[str, str, str]]:
        """``(rule, path, reason)`` of sub-expressions the last :meth:`mask` ran per row."""
        return [(r.name, p, why) for r in self.rules for p, why in r.compiled.fallbacks]

    def validate(self, feature_names: Collection[str]) -> None:
        """Check that every ``var`` names a served feature.

        Raises:
            UnknownFeatureError: Lists the unknown names and the closest known ones.
        """
        for r in self.rules:
            try:
                check_features(r.info, feature_names)
            except RuleError as e:
                raise e.located(segment=self.name, rule=r.name) from e

    def matches(self, features: Mapping[str, Any]) -> bool:
        """Whether one customer is a member (per-row evaluation, segment null policy).

        Args:
            features: Feature name -> value; missing keys, None, NaN and pd.NA are all missing.
        """
        row = normalize_data(features)
        return all(evaluate_segment_rule(r.rule, row) for r in self.rules)

    def mask(self, frame: pd.DataFrame, cache: dict[str, Any] | None = None) -> pd.Series:
        """Membership of every row of ``frame`` (vectorized; same result as :meth:`matches`).

        Args:
            frame: One column per feature (missing: None/NaN/pd.NA).
            cache: Share one dict between segments evaluated on the same frame (see
                :func:`evaluate_frame`) so its columns are converted once.

        Returns:
            A boolean Series on ``frame``'s index, named after the segment.
        """
        shared: dict[str, Any] = {} if cache is None else cache
        out = np.ones(len(frame), dtype=bool)
        for r in self.rules:
            out &= r.compiled.mask(frame, shared)
        return pd.Series(out, index=frame.index, name=self.name, dtype=bool)

    def __repr__(self) -> str:
        return f"Segment(name={self.name!r}, rules={len(self.rules)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def evaluate_frame(segments: Sequence[Segment], frame: pd.DataFrame) -> pd.DataFrame:
    """Membership of every row of ``frame`` in every segment (vectorized, columns shared).

    Returns:
        A boolean DataFrame on ``frame``'s index, one column per segment.
    """
    cache: dict[str, Any] = {}
    return pd.DataFrame({s.name: s.mask(frame, cache) for s in segments}, index=frame.index)
