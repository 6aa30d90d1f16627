"""``xiva-source status``: freshness per feature view and source, the last run, a health check.

Prints the report of :func:`xiva_source.jobs.status.collect_status` (or ``--json``) on stdout;
exit status 0. With ``--max-age`` (or ``--check``) it is a health check: one line on stderr and
a distinct exit status per trouble (:data:`~xiva_source.jobs.status.HEALTH_EXIT_CODES`): 1 a view
older than ``--max-age`` (or never materialized), 4 the run state corrupted, 5 the online store
down, 6 the DWH down; 2 stays a usage or configuration error (docs/operations.md, "Status").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timedelta
from typing import Any

from xiva_source.cli.app import Command, CommandContext
from xiva_source.cli.boundary import EXIT_OK

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
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number more than 0")
    try:
        return timedelta(seconds=value * _UNITS[unit])
    except OverflowError as e:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too long a duration; use at most {timedelta.max.days} days"
        ) from e


def _status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    parser.add_argument(
        "--max-age",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="health check: exit 1 when a feature view's watermark is older than this (e.g. "
        "30m, 2h), 4 state corrupted, 5 online store down, 6 DWH down (default: no check)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="health check without a freshness limit: exit 4 state corrupted, 5 online store "
        "down, 6 DWH down",
    )


def _status(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.cli.xiva import open_registry
    from xiva_source.errors import ConfigurationError
    from xiva_source.feast_plugin.registry_reader import LightRepository
    from xiva_source.jobs.status import collect_status, online_store_down
    from xiva_source.timeutil import utc_now

    settings = context.require_settings()
    # The registry read directly when it can be: no Feast SDK to import (docs/operations.md).
    store = open_registry(args.repo, applied=True, online=True)
    check = args.check or args.max_age is not None
    try:
        if isinstance(store, LightRepository):
            client = store.redis_client(settings)
        else:
            from xiva_source.feast_plugin.online_store import online_redis_client

            client = online_redis_client(store.config, settings)
    except ConfigurationError:
        raise  # a bad REDIS_URL: exit 2 with its fix
    except Exception as e:  # a cluster's or the sentinels' nodes unreachable
        if not check:
            raise
        print(online_store_down(e).line("status"), file=sys.stderr)
        return online_store_down(e).exit_code
    now = utc_now()
    try:
        status = collect_status(store, settings, client, now=now)
        sync_lines, sync_json = _sync_status(client, store.project, now)
    finally:
        if client is not None:
            client.close()
    stale = status.stale(args.max_age) if args.max_age is not None else []
    verdict = status.verdict(args.max_age) if check else None
    if args.json:
        document = status.to_json()
        document["stale_views"] = stale
        document["sync"] = sync_json
        if verdict is not None:
            document["health"] = {"status": verdict.kind, "exit_code": verdict.exit_code}
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print("\n".join([*status.lines(), *sync_lines]))
    if verdict is None:
        return EXIT_OK
    if verdict.exit_code != EXIT_OK:
        print(verdict.line("status"), file=sys.stderr)
    return verdict.exit_code


STATUS_COMMAND = Command(
    "status",
    help="freshness per feature view and source, the last run, pending retries (health check)",
    description="Show, per feature view and source, the watermark and its age, the last run's "
    "result, rows and duration, the customers pending a retry, the Xiva usage of this UTC hour "
    "and the project's online key count. Exit status 0; 2 usage or configuration error. With "
    "--max-age or --check it is a health check: 1 a view older than --max-age (or never "
    "materialized), 4 the run state corrupted, 5 the online store down, 6 the DWH down.",
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
