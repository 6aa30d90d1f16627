"""``xiva-source simulator`` and ``python -m xiva_source.simulator``: run the bundled simulator.

Prints the API base URL and the control URL, then serves until Ctrl-C (or SIGTERM). The options
are documented flag by flag in docs/simulator.md.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from xiva_source.cli.app import Command, CommandContext, configure_logging, single_command_main
from xiva_source.cli.boundary import EXIT_OK
from xiva_source.errors import ConfigurationError, LoyaltyError

__all__ = ["SIMULATOR_COMMAND", "add_simulator_options", "main", "run_simulator"]

SIMULATOR_PROG = "python -m xiva_source.simulator"
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
    from xiva_source.simulator.config import FAULT_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {unknown or [text]}; choose from {', '.join(FAULT_KINDS)}"
        )
    return kinds


def add_simulator_options(parser: argparse.ArgumentParser) -> None:
    """The simulator's own options."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    add("--port", type=int, default=8765, help="TCP port, 0 for any free one (default: 8765)")
    add("--customers", type=int, default=1000, help="synthetic customers (default: 1000)")
    add("--seed", type=int, default=42, help="seed of the synthetic data (default: 42)")
    add(
        "--user",
        type=_user,
        action="append",
        metavar="NAME:PASSWORD",
        help="an account that may log in; repeatable (default: demo:demo-pass)",
    )
    add("--rate-limit", type=float, help="per-user requests/second before 429 (default: none)")
    add("--burst", type=int, help="per-user burst (default: ceil of --rate-limit)")
    add("--fault-rate", type=float, default=0.0, help="share of API requests that fail (0..1)")
    from xiva_source.simulator.config import FAULT_KINDS

    add(
        "--fault-kinds",
        type=_kinds,
        default=("503",),
        help=f"comma-separated fault kinds among {','.join(FAULT_KINDS)} (default: 503; "
        "swapped: a customer's request answered with another customer's record)",
    )
    add(
        "--retry-after",
        choices=("seconds", "http_date", "zero", "missing"),
        default="seconds",
        help="Retry-After style of injected 429/503 (default: seconds)",
    )
    add("--retry-after-seconds", type=int, default=1, help="announced wait (default: 1)")
    add("--slow-seconds", type=float, default=2.0, help="delay of 'slow' faults (default: 2.0)")
    add("--access-lifetime", type=float, default=300.0, help="access token seconds (default: 300)")
    add("--refresh-lifetime", type=float, default=86400.0, help="refresh token seconds (86400)")
    add(
        "--list-shape",
        choices=("array", "drf"),
        default="array",
        help="customer list body (default: array)",
    )
    add("--base-path", default="/api", help="path prefix of the API (default: /api)")
    add(
        "--clock-skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run Xiva's clock this far ahead of this host's, negative: behind (lastUpdate of "
        "changes, Date headers, tokens; default: 0)",
    )
    add("--verbose", action="store_true", help="log every request to stderr")


def run_simulator(args: argparse.Namespace, context: CommandContext | None = None) -> int:
    """Run the simulator until interrupted; returns the exit status.

    Raises:
        ConfigurationError: The options do not make a valid simulator (exit 2).
        LoyaltyError: The port cannot be bound (exit 1).
    """
    from pydantic import ValidationError

    from xiva_source.simulator import FaultConfig, SimulatorConfig, XivaSimulator

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
                "clock_skew_seconds": args.clock_skew,
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
        details = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)
        )
        raise ConfigurationError(
            f"invalid simulator options: {details}",
            "correct the options named above (see --help)",
        ) from e
    if args.verbose:
        configure_logging("INFO", debug=bool(context and context.debug))

    sim = XivaSimulator(config)
    try:
        sim.start()
    except OSError as e:
        raise LoyaltyError(
            f"cannot listen on {args.host}:{args.port} ({e})",
            "pick another --port (0 for any free one)",
        ) from e
    if faults is not None:
        sim.set_faults(faults)
    print(f"Xiva simulator serving {config.customers} customers at {sim.base_url}", flush=True)
    print(f"controls: {sim.root_url}/_sim/   users: {', '.join(sim.user_names())}", flush=True)
    try:
        _wait_for_signal()
    finally:
        sim.stop()
    print("Xiva simulator stopped.", flush=True)
    return EXIT_OK


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


SIMULATOR_COMMAND = Command(
    "simulator",
    help="run the bundled Xiva simulator",
    description="Run the bundled Xiva simulator (a Xiva-like API on a local port) until Ctrl-C: "
    "synthetic customers, accounts, rate limits and injected faults (docs/simulator.md).",
    configure=add_simulator_options,
    run=run_simulator,
    needs_settings=False,
)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """``python -m xiva_source.simulator [options]``: the simulator as a program of its own.

    The same options as ``xiva-source simulator``, plus the global ones (``--debug``,
    ``--log-level``, ``--version``).

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        prog: The program name in messages (default ``python -m xiva_source.simulator``).

    Returns:
        The exit status (0 after Ctrl-C/SIGTERM, 1 failure, 2 usage error).
    """
    return single_command_main(SIMULATOR_COMMAND, argv, prog=prog or SIMULATOR_PROG)
