"""``segmentation`` / ``python -m segmentation``: JSONLogic segments over the online features.

The same conventions as ``xiva-source`` (:mod:`xiva_source.cli.app`); ``--segments-dir`` and
``--max-age`` are global options of this tree (before or after the command).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xiva_source.cli.app import Command, CommandContext, CommandTree
from xiva_source.cli.boundary import EXIT_FAILURE, EXIT_OK
from xiva_source.cli.xiva import open_store

if TYPE_CHECKING:
    from feast import FeatureStore

    from segmentation.engine import SegmentEngine

__all__ = ["TREE", "main"]


def _global_options(group: Any, default: Callable[[object], object]) -> None:
    group.add_argument(
        "--segments-dir",
        default=default(None),
        metavar="DIR",
        help="the segment files (default: SEGMENTS_DIR, else the shipped examples)",
    )
    group.add_argument(
        "--max-age",
        type=_max_age,
        default=default("ttl"),
        metavar="ttl|none|SECONDS",
        help="staleness: 'ttl' (each view's ttl), seconds, or 'none' (never stale) (default: ttl)",
    )


def _max_age(value: str) -> Any:
    text = value.strip().lower()
    if text in ("ttl", "none"):
        return text
    try:
        seconds = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{value!r}: use 'ttl', 'none' or a number of seconds"
        ) from e
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: a number of seconds must not be negative")
    return _dt.timedelta(seconds=seconds)


def _resolved_max_age(value: Any) -> Any:
    from segmentation.reader import USE_TTL

    if value == "ttl":
        return USE_TTL
    return None if value == "none" else value


def _segments_dir(args: argparse.Namespace, context: CommandContext) -> Path:
    from segmentation.loader import segments_dir

    return segments_dir(args.segments_dir, settings=context.require_settings())


def _applied_store(repo: str) -> FeatureStore:
    """The repository's store, refusing one that was never applied or whose registry is corrupt."""
    from xiva_source.errors import LoyaltyError
    from xiva_source.feast_plugin.errors import RepositoryError

    try:
        store: FeatureStore = open_store(repo, applied=True)
        store.list_on_demand_feature_views()  # the whole registry is read: corrupt -> here
    except LoyaltyError:
        raise
    except Exception as e:  # protobuf DecodeError and the like from a damaged registry file
        raise RepositoryError(
            f"The Feast registry of the repository {repo!r} cannot be read "
            f"({type(e).__name__}: {str(e)[:200]})",
            f"Rebuild it from the definitions: `make apply` (feast -c {repo} apply); the online "
            "data stays",
        ) from e
    return store


def _served(store: FeatureStore) -> dict[str, str]:
    out: dict[str, str] = {}
    for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
        if fv.online:
            for f in fv.features:
                out.setdefault(f.name, f"{fv.name}:{f.name} ({f.dtype})")
    # Features derived when read (age, last_purchase_days_ago): the reader derives them too.
    for odfv in sorted(store.list_on_demand_feature_views(), key=lambda v: v.name):
        for f in odfv.features:
            out.setdefault(f.name, f"{odfv.name}:{f.name} ({f.dtype}, derived when read)")
    return out


def _engine(args: argparse.Namespace, context: CommandContext) -> SegmentEngine:
    """The engine over the segments that load; each file that does not is reported on stderr
    (``error: ...``) and counted in ``args.segment_errors`` (``sizes``/``refresh`` then exit 1)."""
    from segmentation.engine import SegmentEngine
    from segmentation.loader import check_segments_dir

    store = _applied_store(args.repo)
    segments, errors = check_segments_dir(
        _segments_dir(args, context), feature_names=set(_served(store))
    )
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    args.segment_errors = len(errors)
    return SegmentEngine(
        store,
        segments,
        max_age=_resolved_max_age(args.max_age),
        settings=context.settings,
    )


def _status(args: argparse.Namespace) -> int:
    """1 when some segment file was reported by :func:`_engine`, else 0."""
    return EXIT_FAILURE if getattr(args, "segment_errors", 0) else EXIT_OK


# -- commands --------------------------------------------------------------------------------------


def _validate(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.loader import check_segments_dir

    where = _segments_dir(args, context)
    names = set(_served(_applied_store(args.repo)))
    segments, errors = check_segments_dir(where, feature_names=names)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"{len(segments)} segment(s) valid, {len(errors)} error(s) in {where}")
    return EXIT_FAILURE if errors else EXIT_OK


def _list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", action="store_true", help="list the served features instead")


def _list(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.loader import check_segments_dir

    if not args.features:
        segments, errors = check_segments_dir(_segments_dir(args, context))
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        for s in segments:
            print(f"{s.name}\t{len(s.rules)} rule(s)\t{s.description}")
        return EXIT_FAILURE if errors else EXIT_OK
    store = _applied_store(args.repo)
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


def _sizes(args: argparse.Namespace, context: CommandContext) -> int:
    for name, size in _engine(args, context).sizes().items():
        print(f"{name}\t{size}")
    return _status(args)


def _members_options(parser: argparse.ArgumentParser, *, export: bool) -> None:
    parser.add_argument("segment", help="the segment's name")
    if export:
        parser.add_argument("output", help="the file to write: *.csv or *.parquet")
    else:
        parser.add_argument("--output", "-o", default=None, help="write to *.csv / *.parquet")
    parser.add_argument("--stored", action="store_true", help="members of the last refresh")
    parser.add_argument("--with-features", action="store_true", help="add feature columns")


def _members(args: argparse.Namespace, context: CommandContext) -> int:
    engine = _engine(args, context)
    if args.output:
        n = engine.export(
            args.segment, args.output, stored=args.stored, with_features=args.with_features
        )
        print(f"{n} member(s) of {args.segment} written to {args.output}")
        return EXIT_OK
    ids = engine.stored_members(args.segment) if args.stored else None
    for cid in ids if ids is not None else engine.members(args.segment):
        print(cid)
    return EXIT_OK


def _refresh_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segments", nargs="*", help="segment names (default: all)")


def _refresh(args: argparse.Namespace, context: CommandContext) -> int:
    for name, res in _engine(args, context).refresh(args.segments or None).items():
        print(f"{name}\tsize={res.size}\tjoined={len(res.joined)}\tleft={len(res.left)}")
    return _status(args)


def _history_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment", help="the segment's name")
    parser.add_argument("--limit", type=int, default=20, help="entries to show (default: 20)")


def _history(args: argparse.Namespace, context: CommandContext) -> int:
    for h in _engine(args, context).history(args.segment, args.limit):
        print(f"{h.timestamp}\tsize={h.size}\tjoined={h.joined}\tleft={h.left}")
    return EXIT_OK


def _no_options(parser: argparse.ArgumentParser) -> None:
    del parser


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
            "each one's size.",
            configure=_no_options,
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
    ),
)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``segmentation``; returns the exit status (0 ok, 1 failure, 2 usage/configuration).

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        prog: The program name in messages (default ``segmentation``).
    """
    return TREE.main(argv, prog=prog)
