"""``python -m xiva_source.simulator`` (or ``python -m xiva_source simulator``): run the simulator.

Prints the API base URL and the control URL, then serves until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError

from .config import FAULT_KINDS, FaultConfig, SimulatorConfig
from .simulator import XivaSimulator

__all__ = ["build_parser", "cli"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError(
            "expected NAME:PASSWORD (e.g. --user demo:demo-pass); the value given has no ':' "
            "or an empty side"
        )
    return name, password


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {unknown or [text]}; choose from {', '.join(FAULT_KINDS)}"
        )
    return kinds


def build_parser() -> argparse.ArgumentParser:
    """The command line parser (documented flag by flag in docs/simulator.md)."""
    parser = argparse.ArgumentParser(
        prog="python -m xiva_source.simulator",
        description="Run the bundled Xiva simulator (a Xiva-like API on a local port).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    add("--port", type=int, default=8765, help="TCP port, 0 for any free one (default 8765)")
    add("--customers", type=int, default=1000, help="synthetic customers (default 1000)")
    add("--seed", type=int, default=42, help="seed of the synthetic data (default 42)")
    add(
        "--user",
        type=_user,
        action="append",
        metavar="NAME:PASSWORD",
        help="an account that may log in; repeatable (default demo:demo-pass)",
    )
    add("--rate-limit", type=float, help="per-user requests/second before 429 (default: none)")
    add("--burst", type=int, help="per-user burst (default: ceil of --rate-limit)")
    add("--fault-rate", type=float, default=0.0, help="share of API requests that fail (0..1)")
    add(
        "--fault-kinds",
        type=_kinds,
        default=("503",),
        help=f"comma-separated fault kinds among {','.join(FAULT_KINDS)} (default 503)",
    )
    add(
        "--retry-after",
        choices=("seconds", "http_date", "zero", "missing"),
        default="seconds",
        help="Retry-After style of injected 429/503 (default seconds)",
    )
    add("--retry-after-seconds", type=int, default=1, help="announced wait (default 1)")
    add("--slow-seconds", type=float, default=2.0, help="delay of 'slow' faults (default 2.0)")
    add("--access-lifetime", type=float, default=300.0, help="access token seconds (default 300)")
    add("--refresh-lifetime", type=float, default=86400.0, help="refresh token seconds (86400)")
    add("--list-shape", choices=("array", "drf"), default="array", help="customer list body")
    add("--base-path", default="/api", help="path prefix of the API (default /api)")
    add("--verbose", action="store_true", help="log every request to stderr")
    return parser


def cli(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; returns the exit status.

    Args:
        argv: The arguments after the command name (default ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    users = dict(args.user) if args.user else {"demo": "demo-pass"}
    try:
        config = SimulatorConfig.model_validate(
            {
                "host": args.host,
                "port": args.port,
                "customers": args.customers,
                "seed": args.seed,
                "users": users,
                "rate_limit_per_second": args.rate_limit,
                "rate_limit_burst": args.burst,
                "access_token_lifetime": args.access_lifetime,
                "refresh_token_lifetime": args.refresh_lifetime,
                "list_shape": args.list_shape,
                "base_path": args.base_path,
                "log_requests": args.verbose,
            }
        )
        faults = None
        if args.fault_rate > 0:
            faults = FaultConfig(
                rate=args.fault_rate,
                kinds=args.fault_kinds,
                retry_after=args.retry_after,
                retry_after_seconds=args.retry_after_seconds,
                slow_seconds=args.slow_seconds,
                seed=args.seed,
            )
    except ValidationError as e:
        print(f"error: invalid simulator options: {e}", file=sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    sim = XivaSimulator(config)
    try:
        sim.start()
    except OSError as e:
        print(
            f"error: cannot listen on {args.host}:{args.port} ({e}); pick another --port "
            "(0 for any free one)",
            file=sys.stderr,
        )
        return 1
    if faults is not None:
        sim.set_faults(faults)
    print(f"Xiva simulator serving {config.customers} customers at {sim.base_url}", flush=True)
    print(f"controls: {sim.root_url}/_sim/   users: {', '.join(sim.user_names())}", flush=True)
    try:
        _wait_for_signal()
    finally:
        sim.stop()
    print("Xiva simulator stopped.", flush=True)
    return 0


def _wait_for_signal() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM; the previous handlers are restored afterwards."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals only reach main
        stop.wait()
        return

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGINT too, explicitly: a shell starts background jobs with SIGINT ignored.
    previous = {signum: signal.signal(signum, _on_signal) for signum in _STOP_SIGNALS}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(cli())
