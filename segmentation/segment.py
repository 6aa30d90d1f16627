"""The :class:`Segment`: a name, a description and rules that must all hold."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentation.dependencies import evaluation_order
from segmentation.errors import RuleError
from segmentation.evaluator import evaluate_segment_rule, normalize_data
from segmentation.groups import RESERVED_GROUPS, GroupSpec
from segmentation.rules import RuleInfo, check_features, check_rule, reference_key
from segmentation.vectorized import CompiledRule, compile_rule

__all__ = ["NamedRule", "Segment", "evaluate_frame"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAX_DESCRIPTION = 10_000
_MAX_ARMS = 100
_SUM_TOLERANCE = 1e-9
_KEYS = {"name", "description", "rules", "holdout", "splits", "salt"}


def _fraction(value: Any) -> float | None:
    """A finite number (not a bool) as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _holdout(name: str, value: Any) -> float:
    h = _fraction(value)
    if h is None or not 0.0 <= h < 1.0:
        raise RuleError(
            f"holdout must be a number with 0 <= holdout < 1, got {value!r}",
            "write e.g. holdout: 0.1 (10% of the eligible customers held back as a control group)",
            segment=name,
        )
    return h


def _splits(name: str, value: Any) -> tuple[tuple[str, float], ...]:
    example = 'write e.g. splits: {"A": 0.5, "B": 0.5} (arm -> fraction, fractions summing to 1)'
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not value:
        raise RuleError(
            f"splits must be a non-empty mapping of arm name -> fraction, got {value!r}",
            example,
            segment=name,
        )
    if len(value) > _MAX_ARMS:
        raise RuleError(
            f"splits has {len(value)} arms, more than {_MAX_ARMS}", "use fewer arms", segment=name
        )
    arms: list[tuple[str, float]] = []
    for arm, raw in value.items():
        if not isinstance(arm, str) or not arm.strip() or len(arm) > 128:
            raise RuleError(
                f"split arm name {arm!r} is not a non-empty string of at most 128 characters",
                'name each arm, e.g. "A", "B" or "email_first"',
                segment=name,
            )
        if arm in RESERVED_GROUPS:
            raise RuleError(
                f"split arm name {arm!r} is reserved (group names "
                f"{', '.join(sorted(RESERVED_GROUPS))})",
                "give the arm another name",
                segment=name,
            )
        f = _fraction(raw)
        if f is None or f <= 0.0:
            raise RuleError(
                f"the fraction of split arm {arm!r} must be a number > 0, got {raw!r}",
                example,
                segment=name,
            )
        arms.append((arm, f))
    total = sum(f for _, f in arms)
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise RuleError(
            f"the split fractions sum to {total!r}, not 1",
            "make the fractions of the arms add up to 1 (they share the non-held-out members)",
            segment=name,
        )
    return tuple(arms)


def _salt(name: str, value: Any) -> str:
    if value is None:
        return name
    if isinstance(value, int) and not isinstance(value, bool):  # YAML reads `salt: 2024` as int
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise RuleError(
            f"salt must be a non-empty string of at most 256 characters, got {value!r}",
            "write e.g. salt: spring_campaign_2026 (or omit it: the segment's name is the salt)",
            segment=name,
        )
    return value


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
        rules: JSONLogic objects, or ``{"name": ..., "rule": {...}}`` objects. A rule may
            reference another segment: ``{"segment": "other"}`` is true when the customer is
            eligible for ``other`` (see :mod:`segmentation.dependencies`).
        description: What the segment is for.
        holdout: Fraction of the eligible customers held back as a control group
            (``0 <= holdout < 1``).
        splits: Arms of a test, ``{"A": 0.5, "B": 0.5}`` (fractions > 0 summing to 1) sharing the
            members not held out; ``None``: no arms (the targeted members' group is ``target``).
        salt: The hash salt of the groups (default: the segment's name); see
            :mod:`segmentation.groups`.

    Raises:
        RuleError: A rule is malformed or not allowed (the message names segment, rule, path),
            or holdout/splits/salt is invalid.

    Example:
        >>> s = Segment("adults", [{">=": [{"var": "age"}, 18]}])
        >>> s.matches({"age": 40}), s.matches({"age": None})
        (True, False)
    """

    def __init__(
        self,
        name: str,
        rules: Sequence[Mapping[str, Any]],
        description: str = "",
        *,
        holdout: float = 0.0,
        splits: Mapping[str, float] | None = None,
        salt: str | None = None,
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
        self.holdout = _holdout(name, holdout)
        self.splits: dict[str, float] = dict(_splits(name, splits))
        self.salt = _salt(name, salt)
        self.group_spec = GroupSpec(self.salt, self.holdout, tuple(self.splits.items()))
        """How eligible customers are split into groups (:mod:`segmentation.groups`)."""
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
        """Build a segment from ``{"name": ..., "description": ..., "rules": [...]}`` (and
        optionally ``holdout``, ``splits``, ``salt``).

        Raises:
            RuleError: The object is not a segment definition, or a rule is refused.
        """
        if not isinstance(data, Mapping) or "name" not in data or "rules" not in data:
            raise RuleError(
                "a segment definition is an object with 'name' and 'rules'",
                'write {"name": "...", "description": "...", "rules": [{...}]}',
                segment=str(data.get("name")) if isinstance(data, Mapping) else None,
            )
        extra = set(data) - _KEYS
        if extra:
            raise RuleError(
                f"unknown key(s) {sorted(map(str, extra))} in the segment definition",
                "keep only name, description, rules, holdout, splits and salt",
                segment=str(data["name"]),
            )
        holdout = data.get("holdout")
        return cls(
            data["name"],
            data["rules"],
            data.get("description") or "",
            holdout=0.0 if holdout is None else holdout,
            splits=data.get("splits"),
            salt=data.get("salt"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data (what :meth:`from_dict` reads); ``holdout``,
        ``splits`` and ``salt`` only when they are not the defaults."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "rules": [{"name": r.name, "rule": r.rule} for r in self.rules],
        }
        if self.holdout:
            out["holdout"] = self.holdout
        if self.splits:
            out["splits"] = dict(self.splits)
        if self.salt != self.name:
            out["salt"] = self.salt
        return out

    @property
    def references(self) -> dict[str, tuple[str, str]]:
        """Segments the rules reference (``{"segment": name}``) -> (rule name, path) of the first
        use, in rule order."""
        refs: dict[str, tuple[str, str]] = {}
        for r in self.rules:
            for name, path in r.info.segments.items():
                refs.setdefault(name, (r.name, path))
        return refs

    def groups(self, customer_ids: Sequence[Any], *, global_control: float = 0.0) -> np.ndarray:
        """The group of each id in this segment (``holdout``, ``global_control``, an arm's name
        or ``target``): the pinned hash of id and salt, whoever else is eligible.

        Args:
            customer_ids: The (eligible) customers.
            global_control: The global control fraction (``SEGMENTS_GLOBAL_CONTROL``).

        Returns:
            An object array of group names, in the order of ``customer_ids``.
        """
        return self.group_spec.groups(customer_ids, global_control=global_control)

    def group_of(self, customer_id: Any, *, global_control: float = 0.0) -> str:
        """One customer's group in this segment, were it eligible (see :meth:`groups`)."""
        group: str = self.groups([customer_id], global_control=global_control)[0]
        return group

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

    def matches(
        self, features: Mapping[str, Any], references: Mapping[str, bool] | None = None
    ) -> bool:
        """Whether one customer is eligible (per-row evaluation, segment null policy).

        Args:
            features: Feature name -> value; missing keys, None, NaN and pd.NA are all missing.
            references: The customer's eligibility in the segments this one references
                (``{"segment": name}``); required for each of them.

        Raises:
            RuleError: A referenced segment's eligibility is not given.
        """
        row = normalize_data(features)
        for name, eligible in (references or {}).items():
            row[reference_key(name)] = bool(eligible)
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
        extra = f", holdout={self.holdout!r}" if self.holdout else ""
        extra += f", splits={self.splits!r}" if self.splits else ""
        return f"Segment(name={self.name!r}, rules={len(self.rules)}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def evaluate_frame(segments: Sequence[Segment], frame: pd.DataFrame) -> pd.DataFrame:
    """Eligibility of every row of ``frame`` in every segment (vectorized, columns shared).

    Segments are evaluated in dependency order (:func:`~segmentation.dependencies.
    evaluation_order`): a segment's eligibility is added to the working frame before the segments
    that reference it (``{"segment": name}``) run.

    Args:
        segments: The segments, including every segment they reference.
        frame: One column per feature.

    Returns:
        A boolean DataFrame on ``frame``'s index, one column per segment, in the order given.

    Raises:
        SegmentReferenceError: A reference to a segment not among ``segments``, or a cycle.
    """
    ordered = evaluation_order(segments)
    referenced = {name for s in ordered for name in s.references}
    cache: dict[str, Any] = {}
    work = frame
    masks: dict[str, pd.Series] = {}
    for seg in ordered:
        masks[seg.name] = seg.mask(work, cache)
        if seg.name in referenced:
            if work is frame:  # never add columns to the caller's frame
                work = frame.copy(deep=False)
            work[reference_key(seg.name)] = masks[seg.name].to_numpy(dtype=bool)
            cache.pop("rows", None)  # per-row fallback rows must now carry the new column
    return pd.DataFrame({s.name: masks[s.name] for s in segments}, index=frame.index)
