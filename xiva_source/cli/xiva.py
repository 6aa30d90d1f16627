"""``xiva-source`` / ``python -m xiva_source``: the platform's operator commands.

Commands import what they need when they run, so ``xiva-source usage`` starts without Feast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from xiva_source.cli.app import Command, CommandContext, CommandTree
from xiva_source.cli.boundary import EXIT_OK
from xiva_source.cli.simulator import SIMULATOR_COMMAND
from xiva_source.cli.status import STATUS_COMMAND
from xiva_source.cli.sync import SYNC_COMMAND
from xiva_source.errors import ConfigurationError

__all__ = ["TREE", "main", "open_store", "parse_end_date"]


# -- usage -----------------------------------------------------------------------------------------


def _usage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hours", type=_positive_int, default=24, help="UTC hours to show (default: 24)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--redis-url", help="Redis URL (default: REDIS_URL from the settings)")
    parser.add_argument(
        "--prefix", help="key prefix (default: <XIVA_REDIS_PREFIX>:usage, i.e. xiva:usage)"
    )


def _tls_fix(error: BaseException) -> str | None:
    from xiva_source.redis_client import tls_hint

    hint = tls_hint(error)
    return hint[1] if hint is not None else None


def _usage(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.feast_plugin.errors import OnlineStoreError
    from xiva_source.redaction import redact_url
    from xiva_source.redis_client import redis_for_settings
    from xiva_source.xiva_api.usage import RedisUsageStore, usage_prefix_for

    settings = context.require_settings()
    url = args.redis_url or settings.redis_url
    if not url:
        raise ConfigurationError(
            "No REDIS_URL is configured, so usage counters were only kept in each process's "
            "memory.",
            "Set REDIS_URL (in the environment or .env) for shared counters, or read "
            "XivaClient.usage() from Python.",
            setting="REDIS_URL",
        )
    import redis

    try:
        client = redis_for_settings(settings, url=url)
    except redis.RedisError as e:
        raise OnlineStoreError(
            f"Cannot reach Redis at {redact_url(url)}: {type(e).__name__}: {e}",
            _tls_fix(e)
            or "Check that Redis is running and that REDIS_URL / REDIS_TYPE (or --redis-url) "
            "are right.",
        ) from e
    try:
        report = RedisUsageStore(client, args.prefix or usage_prefix_for(settings)).report(
            args.hours
        )
    except redis.RedisError as e:
        raise OnlineStoreError(
            f"Cannot read the usage counters from Redis at {redact_url(url)}: "
            f"{type(e).__name__}: {e}",
            _tls_fix(e)
            or "Check that Redis is running and that REDIS_URL (or --redis-url) is right.",
        ) from e
    finally:
        client.close()
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        print(report.to_table())
    return EXIT_OK


# -- materialize -----------------------------------------------------------------------------------


def parse_end_date(text: str) -> datetime:
    """``--end-date``: an ISO 8601 date-time, naive taken as UTC."""
    from xiva_source.timeutil import as_utc

    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time; use e.g. 2026-01-31T00:00:00Z"
        ) from e


def _materialize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--view",
        action="append",
        dest="views",
        metavar="NAME",
        help="materialize only this feature view (repeatable; default: all)",
    )
    parser.add_argument(
        "--end-date",
        type=parse_end_date,
        default=None,
        help="window end, ISO 8601 (default: now, UTC)",
    )
    parser.add_argument(
        "--full", action="store_true", help="ignore the watermark and read everything"
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument(
        "--fail-on-fallback",
        action="store_true",
        default=None,
        help="a run that fell back to one source fails (exit 1) instead of exit 3 "
        "(default: MATERIALIZE_FAIL_ON_FALLBACK)",
    )


def _materialize(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.feast_plugin.startup import skip_feast_type_instrumentation

    skip_feast_type_instrumentation()  # before Feast's first import: most of the start-up
    from xiva_source.cli.folding import folded_warnings
    from xiva_source.jobs.errors import MaterializationFailedError
    from xiva_source.jobs.materialize import run_materialization

    # One line per run: at the default level, what loggers warn of meanwhile joins that line.
    fold = args.log_level == "WARNING" and not args.debug
    with folded_warnings(fold) as folded:
        try:
            summary = run_materialization(
                args.repo,
                end_date=args.end_date,
                views=args.views,
                settings=context.require_settings(),
                progress=False if args.no_progress else None,
                full=args.full,
                fail_on_fallback=args.fail_on_fallback,
            )
        except MaterializationFailedError as e:
            # The job's promised output: its one summary line (cause and fix included), stderr.
            e.summary.warnings.extend(folded.clauses())
            print(e.summary.line(), file=sys.stderr)
            return e.exit_code
        if summary.status != "skipped":  # a skipped run's line has no clauses: printed as logs
            summary.warnings.extend(folded.clauses())
    code = int(summary.exit_code)
    # ok (or skipped): the line on stdout; degraded (3) or a fallback made a failure (1): stderr.
    print(summary.line(), file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


# -- refresh ---------------------------------------------------------------------------------------


def _refresh_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("customer_id", help="the Xiva customer id")
    parser.add_argument(
        "--no-segments",
        action="store_true",
        help="do not re-evaluate the customer's segments (default: re-evaluate, store, publish)",
    )


def _refresh(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.jobs.refresh import refresh_customer

    store = open_store(args.repo, applied=True)
    features = refresh_customer(args.customer_id, store, settings=context.require_settings())
    print(json.dumps(features, default=_json_default, indent=2, sort_keys=True))
    if not args.no_segments:
        _refresh_segments(args.customer_id, store, context)
    return EXIT_OK


def _refresh_segments(customer_id: str, store: Any, context: CommandContext) -> None:
    """Real-time membership after a live refresh (docs/segmentation.md): a problem is reported on
    stderr and is not fatal (the features are written; the next batch refresh catches up)."""
    from redis.exceptions import RedisError

    from segmentation.engine import SegmentEngine
    from segmentation.loader import check_segments_dir
    from segmentation.realtime import update_customer
    from xiva_source.errors import LoyaltyError
    from xiva_source.redaction import redact

    settings = context.require_settings()
    segments, errors = check_segments_dir(settings=settings)
    for e in errors:
        print(f"error: segments: {e}", file=sys.stderr)
    try:
        update = update_customer(SegmentEngine(store, segments, settings=settings), customer_id)
    except (LoyaltyError, RedisError) as e:
        print(f"error: segments of {customer_id} not updated: {redact(str(e))}", file=sys.stderr)
        return
    changes = [f"{e.event} {e.segment} ({e.group})" for e in update.events]
    print(f"segments: {', '.join(changes) or 'no change'}", file=sys.stderr)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- demo ------------------------------------------------------------------------------------------


def _demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--customers", type=_positive_int, default=1000, help="simulator customers (default: 1000)"
    )
    parser.add_argument(
        "--keep", metavar="DIR", default=None, help="work in DIR and keep it (default: a temp dir)"
    )


def _demo(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.demo.run import run_demo

    started = time.monotonic()
    repo = Path(args.repo)
    if not (repo / "feature_store.yaml").is_file():
        raise ConfigurationError(
            f"No feature_store.yaml in {str(repo)!r}: the demo copies the feature repository.",
            "Run the demo from the project root, or pass --repo with the feature repository.",
            setting="--repo",
        )
    run_demo(args.customers, repo_path=repo, workdir=args.keep)
    kept = f"files kept in {args.keep}" if args.keep else "temporary files removed"
    print(f"\nDemo finished in {time.monotonic() - started:.1f}s; simulator stopped, {kept}.")
    return EXIT_OK


# -- dwh -------------------------------------------------------------------------------------------


def _dwh_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("init", "seed"),
        help="init: create the DWH contract's missing tables (docs/dwh.md); existing ones are "
        "checked, never altered. seed: fill them with the demo population of the simulator's "
        "customers (same --customers and --seed as `xiva-source simulator`)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="init: print the CREATE statements that would run, change nothing",
    )
    parser.add_argument("--dwh-url", help="warehouse URL (default: DWH_URL from the settings)")
    parser.add_argument(
        "--customers",
        type=_positive_int,
        default=1000,
        help="seed: the simulator's number of customers (default: 1000, as the simulator's)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed: the simulator's seed (default: 42, as the simulator's and `make demo`)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="seed: drop and refill the contract's tables even when they hold rows (they are "
        "lost); without it a non-empty table is refused",
    )


def _dwh(args: argparse.Namespace, context: CommandContext) -> int:
    url = args.dwh_url or context.require_settings().dwh_url
    if args.action == "seed":
        return _dwh_seed(args, url)
    from xiva_source.dwh.schema import init_dwh

    report = init_dwh(url, dry_run=args.dry_run)
    if args.dry_run:
        for statement in report.ddl:
            print(f"{statement}\n")
    # Like materialize: the one line on stdout on success, on stderr on failure.
    print(report.line(), file=sys.stdout if report.ok else sys.stderr)
    return report.exit_code


def _dwh_seed(args: argparse.Namespace, url: str) -> int:
    from xiva_source.demo.data import seed_dwh
    from xiva_source.redaction import redact_url

    if args.dry_run:
        raise ConfigurationError(
            "--dry-run applies to `dwh init` only.", "Run `dwh seed` without --dry-run."
        )
    info = seed_dwh(url, args.customers, args.seed, replace=args.replace)
    rows = ", ".join(f"{name}={count}" for name, count in info.rows.items())
    print(
        f"dwh seed ok customers={len(info.customer_ids)} shared_with_xiva={len(info.shared_ids)} "
        f"dwh_only={len(info.dwh_only_ids)} xiva_only={len(info.xiva_only_ids)} "
        f"url={redact_url(url)}; rows: {rows}; simulator: --customers {args.customers} "
        f"--seed {args.seed}"
    )
    return EXIT_OK


# -- pending ---------------------------------------------------------------------------------------


def _pending_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=_positive_int, default=20, help="customers to list (default: 20)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument(
        "--snapshot-url",
        help="database of the snapshot table (default: the repository's offline_store "
        "snapshot_url, else DWH_URL)",
    )


def _pending(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.dwh.pending import list_pending, pending_table_name

    url, snapshot_table = _snapshot_location(args, context)
    counts, rows = list_pending(url, pending_table_name(snapshot_table), limit=args.limit)
    total = sum(counts.values())
    if args.json:
        print(
            json.dumps(
                {
                    "pending_retries": total,
                    "by_source": counts,
                    "customers": [
                        {
                            "source": r.source,
                            "customer_id": r.customer_id,
                            "attempts": r.attempts,
                            "first_failed_at": r.first_failed_at.isoformat() + "Z",
                            "last_failed_at": r.last_failed_at.isoformat() + "Z",
                            "reason": r.reason,
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
        return EXIT_OK
    per_source = " ".join(f"{name}={n}" for name, n in sorted(counts.items()))
    print(f"pending_retries={total}" + (f" ({per_source})" if per_source else ""))
    for r in rows:
        print(
            f"{r.customer_id} source={r.source} attempts={r.attempts} "
            f"since={r.first_failed_at.isoformat()}Z: {r.reason}"
        )
    return EXIT_OK


def _snapshot_location(args: argparse.Namespace, context: CommandContext) -> tuple[str, str]:
    """The snapshot table's database and name: options, else the repository's, else defaults."""
    import yaml

    from xiva_source.dwh.tables import SNAPSHOT_TABLE

    offline: dict[str, Any] = {}
    config = Path(args.repo) / "feature_store.yaml"
    if config.is_file():
        loaded = yaml.safe_load(config.read_text()) or {}
        offline = loaded.get("offline_store") or {}
    url = args.snapshot_url or offline.get("snapshot_url") or context.require_settings().dwh_url
    return str(url), str(offline.get("snapshot_table") or SNAPSHOT_TABLE)


# -- shared helpers --------------------------------------------------------------------------------


def open_store(repo: str | Path, *, applied: bool = False) -> Any:
    """``FeatureStore(repo_path=repo)``, or a short error when ``repo`` is no Feast repository.

    Args:
        repo: The repository directory (``--repo``).
        applied: Also refuse a repository whose registry holds no feature view (never applied).

    Raises:
        ConfigurationError: No ``feature_store.yaml`` in ``repo``, or (``applied``) no feature
            view in its registry (exit 2).
        RepositoryError: Feast cannot load it.
    """
    path = Path(repo)
    if not (path / "feature_store.yaml").is_file():
        raise ConfigurationError(
            f"No Feast repository at {str(path)!r} (no feature_store.yaml).",
            "Pass --repo with the feature repository directory (default: feature_repo, from the "
            "project root), then run `make apply`.",
            setting="--repo",
        )
    from feast import FeatureStore

    from xiva_source.feast_plugin.errors import RepositoryError

    try:
        store = FeatureStore(repo_path=str(path))
    except Exception as e:  # Feast raises many types for a bad yaml
        raise RepositoryError(
            f"{path / 'feature_store.yaml'} cannot be loaded: {type(e).__name__}: {e}",
            "Correct feature_store.yaml (compare with feature_repo/feature_store.yaml).",
        ) from e
    if applied and not store.list_feature_views():
        raise _not_applied(path, store.project)
    return store


def open_registry(repo: str | Path, *, applied: bool = False, online: bool = False) -> Any:
    """:func:`open_store` without Feast's SDK when the repository allows it (start-up in ms).

    A :class:`~xiva_source.feast_plugin.registry_reader.LightRepository` (the registry read
    directly) when :func:`~xiva_source.feast_plugin.registry_reader.read_repository` reads the
    repository and, with ``online``, its online store is the project's Redis store configured by
    the settings, or not Redis; else :func:`open_store`'s ``FeatureStore``. The errors are
    :func:`open_store`'s (an unreadable registry goes to Feast, which reports it).

    Args:
        repo: The repository directory (``--repo``).
        applied: Also refuse a repository whose registry holds no feature view (never applied).
        online: The caller reaches the online store (``redis_from_settings`` must be known).
    """
    from xiva_source.feast_plugin.registry_reader import read_repository

    path = Path(repo)
    light = read_repository(path) if (path / "feature_store.yaml").is_file() else None
    if light is None or (online and light.redis_from_settings is None):
        return open_store(repo, applied=applied)
    if applied and not light.list_feature_views():
        raise _not_applied(path, light.project)
    return light


def _not_applied(path: Path, project: str) -> ConfigurationError:
    return ConfigurationError(
        f"The Feast repository at {str(path)!r} (project {project!r}) has no feature "
        "views in its registry: it was not applied.",
        f"Run `make apply` (feast -c {path} apply), then `make materialize`.",
        setting="--repo",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


TREE = CommandTree(
    prog="xiva-source",
    description="The loyalty feature store's operator commands: Xiva usage, materialization, "
    "live refresh, the real-time sync worker, the demo, the DWH set-up, pending Xiva retries, "
    "status and the Xiva simulator.",
    commands=(
        Command(
            "usage",
            help="print the Xiva API usage counters (requests, 429s, retries)",
            description="Print the Xiva API usage counters kept in Redis (REDIS_URL): requests, "
            "429s, retries and errors per endpoint and per UTC hour.",
            configure=_usage_options,
            run=_usage,
        ),
        Command(
            "materialize",
            help="cron-safe incremental materialization into the online store",
            description="Materialize every feature view (or --view) from its sources into the "
            "online store, incrementally from Feast's watermark, under a lock; prints one summary "
            "line. Exit status: 0 success or skipped (another run holds the lock), 1 failure (or "
            "a fallback with --fail-on-fallback), 2 usage or configuration error, 3 completed but "
            "degraded (a fallback to one source, or customers pending a retry), 4 the run state "
            "is corrupted (the line names the field and its repair; nothing was read).",
            configure=_materialize_options,
            run=_materialize,
        ),
        Command(
            "refresh",
            help="fetch one customer from Xiva now and write it online",
            description="Read one customer's 360 view from Xiva now, write its Xiva features to "
            "the online store (as the data-source mode says) and print them as JSON.",
            configure=_refresh_options,
            run=_refresh,
        ),
        Command(
            "demo",
            help="the end-to-end demo (simulator, SQLite DWH, embedded store)",
            description="End-to-end demo with nothing to run first: the bundled Xiva simulator, "
            "an embedded SQLite DWH and an embedded online store, on a copy of --repo.",
            configure=_demo_options,
            run=_demo,
        ),
        Command(
            "dwh",
            help="set up the data warehouse: `dwh init` creates the contract's tables, `dwh seed` "
            "fills them with sample data",
            description="`dwh init` creates the DWH contract's tables (customer_features_view and "
            "the history tables, docs/dwh.md) that are missing in DWH_URL (SQLite or PostgreSQL) "
            "and checks those that exist, never altering them. `dwh seed --customers N` fills them "
            "with the demo population of the simulator's customers (`xiva-source simulator "
            "--customers N`, same --seed), refusing tables that hold rows unless --replace. Each "
            "prints one summary line. Exit status: 0 done (or nothing to do), 1 an existing table "
            "lacks contract columns or holds rows (seed), or the warehouse failed, 2 usage or "
            "configuration error.",
            configure=_dwh_options,
            run=_dwh,
        ),
        Command(
            "pending",
            help="Xiva customers waiting for a retry (failed or malformed), with the reasons",
            description="List the Xiva customers a pull could not read (360 fetch failed, or a "
            "malformed record) that the next materialization fetches again: the count per "
            "source, then the most-failed customers with their attempts and reason.",
            configure=_pending_options,
            run=_pending,
        ),
        SYNC_COMMAND,
        STATUS_COMMAND,
        SIMULATOR_COMMAND,
    ),
)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``xiva-source``; returns the exit status (0 ok, 1 failure, 2 usage/configuration, 3
    a materialization that completed degraded).

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        prog: The program name in messages (default ``xiva-source``).
    """
    return TREE.main(argv, prog=prog)
