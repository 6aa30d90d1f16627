"""The ``segmentation`` command tree (:data:`TREE`) and :func:`main`.

The commands' options and bodies live in :mod:`.common`, :mod:`.members`, :mod:`.dwh`,
:mod:`.look` and :mod:`.events`; this module only assembles them.
"""

from __future__ import annotations

from collections.abc import Sequence

from xiva_source.cli.app import Command, CommandTree
from xiva_source.cli.segmentation.common import _global_options, _no_options
from xiva_source.cli.segmentation.events import _events, _events_options
from xiva_source.cli.segmentation.look import (
    _overlap,
    _overlap_options,
    _preview,
    _preview_options,
    _report,
    _report_options,
)
from xiva_source.cli.segmentation.members import (
    _evaluate,
    _evaluate_options,
    _history,
    _history_options,
    _list,
    _list_options,
    _members,
    _members_options,
    _refresh,
    _refresh_options,
    _sizes,
    _sizes_options,
    _validate,
)

__all__ = ["TREE", "main"]


TREE = CommandTree(
    prog="segmentation",
    description="JSONLogic customer segments over the Feast online features (Redis).",
    global_options=_global_options,
    commands=(
        Command(
            "validate",
            help="check the segment files against the repository's features",
            description="Load every segment file and check each rule (operators, limits) and "
            "each feature name against the features the repository serves; every problem is "
            "listed. Exit status 1 when any is found.",
            configure=_no_options,
            run=_validate,
        ),
        Command(
            "list",
            help="list the segments (or the served features)",
            description="List the segments of the segments directory, or with --features the "
            "features and feature services the repository serves.",
            configure=_list_options,
            run=_list,
        ),
        Command(
            "evaluate",
            help="one customer's segments and feature values",
            description="Read one customer's online features and print, as JSON, the segments "
            "they belong to now and the values the segments read.",
            configure=_evaluate_options,
            run=_evaluate,
        ),
        Command(
            "sizes",
            help="every segment's size now (whole population)",
            description="Evaluate every segment over the whole online population and print "
            "each one's size and share of the population, then the population.",
            configure=_sizes_options,
            run=_sizes,
        ),
        Command(
            "members",
            help="a segment's members now (or --stored)",
            description="Print a segment's members now (or, with --stored, those of its last "
            "refresh), or write them to a CSV or parquet file with --output.",
            configure=lambda p: _members_options(p, export=False),
            run=_members,
        ),
        Command(
            "export",
            help="write a segment's members to CSV or parquet",
            description="Write a segment's members (optionally with their feature values) to "
            "a *.csv or *.parquet file.",
            configure=lambda p: _members_options(p, export=True),
            run=_members,
        ),
        Command(
            "refresh",
            help="recompute and store the memberships in Redis",
            description="Recompute the named segments (default: all) and store their members in "
            "Redis, with who joined and who left, and a size history entry.",
            configure=_refresh_options,
            run=_refresh,
        ),
        Command(
            "history",
            help="a segment's refresh history",
            description="Print a segment's stored refresh history: size, joined and left per "
            "refresh.",
            configure=_history_options,
            run=_history,
        ),
        Command(
            "events",
            help="read the membership event stream (joined / left)",
            description="Print the membership events (joined/left, segment, customer, group, "
            "time) of the project's Redis Stream, oldest first: the newest --count, or those "
            "after --since (an entry id, exclusive, or an ISO 8601 time). With --json, one JSON "
            "object per line. Consumers should use a consumer group (docs/segmentation.md).",
            configure=_events_options,
            run=_events,
        ),
        Command(
            "preview",
            help="per-rule counts and a sample of a segment's members",
            description="Evaluate one segment over the whole population and print how many "
            "customers pass each rule alone and together with the rules above it (the running "
            "intersection), and the first N member ids in sorted order.",
            configure=_preview_options,
            run=_preview,
        ),
        Command(
            "overlap",
            help="the most overlapping pairs of segments (counts and Jaccard)",
            description="Evaluate the named segments (default: all) over the whole population "
            "in one pass and print the most overlapping pairs (--top K, default 20; --all: every "
            "pair, up to 100,000): the customers in both and the Jaccard index |A & B| / |A | B|.",
            configure=_overlap_options,
            run=_overlap,
        ),
        Command(
            "report",
            help="write one self-contained HTML report of the segments",
            description="Write one HTML page (no network needed to open it, printable): a card "
            "per segment (description, rules in words, size and its trend, groups), the sizes "
            "at a glance, the size history, and the most overlapping pairs in words (--top K).",
            configure=_report_options,
            run=_report,
        ),
    ),
)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``segmentation``; returns the exit status (0 ok, 1 failure, 2 usage/configuration).

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        prog: The program name in messages (default ``segmentation``).
    """
    return TREE.main(argv, prog=prog)
