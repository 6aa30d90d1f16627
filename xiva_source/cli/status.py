"""``xiva-source status``: freshness per feature view and source, the last run, a health check.

Prints the report of :func:`xiva_source.jobs.status.collect_status` (or ``--json``) on stdout.
Exit status 0, or 1 when ``--max-age`` is given and a view's watermark is older (or the view was
never materialized): then one line on stderr names the stale views, so the command serves as a
health check (docs/operations.md, "Status").
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from xiva_source.cli.app import Command, CommandContext
from xiva_source.cli.boundary import EXIT_FAILURE, EXIT_OK

__all__ = ["STATUS_COMMAND", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``--max-age``: seconds, or a number with ``s``, ``m``, ``h`` or ``d`` (``90m``, ``2h``)."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        value = float(number)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use seconds or e.g. 30m, 2h, 1d"
        ) from e
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return timedelta(seconds=value * _UNITS[unit])


def _status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument(
        "--max-age",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="exit 1 when a feature view's watermark is older than this (e.g. 30m, 2h; "
        "default: no check)",
    )


def _status(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.cli.xiva import open_store
    from xiva_source.feast_plugin.online_store import online_redis_client
    from xiva_source.jobs.status import collect_status
    from xiva_source.timeutil import utc_now

    settings = context.require_settings()
    store = open_store(args.repo, applied=True)
    client = online_redis_client(store.config, settings)
    now = utc_now()
    try:
        status = collect_status(store, settings, client, now=now)
        sync_lines, sync_json = _sync_status(client, store.project, now)
    finally:
        if client is not None:
            client.close()
    stale = status.stale(args.max_age) if args.max_age is not None else []
    if args.json:
        document = status.to_json()
        document["stale_views"] = stale
        document["sync"] = sync_json
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print("\n".join([*status.lines(), *sync_lines]))
    if stale:
        print(
            f"status: stale: {', '.join(stale)} older than {args.max_age} (or never "
            "materialized); check the last run above and the materialization cron job",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


STATUS_COMMAND = Command(
    "status",
    help="freshness per feature view and source, the last run, pending retries (health check)",
    description="Show, per feature view and source, the watermark and its age, the last run's "
    "result, rows and duration, the customers pending a retry, the Xiva usage of this UTC hour "
    "and the project's online key count. Exit status 0; 1 when --max-age is given and a view "
    "is older (a health check); 2 usage or configuration error.",
    configure=_status_options,
    run=_status,
)


def _sync_status(client: Any, project: str, now: datetime) -> tuple[list[str], Any]:
    """The sync worker's lines and JSON (:mod:`xiva_source.sync.status`): whether it runs, its
    lag per source and its last error; unknown (with the reason) when Redis cannot be read."""
    from redis.exceptions import RedisError

    from xiva_source.redaction import redact
    from xiva_source.sync.status import read_status, status_json, status_lines

    if client is None:
        return ["sync worker: not available (the online store is not Redis)"], None
    try:
        record, holder = read_status(client, project)
    except RedisError as e:
        problem = redact(str(e))
        return [f"unknown sync worker: {problem}"], {"problem": problem}
    return status_lines(record, holder, now), status_json(record, holder, now)
