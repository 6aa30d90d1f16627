"""What every ``segmentation`` command shares: the global options, the store and engine, output.

``--segments-dir`` and ``--max-age`` (global options of the tree), the applied Feast store and the
features it serves, the :class:`~segmentation.engine.SegmentEngine` over the segments that load
(files that do not are reported on stderr and turn the exit status to 1), JSON and percent
printing, and the small argparse helpers the command modules share.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xiva_source.cli.app import CommandContext
from xiva_source.cli.boundary import EXIT_FAILURE, EXIT_OK
from xiva_source.cli.xiva import open_registry, open_store

if TYPE_CHECKING:
    from feast import FeatureStore

    from segmentation.engine import SegmentEngine


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


def _applied_store(repo: str, *, light: bool = False, online: bool = False) -> FeatureStore:
    """The repository's store, refusing one that was never applied or whose registry is corrupt.

    ``light``: the registry read without Feast's SDK when it can be (:func:`open_registry`; for
    commands that read feature names and types, and with ``online`` the online store's Redis).
    """
    from xiva_source.errors import LoyaltyError
    from xiva_source.feast_plugin.errors import RepositoryError

    try:
        store: FeatureStore = (
            open_registry(repo, applied=True, online=online)
            if light
            else open_store(repo, applied=True)
        )
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


def _check_arguments(
    args: argparse.Namespace,
    context: CommandContext,
    *,
    segment: str | None = None,
    output: str | None = None,
) -> None:
    """Refuse an unknown segment or export format before Feast or Redis is touched.

    The segment files are read without checking their features (cheap): a name none of them
    defines is refused with the known names; when a file fails to load, the segment may be in
    it, so the engine decides (and reports the file).

    Raises:
        UnknownSegmentError: No segment file defines ``segment``.
        SegmentationError: ``output`` is neither ``*.csv`` nor ``*.parquet``.
    """
    if output is not None:
        from segmentation.export import export_target

        export_target(output)
    if segment is not None:
        from segmentation.errors import UnknownSegmentError
        from segmentation.loader import check_segments_dir

        segments, errors = check_segments_dir(_segments_dir(args, context))
        names = [s.name for s in segments]
        if not errors and segment not in names:
            raise UnknownSegmentError(segment, names)


def _engine(
    args: argparse.Namespace, context: CommandContext, *, light: bool = False
) -> SegmentEngine:
    """The engine over the segments that load; each file that does not is reported on stderr
    (``error: ...``) and counted in ``args.segment_errors`` (``sizes``/``refresh`` then exit 1).

    ``light``: over the registry read without Feast's SDK when it can be (``sizes``).
    """
    from segmentation.engine import SegmentEngine
    from segmentation.loader import check_segments_dir

    store = _applied_store(args.repo, light=light, online=light)
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


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _print_sizes(population: int, sizes: dict[str, int], *, as_json: bool) -> None:
    """``name<TAB>size<TAB>percent`` lines then the population (or the JSON of a SizeTable)."""
    from segmentation.overlap import SizeTable

    if as_json:
        _print_json(SizeTable(population, sizes).to_dict())
        return
    for name, size in sizes.items():
        print(f"{name}\t{size}\t{_percent(size, population)}")
    print(f"population: {population} customer(s)")


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: use a whole number") from e
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must not be negative")
    return number


def _no_options(parser: argparse.ArgumentParser) -> None:
    del parser
