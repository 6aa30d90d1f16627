"""Segments of segments: the dependency graph of ``{"segment": name}`` references.

A rule ``{"segment": "other"}`` is true when the customer is *eligible* for ``other`` (its rules
hold), whatever its group there (holdout or not). So ``other`` is evaluated before the segments
that reference it: :func:`evaluation_order` sorts segments topologically, :func:`required` adds
what a segment asked for alone needs, :func:`check_references` finds every unknown reference
and every cycle (``a -> b -> a``) at validation time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from segmentation.errors import (
    SegmentCycleError,
    SegmentReferenceError,
    UnknownSegmentError,
    UnknownSegmentReferenceError,
)

if TYPE_CHECKING:
    from segmentation.segment import Segment

__all__ = ["check_references", "evaluation_order", "graph", "required"]


def graph(segments: Iterable[Segment]) -> dict[str, list[str]]:
    """Segment name -> the names its rules reference (in rule order, unknown names included)."""
    return {s.name: list(s.references) for s in segments}


def _unknown(seg: Segment, known: Iterable[str]) -> UnknownSegmentReferenceError | None:
    names = set(known)
    for ref, (rule, path) in seg.references.items():
        if ref not in names:
            return UnknownSegmentReferenceError(ref, names, segment=seg.name, rule=rule, path=path)
    return None


def _cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, as ``[a, b, a]``)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    found: list[list[str]] = []
    for start in edges:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            targets = [t for t in edges.get(node, ()) if t in edges]
            if i < len(targets):
                stack[-1] = (node, i + 1)
                nxt = targets[i]
                if state.get(nxt) == 1:
                    found.append([*path[path.index(nxt) :], nxt])
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return found


def check_references(
    segments: Sequence[Segment],
) -> tuple[list[Segment], list[SegmentReferenceError]]:
    """Find every reference problem: unknown segments, cycles, and what depends on them.

    Args:
        segments: The loaded segments.

    Returns:
        The segments whose references all resolve (in the order given), and one error per
        problem: an :class:`~segmentation.errors.UnknownSegmentReferenceError` naming the unknown
        segment and the known ones, a :class:`~segmentation.errors.SegmentCycleError` per cycle
        (``a -> b -> a``), a :class:`~segmentation.errors.SegmentReferenceError` for a segment
        that references one of those.
    """
    by_name = {s.name: s for s in segments}
    errors: list[SegmentReferenceError] = []
    bad: set[str] = set()
    for seg in segments:
        problem = _unknown(seg, by_name)
        if problem is not None:
            errors.append(problem)
            bad.add(seg.name)
    for cycle in _cycles(graph(s for s in segments if s.name not in bad)):
        first = by_name[cycle[0]]
        rule, path = first.references[cycle[1]]
        errors.append(SegmentCycleError(cycle, segment=first.name, rule=rule, path=path))
        bad.update(cycle)
    changed = True
    while changed:  # whatever references a bad segment cannot be evaluated either
        changed = False
        for seg in segments:
            if seg.name in bad:
                continue
            broken = next((r for r in seg.references if r in bad), None)
            if broken is not None:
                rule, path = seg.references[broken]
                errors.append(
                    SegmentReferenceError(
                        f"references segment {broken!r}, which has an error",
                        f"fix the error of segment {broken!r} first",
                        segment=seg.name,
                        rule=rule,
                        path=path,
                    )
                )
                bad.add(seg.name)
                changed = True
    return [s for s in segments if s.name not in bad], errors


def evaluation_order(segments: Iterable[Segment]) -> list[Segment]:
    """The segments sorted so every segment comes after the ones it references.

    The order given is kept wherever the references allow it (a depth-first post-order).

    Raises:
        SegmentReferenceError: A reference is unknown (among ``segments``) or in a cycle; the
            message names the segments.
    """
    given = list(segments)
    _, errors = check_references(given)
    if errors:
        raise errors[0]
    by_name = {s.name: s for s in given}
    done: set[str] = set()
    out: list[Segment] = []
    for seg in given:
        stack: list[tuple[Segment, int]] = [(seg, 0)]
        while stack:
            node, i = stack[-1]
            refs = list(node.references)
            if node.name in done:
                stack.pop()
            elif i < len(refs):
                stack[-1] = (node, i + 1)
                if refs[i] not in done:
                    stack.append((by_name[refs[i]], 0))
            else:
                done.add(node.name)
                out.append(node)
                stack.pop()
    return out


def required(names: Iterable[str], segments: Mapping[str, Segment]) -> list[Segment]:
    """The segments ``names`` need, themselves included, in evaluation order.

    Args:
        names: The segments asked for.
        segments: Every loaded segment by name.

    Raises:
        UnknownSegmentError: A name asked for is not loaded.
        SegmentReferenceError: A reference is unknown or in a cycle.
    """
    wanted: dict[str, Segment] = {}
    todo = list(names)
    for n in todo:
        if n not in segments:
            raise UnknownSegmentError(n, list(segments))
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        seg = segments[name]
        problem = _unknown(seg, segments)
        if problem is not None:
            raise problem
        wanted[name] = seg
        todo.extend(seg.references)
    order = [s for s in segments.values() if s.name in wanted]
    return evaluation_order(order)
