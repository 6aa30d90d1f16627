"""The ``--in-dwh`` branches of ``sizes``, ``members`` and ``export``: segments run in the DWH.

The rules are compiled to SQL and run in the warehouse (``DWH_URL``, :mod:`segmentation.sql`): no
Feast repository or Redis is needed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xiva_source.cli.app import CommandContext
from xiva_source.cli.boundary import EXIT_OK
from xiva_source.cli.segmentation.common import (
    _print_json,
    _print_sizes,
    _segments_dir,
    _status,
)


def _in_dwh_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--in-dwh",
        action="store_true",
        help="evaluate in the data warehouse (DWH_URL, SQL) instead of over the online store",
    )


def _dwh_segments(args: argparse.Namespace, context: CommandContext) -> Any:
    """The segments that load, run in the warehouse (no Feast repository or Redis needed; a
    feature the warehouse lacks is named when the segment runs); files that do not load are
    reported as :func:`_engine` reports them."""
    from segmentation.loader import check_segments_dir
    from segmentation.sql import DwhSegments

    segments, errors = check_segments_dir(_segments_dir(args, context))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    args.segment_errors = len(errors)
    return DwhSegments.from_settings(context.require_settings(), segments)


def _sizes_in_dwh(args: argparse.Namespace, context: CommandContext) -> int:
    dwh = _dwh_segments(args, context)
    # One segment that cannot run in SQL (or that the warehouse refuses: a float overflow, a
    # statement too large) does not stop the others; each is named with its reason (exit 1).
    counted = dwh.counts_each()
    for reason in counted.failed.values():
        print(f"error: {reason}", file=sys.stderr)
    args.segment_errors += len(counted.failed)
    _print_sizes(counted.population, counted.sizes, as_json=args.json)
    return _status(args)


def _members_in_dwh(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.sql import segment_groups
    from xiva_source.errors import ConfigurationError

    if args.stored:
        raise ConfigurationError(
            "--stored reads the memberships of the last refresh (Redis); --in-dwh evaluates now "
            "in the warehouse",
            "give one of them",
        )
    dwh = _dwh_segments(args, context)
    as_json = getattr(args, "json", False)
    if args.output:
        control = float(context.require_settings().segments_global_control)
        n = dwh.export(
            args.segment,
            args.output,
            with_features=args.with_features,
            groups=lambda seg, ids: segment_groups(seg, ids, global_control=control),
        )
        if as_json:
            _print_json({"segment": args.segment, "count": n, "output": str(args.output)})
        else:
            print(f"{n} member(s) of {args.segment} written to {args.output}")
        return EXIT_OK
    members = dwh.members(args.segment)
    if as_json:
        doc = {"segment": args.segment, "stored": False, "count": len(members)}
        _print_json({**doc, "members": members})
        return EXIT_OK
    for cid in members:
        print(cid)
    return EXIT_OK
