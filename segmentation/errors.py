"""The segmentation error hierarchy: every error names the problem and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "FEATURE_NAME_HINT",
    "OnlineStoreError",
    "RuleError",
    "SegmentFileError",
    "SegmentationError",
    "UnknownFeatureError",
    "UnknownSegmentError",
]

FEATURE_NAME_HINT = (
    "Feature names in JSONLogic rules must match the Feast feature names "
    "(e.g. customer_status, not status)"
)


class SegmentationError(Exception):
    """Root of every error raised by :mod:`segmentation`."""


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

    Attributes:
        problem: What is wrong.
        fix: How to fix it.
        segment: The segment's name, when known.
        rule: The rule's name, when known.
        path: Where in the rule (``$.and[1].<[0]``), when known.
    """

    def __init__(
        self,
        problem: str,
        fix: str,
        *,
        segment: str | None = None,
        rule: str | None = None,
        path: str | None = None,
    ) -> None:
        self.problem = problem
        self.fix = fix
        self.segment = segment
        self.rule = rule
        self.path = path
        where = _where(segment, rule, path)
        super().__init__(f"{where + ': ' if where else ''}{problem}. Fix: {fix}")

    def located(self, *, segment: str | None = None, rule: str | None = None) -> RuleError:
        """The same error, with the segment and rule names filled in."""
        return type(self)(
            self.problem,
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


class SegmentFileError(SegmentationError):
    """A segment file (or directory) cannot be read or does not describe segments."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}. Fix: {fix}")


class UnknownSegmentError(SegmentationError):
    """A segment name that is not loaded."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(
            f"unknown segment {name!r}. Fix: use one of {', '.join(sorted(known)) or '(none)'}"
        )


class OnlineStoreError(SegmentationError):
    """The Feast online store is not usable by the segmentation engine."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. Fix: {fix}")
