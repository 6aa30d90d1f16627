"""``python -m xiva_source <command>``: the project's operator commands.

Commands are dispatched lazily so ``usage`` starts fast (it does not import Feast).
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["main"]

_COMMANDS: dict[str, tuple[str, str]] = {
    "usage": (
        "xiva_source.xiva_api.usage",
        "Print Xiva API usage counters (requests, 429s, retries).",
    ),
    "materialize": ("xiva_source.jobs.materialize", "Cron-safe incremental materialization."),
    "refresh": (
        "xiva_source.jobs.refresh",
        "Fetch one customer from Xiva now and write it online.",
    ),
    "demo": (
        "xiva_source.demo.run",
        "The end-to-end demo (simulator, SQLite DWH, embedded store).",
    ),
    "simulator": ("xiva_source.simulator.__main__", "Run the bundled Xiva simulator."),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command module's ``cli(argv)``; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"} or args[0] not in _COMMANDS:
        print("usage: python -m xiva_source <command> [options]\n\ncommands:")
        for name, (_, help_text) in _COMMANDS.items():
            print(f"  {name:<12} {help_text}")
        return 0 if not args or args[0] in {"-h", "--help", "help"} else 2
    module = importlib.import_module(_COMMANDS[args[0]][0])
    return int(module.cli(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
