"""``xiva-source sync``: the real-time worker (:mod:`xiva_source.sync`), as a long-running process.

SIGTERM and SIGINT stop it cleanly (the customer being written is finished, the position saved,
the lock released) with exit status 0. One summary line every ``--summary-minutes`` on stdout;
warnings (a source failing, recovering, a takeover) on stderr at the default level.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from xiva_source.cli.app import Command, CommandContext
from xiva_source.cli.boundary import EXIT_OK

__all__ = ["SYNC_COMMAND"]


def _positive(kind: type[Any]) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        return value

    return parse


def _sync_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval",
        type=_positive(float),
        default=1.0,
        metavar="SECONDS",
        help="seconds between Xiva polls while caught up (default: 1)",
    )
    parser.add_argument(
        "--dwh-interval",
        type=_positive(float),
        default=300.0,
        metavar="SECONDS",
        help="seconds between DWH reads in auto and dwh modes (default: 300)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive(int),
        default=50,
        help="changed customers per batch, one checkpoint save each (default: 50)",
    )
    parser.add_argument(
        "--summary-minutes",
        type=_positive(float),
        default=5.0,
        metavar="MINUTES",
        help="minutes between summary lines on stdout (default: 5)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus /metrics on 127.0.0.1:PORT (default: none; the textfile beside "
        "METRICS_TEXTFILE is written either way when it is set)",
    )
    parser.add_argument(
        "--metrics-textfile",
        type=Path,
        default=None,
        metavar="PATH",
        help="the job's textfile path; the worker writes <stem>_sync.prom beside it (default: "
        "METRICS_TEXTFILE)",
    )


def _sync(args: argparse.Namespace, context: CommandContext) -> int:
    from xiva_source.cli.xiva import open_store
    from xiva_source.sync.worker import SyncOptions, SyncWorker

    settings = context.require_settings()
    store = open_store(args.repo, applied=True)
    options = SyncOptions(
        interval=args.interval,
        dwh_interval=args.dwh_interval,
        batch_size=args.batch_size,
        summary_every=args.summary_minutes * 60,
        metrics_textfile=args.metrics_textfile,
        metrics_port=args.metrics_port,
    )

    def summary(line: str) -> None:
        print(line, flush=True)

    worker = SyncWorker(store, settings, options=options, on_summary=summary)

    def stop(signum: int, frame: Any) -> None:
        del frame
        print(f"sync: {signal.Signals(signum).name} received: stopping", file=sys.stderr)
        worker.stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(f"sync {store.project}: stopped", flush=True)
    return EXIT_OK


SYNC_COMMAND = Command(
    "sync",
    help="real-time worker: follow Xiva and the DWH into the online store and the segments",
    description="Follow Xiva's changes (lastUpdate) and the DWH's newer rows into the online "
    "store within seconds, re-evaluate each changed customer's segments and publish their "
    "joined/left events once, and publish time-driven transitions at each UTC day boundary. "
    "One active worker per project (a second one waits as a standby and takes over when the "
    "first dies). Runs until SIGTERM or SIGINT (exit 0). docs/operations.md, 'Real-time sync'.",
    configure=_sync_options,
    run=_sync,
)
