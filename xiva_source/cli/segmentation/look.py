"""Looking at segments before using them: ``preview``, ``overlap`` and the HTML ``report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from xiva_source.cli.app import CommandContext
from xiva_source.cli.boundary import EXIT_OK
from xiva_source.cli.segmentation.common import (
    _check_arguments,
    _engine,
    _json_option,
    _non_negative,
    _percent,
    _print_json,
    _status,
)


def _preview_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment", help="the segment's name")
    parser.add_argument(
        "--sample", type=_non_negative, default=10, metavar="N", help="member ids to show"
    )
    _json_option(parser)


def _preview(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.preview import preview

    _check_arguments(args, context, segment=args.segment)
    result = preview(_engine(args, context), args.segment, sample=args.sample)
    if args.json:
        _print_json(result.to_dict())
        return EXIT_OK
    pop = result.population
    print(f"{result.segment}: {result.size} of {pop} customer(s) ({_percent(result.size, pop)})")
    rows = [("rule", "passes alone", "with the rules above")] + [
        (
            r.name,
            f"{r.passing} ({_percent(r.passing, pop)})",
            f"{r.cumulative} ({_percent(r.cumulative, pop)})",
        )
        for r in result.rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
    if args.sample:
        shown = " ".join(result.sample) if result.sample else "(no member)"
        print(f"sample (first {args.sample} by id): {shown}")
    return EXIT_OK


def _pair_limit(value: str) -> int:
    from segmentation.pairs import MAX_LISTED_PAIRS

    number = _non_negative(value)
    if number > MAX_LISTED_PAIRS:
        raise argparse.ArgumentTypeError(
            f"{value!r}: at most {MAX_LISTED_PAIRS:,} pairs are listed (or name fewer segments)"
        )
    return number


def _overlap_options(parser: argparse.ArgumentParser) -> None:
    from segmentation.pairs import DEFAULT_TOP_PAIRS, MAX_LISTED_PAIRS

    parser.add_argument("segments", nargs="*", help="segment names (default: all)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--top",
        type=_pair_limit,
        default=DEFAULT_TOP_PAIRS,
        metavar="K",
        help=f"list the K most overlapping pairs, by Jaccard (default {DEFAULT_TOP_PAIRS})",
    )
    which.add_argument(
        "--all",
        action="store_true",
        help=f"list every pair, in the segments' order (up to {MAX_LISTED_PAIRS:,} pairs)",
    )
    _json_option(parser)


def _overlap(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.overlap import overlap
    from segmentation.pairs import check_pair_listing

    top = None if args.all else args.top
    engine = _engine(args, context)
    # Refused before the population is read: the names alone tell how many pairs there are.
    check_pair_listing(len(args.segments or engine.segments), top)
    result = overlap(engine, args.segments or None)
    if args.json:
        _print_json(result.to_dict(top))
        return _status(args)
    print("segment_a\tsegment_b\tin_both\tjaccard")
    rows = (
        result.pairs()
        if top is None
        else ((p.a, p.b, p.both, p.jaccard) for p in result.top_pairs(top))
    )
    for a, b, both, jac in rows:
        print(f"{a}\t{b}\t{both}\t{'-' if jac is None else f'{jac:.4f}'}")
    print(f"population: {result.population} customer(s)")
    if top is not None and top < result.pair_count:
        print(
            f"shown: the {top:,} most overlapping of {result.pair_count:,} pair(s); --top K for "
            "more, --all for every pair"
        )
    return _status(args)


def _report_options(parser: argparse.ArgumentParser) -> None:
    from segmentation.pairs import DEFAULT_TOP_PAIRS

    parser.add_argument("output", help="the HTML file to write (*.html)")
    parser.add_argument("segments", nargs="*", help="segment names (default: all)")
    parser.add_argument(
        "--top",
        type=_pair_limit,
        default=DEFAULT_TOP_PAIRS,
        metavar="K",
        help=f"the K most overlapping pairs shown in words (default {DEFAULT_TOP_PAIRS})",
    )


def _report(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.errors import SegmentationError
    from segmentation.report import write_report

    if Path(args.output).suffix.lower() not in (".html", ".htm"):
        raise SegmentationError(
            f"cannot write the report to {Path(args.output).name!r}: it is one HTML page",
            "name the file *.html, e.g. `segmentation report segments.html`",
        )
    settings = context.require_settings()
    data = write_report(
        _engine(args, context),
        args.output,
        args.segments or None,
        global_control=float(settings.segments_global_control),
        top=args.top,
    )
    print(
        f"report of {len(data.overlap.segments)} segment(s) over {data.overlap.population} "
        f"customer(s) written to {args.output}"
    )
    return _status(args)
