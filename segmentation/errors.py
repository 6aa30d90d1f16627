"""Errors of the segmentation package, a branch of the project's tree::

    LoyaltyError                   xiva_source.errors (problem, fix, exit_code)
    ├── SegmentationError          a segment could not be loaded, checked or evaluated
    │   ├── RuleError              a rule is malformed, forbidden or over a limit
    │   │   ├── UnknownFeatureError   a rule reads a feature the repository does not serve
    │   │   ├── EvaluationLimitError  an evaluation ran over its budget (work, value sizes, data)
    │   │   └── SegmentReferenceError  a {"segment": ...} reference is unknown or in a cycle
    │   │       ├── UnknownSegmentReferenceError
    │   │       └── SegmentCycleError
    │   ├── SegmentFileError       a segment file or directory cannot be read (path)
    │   └── UnknownSegmentError    a segment name that is not loaded
    └── OnlineStoreError           xiva_source.feast_plugin.errors (re-exported here)

Every error carries ``problem`` (located: segment, rule, file) and ``fix`` as fields; ``str(error)``
is ``"<problem>. Fix: <fix>"``, with the fix once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from xiva_source.errors import LoyaltyError
from xiva_source.feast_plugin.errors import OnlineStoreError

__all__ = [
    "FEATURE_NAME_HINT",
    "EvaluationLimitError",
    "OnlineStoreError",
    "RuleError",
    "SegmentCycleError",
    "SegmentFileError",
    "SegmentReferenceError",
    "SegmentationError",
    "UnknownFeatureError",
    "UnknownSegmentError",
    "UnknownSegmentReferenceError",
]

FEATURE_NAME_HINT = (
    "Feature names in JSONLogic rules must match the Feast feature names "
    "(e.g. customer_status, not status)"
)


class SegmentationError(LoyaltyError):
    """Root of the errors raised by :mod:`segmentation` (the online store's are
    :class:`~xiva_source.feast_plugin.errors.OnlineStoreError`).

    Args:
        problem: What went wrong.
        fix: What to do about it.
    """


def _where(segment: str | None, rule: str | None, path: str | None) -> str:
    parts = []
    if segment:
        parts.append(f"segment {segment!r}")
    if rule:
        parts.append(f"rule {rule!r}")
    if path:
        parts.append(f"at {path}")
    return ", ".join(parts)


class RuleError(SegmentationError):
    """A rule is malformed, uses a forbidden operator or exceeds a limit.

    Args:
        reason: What is wrong with the rule, without its location.
        fix: How to fix it.
        segment: The segment's name, when known.
        rule: The rule's name, when known.
        path: Where in the rule (``$.and[1].<[0]``), when known.

    Attributes:
        problem: ``reason`` prefixed with the location (segment, rule, path).
        reason: As given.
    """

    def __init__(
        self,
        reason: str,
        fix: str,
        *,
        segment: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        self.reason = reason
        self.segment = segment
        self.rule = rule
        self.path = path
        where = _where(segment, rule, path)
        super().__init__(f"{where + ': ' if where else ''}{reason}", fix)

    def located(self, *, segment: str | None = None, rule: str | None = None) -> RuleError:
        """The same error, with the segment and rule names filled in."""
        return type(self)(
            self.reason,
            self.fix,
            segment=segment or self.segment,
            rule=rule or self.rule,
            path=self.path,
        )


class UnknownFeatureError(RuleError):
    """A rule's ``var`` names a feature the Feast repository does not serve.

    Attributes:
        unknown: The unknown names, sorted.
        suggestions: For each unknown name, the closest known feature names.
    """

    def __init__(
        self,
        unknown: Iterable[str],
        suggestions: Mapping[str, Sequence[str]],
        *,
        segment: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        self.unknown = sorted(set(unknown))
        self.suggestions = {k: list(v) for k, v in suggestions.items()}
        described = []
        for name in self.unknown:
            close = self.suggestions.get(name) or []
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            described.append(f"{name!r}{hint}")
        problem = f"unknown feature name(s): {'; '.join(described)}"
        super().__init__(
            problem,
            f"{FEATURE_NAME_HINT}; list them with `python -m segmentation list --features`",
            segment=segment,
            rule=rule,
            path=path,
        )

    def located(
        self, *, segment: str | None = None, rule: str | None = None
    ) -> UnknownFeatureError:
        """The same error, with the segment and rule names filled in."""
        return UnknownFeatureError(
            self.unknown,
            self.suggestions,
            segment=segment or self.segment,
            rule=rule or self.rule,
            path=self.path,
        )


class EvaluationLimitError(RuleError):
    """An evaluation ran over its budget: too many operations, a value (string, array, integer)
    too large, or data nested too deep (:class:`~segmentation.rules.RuleLimits`)."""


class SegmentReferenceError(RuleError):
    """A ``{"segment": name}`` reference that cannot be evaluated (unknown name, or a cycle)."""


class UnknownSegmentReferenceError(SegmentReferenceError):
    """A rule references a segment that is not loaded.

    Attributes:
        name: The unknown name.
        known: The segments that are loaded, sorted.
    """

    def __init__(
        self,
        name: str,
        known: Iterable[str],
        *,
        segment: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"references unknown segment {name!r} (known: {', '.join(self.known) or 'none'})",
            "reference one of the known segments, or define the missing one",
            segment=segment,
            rule=rule,
            path=path,
        )

    def located(
        self, *, segment: str | None = None, rule: str | None = None
    ) -> UnknownSegmentReferenceError:
        """The same error, with the segment and rule names filled in."""
        return UnknownSegmentReferenceError(
            self.name,
            self.known,
            segment=segment or self.segment,
            rule=rule or self.rule,
            path=self.path,
        )


class SegmentCycleError(SegmentReferenceError):
    """Segments reference each other in a cycle.

    Attributes:
        cycle: The segments of the cycle, the first repeated at the end (``["a", "b", "a"]``).
    """

    def __init__(
        self,
        cycle: Sequence[str],
        *,
        segment: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        self.cycle = list(cycle)
        super().__init__(
            f"segments reference each other in a cycle: {' -> '.join(self.cycle)}",
            "remove one of these references (a segment cannot depend on itself)",
            segment=segment,
            rule=rule,
            path=path,
        )

    def located(self, *, segment: str | None = None, rule: str | None = None) -> SegmentCycleError:
        """The same error, with the segment and rule names filled in."""
        return SegmentCycleError(
            self.cycle, segment=segment or self.segment, rule=rule or self.rule, path=self.path
        )


class SegmentFileError(SegmentationError):
    """A segment file (or directory) cannot be read or does not describe segments.

    Args:
        path: The file or directory.
        reason: What is wrong with it.
        fix: How to fix it.
    """

    def __init__(self, path: str, reason: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}", fix)


class UnknownSegmentError(SegmentationError):
    """A segment name that is not loaded."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(
            f"unknown segment {name!r}", f"use one of {', '.join(sorted(known)) or '(none)'}"
        )
