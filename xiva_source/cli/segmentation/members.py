"""The commands over the segment files and the online memberships.

``validate``, ``list``, ``evaluate``, ``sizes``, ``members``, ``export``, ``refresh``,
``history``; the ``--in-dwh`` branches of ``sizes``/``members``/``export`` live in
:mod:`xiva_source.cli.segmentation.dwh`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from xiva_source.cli.app import CommandContext
from xiva_source.cli.boundary import EXIT_FAILURE, EXIT_OK
from xiva_source.cli.segmentation.common import (
    _applied_store,
    _check_arguments,
    _engine,
    _json_option,
    _print_json,
    _print_sizes,
    _segments_dir,
    _served,
    _status,
)
from xiva_source.cli.segmentation.dwh import _in_dwh_option, _members_in_dwh, _sizes_in_dwh

if TYPE_CHECKING:
    from feast import FeatureStore


def _validate(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.loader import check_segments_dir

    where = _segments_dir(args, context)
    names = set(_served(_applied_store(args.repo, light=True)))
    segments, errors = check_segments_dir(where, feature_names=names)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"{len(segments)} segment(s) valid, {len(errors)} error(s) in {where}")
    return EXIT_FAILURE if errors else EXIT_OK


def _list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", action="store_true", help="list the served features instead")
    _json_option(parser)


def _served_json(store: FeatureStore) -> dict[str, Any]:
    """``list --features --json``: the served features (as :func:`_served`) and services."""
    features: dict[str, dict[str, Any]] = {}
    for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
        if fv.online:
            for f in fv.features:
                features.setdefault(
                    f.name,
                    {"name": f.name, "view": fv.name, "type": str(f.dtype), "derived": False},
                )
    for odfv in sorted(store.list_on_demand_feature_views(), key=lambda v: v.name):
        for f in odfv.features:
            features.setdefault(
                f.name, {"name": f.name, "view": odfv.name, "type": str(f.dtype), "derived": True}
            )
    services = [
        {
            "name": fs.name,
            "features": [
                f"{p.name}:{f.name}" for p in fs.feature_view_projections for f in p.features
            ],
        }
        for fs in store.list_feature_services()
    ]
    return {"features": list(features.values()), "services": services}


def _list(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.loader import check_segments_dir

    if not args.features:
        segments, errors = check_segments_dir(_segments_dir(args, context))
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        if args.json:
            _print_json({"segments": [s.to_dict() for s in segments]})
        for s in segments if not args.json else ():
            print(f"{s.name}\t{len(s.rules)} rule(s)\t{s.description}")
        return EXIT_FAILURE if errors else EXIT_OK
    store = _applied_store(args.repo)
    if args.json:
        _print_json(_served_json(store))
        return EXIT_OK
    for desc in _served(store).values():
        print(desc)
    for fs in store.list_feature_services():
        feats = [f"{p.name}:{f.name}" for p in fs.feature_view_projections for f in p.features]
        print(f"service {fs.name}: {', '.join(feats)}")
    return EXIT_OK


def _evaluate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("customer_id", help="the customer (the entity key)")


def _evaluate(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.errors import SegmentationError

    engine = _engine(args, context)
    values = engine.features_of(args.customer_id)
    if values and all(v is None for v in values.values()):
        raise SegmentationError(
            f"No online features for customer {args.customer_id!r}: unknown to the online store, "
            "or every value is older than its view's ttl.",
            "Check the customer id; run `make materialize` (or `xiva-source refresh "
            f"{args.customer_id}`); --max-age none ignores staleness.",
        )
    doc = {
        "customer_id": args.customer_id,
        "segments": engine.segments_of(args.customer_id),
        "features": values,
    }
    print(json.dumps(doc, indent=2, default=str))
    return EXIT_OK


def _sizes_options(parser: argparse.ArgumentParser) -> None:
    _json_option(parser)
    _in_dwh_option(parser)


def _sizes(args: argparse.Namespace, context: CommandContext) -> int:
    if args.in_dwh:
        return _sizes_in_dwh(args, context)
    from segmentation.overlap import population_sizes

    table = population_sizes(_engine(args, context, light=True))  # one pass, no Feast SDK
    _print_sizes(table.population, table.sizes, as_json=args.json)
    return _status(args)


def _members_options(parser: argparse.ArgumentParser, *, export: bool) -> None:
    parser.add_argument("segment", help="the segment's name")
    if export:
        parser.add_argument("output", help="the file to write: *.csv or *.parquet")
    else:
        parser.add_argument("--output", "-o", default=None, help="write to *.csv / *.parquet")
    parser.add_argument("--stored", action="store_true", help="members of the last refresh")
    parser.add_argument("--with-features", action="store_true", help="add feature columns")
    _in_dwh_option(parser)
    if not export:
        _json_option(parser)


def _members(args: argparse.Namespace, context: CommandContext) -> int:
    if args.in_dwh:
        return _members_in_dwh(args, context)
    _check_arguments(args, context, segment=args.segment, output=args.output)
    engine = _engine(args, context)
    as_json = getattr(args, "json", False)
    if args.output:
        n = engine.export(
            args.segment, args.output, stored=args.stored, with_features=args.with_features
        )
        if as_json:
            _print_json({"segment": args.segment, "count": n, "output": str(args.output)})
        else:
            print(f"{n} member(s) of {args.segment} written to {args.output}")
        return EXIT_OK
    ids = engine.stored_members(args.segment) if args.stored else None
    if as_json:
        members = ids if ids is not None else engine.members(args.segment)
        doc = {"segment": args.segment, "stored": args.stored, "count": len(members)}
        _print_json({**doc, "members": members})
        return EXIT_OK
    for cid in ids if ids is not None else engine.members(args.segment):
        print(cid)
    return EXIT_OK


def _refresh_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segments", nargs="*", help="segment names (default: all)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="evaluate the whole population (default: only the customers changed since the last "
        "refresh and those time may have moved in or out; docs/segmentation.md)",
    )


def _refresh(args: argparse.Namespace, context: CommandContext) -> int:
    results = _engine(args, context).refresh(args.segments or None, full=args.full)
    for name, res in results.items():
        line = f"{name}\tsize={res.size}\tjoined={len(res.joined)}\tleft={len(res.left)}"
        line += f"\t{res.mode}"
        if res.evaluated is not None:
            line += f"\tevaluated={res.evaluated}"
        if res.reason is not None:
            line += f"\t({res.reason})"
        print(line)
    return _status(args)


def _history_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment", help="the segment's name")
    parser.add_argument("--limit", type=int, default=20, help="entries to show (default: 20)")
    _json_option(parser)


def _history(args: argparse.Namespace, context: CommandContext) -> int:
    entries = _engine(args, context).history(args.segment, args.limit)
    if args.json:
        from dataclasses import asdict

        _print_json({"segment": args.segment, "history": [asdict(h) for h in entries]})
        return EXIT_OK
    for h in entries:
        print(f"{h.timestamp}\tsize={h.size}\tjoined={h.joined}\tleft={h.left}")
    return EXIT_OK
