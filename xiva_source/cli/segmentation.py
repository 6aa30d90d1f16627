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


# -- segments in the DWH (--in-dwh: segmentation/sql.py) -----------------------------------------


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
    from segmentation.errors import RuleError

    dwh = _dwh_segments(args, context)
    runnable = []
    for name in dwh.segments:  # one segment that cannot run in SQL does not stop the others
        try:
            dwh.where(name)
        except RuleError as e:
            print(f"error: {e}", file=sys.stderr)
            args.segment_errors += 1
            continue
        runnable.append(name)
    population, sizes = dwh.counts(runnable)
    _print_sizes(population, sizes, as_json=getattr(args, "json", False))
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


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


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


def _print_sizes(population: int, sizes: dict[str, int], *, as_json: bool) -> None:
    """``name<TAB>size<TAB>percent`` lines then the population (or the JSON of a SizeTable)."""
    from segmentation.overlap import SizeTable

    if as_json:
        _print_json(SizeTable(population, sizes).to_dict())
        return
    for name, size in sizes.items():
        print(f"{name}\t{size}\t{_percent(size, population)}")
    print(f"population: {population} customer(s)")


def _sizes(args: argparse.Namespace, context: CommandContext) -> int:
    if getattr(args, "in_dwh", False):
        return _sizes_in_dwh(args, context)
    from segmentation.overlap import population_sizes

    table = population_sizes(_engine(args, context))  # sizes and population in one pass
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
    if getattr(args, "in_dwh", False):
        return _members_in_dwh(args, context)
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


def _refresh(args: argparse.Namespace, context: CommandContext) -> int:
    for name, res in _engine(args, context).refresh(args.segments or None).items():
        print(f"{name}\tsize={res.size}\tjoined={len(res.joined)}\tleft={len(res.left)}")
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


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: use a whole number") from e
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must not be negative")
    return number


def _preview_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment", help="the segment's name")
    parser.add_argument(
        "--sample", type=_non_negative, default=10, metavar="N", help="member ids to show"
    )
    _json_option(parser)


def _preview(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.preview import preview

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


def _overlap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segments", nargs="*", help="segment names (default: all)")
    _json_option(parser)


def _overlap(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.overlap import overlap

    result = overlap(_engine(args, context), args.segments or None)
    if args.json:
        _print_json(result.to_dict())
        return _status(args)
    print("segment_a\tsegment_b\tin_both\tjaccard")
    for a, b, both, jac in result.pairs():
        print(f"{a}\t{b}\t{both}\t{'-' if jac is None else f'{jac:.4f}'}")
    print(f"population: {result.population} customer(s)")
    return _status(args)


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="the HTML file to write (*.html)")
    parser.add_argument("segments", nargs="*", help="segment names (default: all)")


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
    )
    print(
        f"report of {len(data.overlap.segments)} segment(s) over {data.overlap.population} "
        f"customer(s) written to {args.output}"
    )
    return _status(args)


def _no_options(parser: argparse.ArgumentParser) -> None:
    del parser


def _events_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count",
        type=_non_negative,
        default=100,
        metavar="N",
        help="at most N events, 0 for all (default: 100)",
    )
    parser.add_argument(
        "--since",
        default=None,
        metavar="ID|TIME",
        help="events after this entry id (exclusive) or from this ISO 8601 time (default: the "
        "newest --count)",
    )
    parser.add_argument("--segment", default=None, help="only this segment's events")
    parser.add_argument("--customer", default=None, help="only this customer's events")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of text"
    )


def _events(args: argparse.Namespace, context: CommandContext) -> int:
    from segmentation.errors import OnlineStoreError
    from segmentation.events import read_events
    from segmentation.memberships import MembershipStore
    from xiva_source.feast_plugin.online_store import online_redis_client

    store = _applied_store(args.repo)
    client = online_redis_client(store.config, context.require_settings())
    if client is None:
        raise OnlineStoreError(
            "the online store is not Redis: there is no membership event stream",
            "configure the Redis online store (feature_store.yaml)",
        )
    key = MembershipStore(client, store.project).events_key()
    events = read_events(
        client,
        key,
        since=args.since,
        count=args.count or None,
        segment=args.segment,
        customer_id=args.customer,
    )
    for e in events:
        if args.json:
            print(json.dumps(e.as_dict(), separators=(",", ":")))
        else:
            print(f"{e.id}\t{e.time}\t{e.event}\t{e.segment}\t{e.customer_id}\t{e.group}")
    return EXIT_OK


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
            help="pairwise overlap of segments (counts and Jaccard)",
            description="Evaluate the named segments (default: all) over the whole population "
            "in one pass and print, for every pair, the customers in both and the Jaccard index "
            "|A & B| / |A | B|.",
            configure=_overlap_options,
            run=_overlap,
        ),
        Command(
            "report",
            help="write one self-contained HTML report of the segments",
            description="Write one HTML page (no network needed to open it): sizes, size "
            "history, the overlap matrix as a heat map, and the holdout/split balance of each "
            "segment.",
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
