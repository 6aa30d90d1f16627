"""``python -m segmentation`` / ``segmentation``: validate, list, evaluate, sizes, members, refresh.

Exit codes: 0 ok, 1 validation or runtime errors (printed as one clear message each), 2 usage
(bad arguments, no Feast repository at ``--repo``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmentation.errors import SegmentationError

if TYPE_CHECKING:
    from feast import FeatureStore

    from segmentation.engine import SegmentEngine

__all__ = ["main"]

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segmentation", description="JSONLogic customer segments over Feast online features."
    )
    p.add_argument("--repo", default="feature_repo", help="Feast repository path (feature_repo)")
    p.add_argument(
        "--segments-dir", default=None, help="segment files (default SEGMENTS_DIR or the examples)"
    )
    p.add_argument(
        "--max-age",
        default="ttl",
        help="staleness: 'ttl' (each view's ttl, default), seconds, or 'none' (never stale)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("validate", help="check segment files against the repository's features")
    ls = sub.add_parser("list", help="list segments (or served features)")
    ls.add_argument("--features", action="store_true", help="list the served features instead")
    ev = sub.add_parser("evaluate", help="one customer's segments and feature values")
    ev.add_argument("customer_id")
    sub.add_parser("sizes", help="every segment's size now (whole population)")
    for name, helptext in (
        ("members", "a segment's members now (or --stored)"),
        ("export", "write a segment's members to CSV or parquet"),
    ):
        mp = sub.add_parser(name, help=helptext)
        mp.add_argument("segment")
        if name == "export":
            mp.add_argument("output", help="*.csv or *.parquet")
        else:
            mp.add_argument("--output", "-o", default=None, help="write to *.csv / *.parquet")
        mp.add_argument("--stored", action="store_true", help="members of the last refresh")
        mp.add_argument("--with-features", action="store_true", help="add feature columns")
    rf = sub.add_parser("refresh", help="recompute and store memberships in Redis")
    rf.add_argument("segments", nargs="*", help="segment names (default: all)")
    hi = sub.add_parser("history", help="a segment's refresh history")
    hi.add_argument("segment")
    hi.add_argument("--limit", type=int, default=20)
    return p


def _max_age(value: str) -> Any:
    from segmentation.reader import USE_TTL

    if value.lower() == "ttl":
        return USE_TTL
    if value.lower() == "none":
        return None
    try:
        return _dt.timedelta(seconds=float(value))
    except ValueError as e:
        raise _UsageError(f"--max-age {value!r}: use 'ttl', 'none' or a number of seconds") from e


def _store(repo: str) -> FeatureStore:
    if not (Path(repo) / "feature_store.yaml").is_file():
        raise _UsageError(
            f"no Feast repository at {repo!r} (no feature_store.yaml); pass --repo PATH"
        )
    from feast import FeatureStore

    return FeatureStore(repo_path=repo)


def _served(store: FeatureStore) -> dict[str, str]:
    out: dict[str, str] = {}
    for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
        if fv.online:
            for f in fv.features:
                out.setdefault(f.name, f"{fv.name}:{f.name} ({f.dtype})")
    return out


def _engine(args: argparse.Namespace) -> SegmentEngine:
    from segmentation.engine import SegmentEngine

    return SegmentEngine(
        _store(args.repo), segments_dir=args.segments_dir, max_age=_max_age(args.max_age)
    )


def _run(args: argparse.Namespace) -> int:
    from segmentation.loader import check_segments_dir, segments_dir

    cmd = args.command
    if cmd == "validate" or (cmd == "list" and not args.features):
        names = set(_served(_store(args.repo))) if cmd == "validate" else None
        segments, errors = check_segments_dir(args.segments_dir, feature_names=names)
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        if cmd == "validate":
            where = segments_dir(args.segments_dir)
            print(f"{len(segments)} segment(s) valid, {len(errors)} error(s) in {where}")
        else:
            for s in segments:
                print(f"{s.name}\t{len(s.rules)} rule(s)\t{s.description}")
        return EXIT_ERRORS if errors else EXIT_OK
    if cmd == "list":
        store = _store(args.repo)
        for desc in _served(store).values():
            print(desc)
        for fs in store.list_feature_services():
            feats = [f"{p.name}:{f.name}" for p in fs.feature_view_projections for f in p.features]
            print(f"service {fs.name}: {', '.join(feats)}")
        return EXIT_OK
    engine = _engine(args)
    if cmd == "evaluate":
        values = engine.features_of(args.customer_id)
        print(json.dumps({"customer_id": args.customer_id,
                          "segments": engine.segments_of(args.customer_id),
                          "features": values}, indent=2, default=str))  # fmt: skip
    elif cmd == "sizes":
        for name, size in engine.sizes().items():
            print(f"{name}\t{size}")
    elif cmd in ("members", "export"):
        output = args.output
        if output:
            n = engine.export(
                args.segment, output, stored=args.stored, with_features=args.with_features
            )
            print(f"{n} member(s) of {args.segment} written to {output}")
        else:
            ids = engine.stored_members(args.segment) if args.stored else None
            for cid in ids if ids is not None else engine.members(args.segment):
                print(cid)
    elif cmd == "refresh":
        for name, res in engine.refresh(args.segments or None).items():
            print(f"{name}\tsize={res.size}\tjoined={len(res.joined)}\tleft={len(res.left)}")
    elif cmd == "history":
        for h in engine.history(args.segment, args.limit):
            print(f"{h.timestamp}\tsize={h.size}\tjoined={h.joined}\tleft={h.left}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 errors, 2 usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help is 0, bad usage is 2
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    try:
        return _run(args)
    except _UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SegmentationError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERRORS
    except Exception as e:  # Redis down, registry unreadable...: one line, no traceback
        import redis

        if isinstance(e, redis.RedisError):
            print(
                f"error: Redis: {e}. Fix: check the online store's connection_string",
                file=sys.stderr,
            )
            return EXIT_ERRORS
        raise


if __name__ == "__main__":
    raise SystemExit(main())
