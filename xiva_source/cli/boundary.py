"""The one error boundary of every command.

- Any :class:`~xiva_source.errors.LoyaltyError` prints its ``problem`` and ``fix`` (two lines, no
  traceback) and exits with its ``exit_code`` (1 failure, 2 configuration, 4 a corrupted run
  state).
- A few third-party failures that are expected in operation (Redis unreachable, the warehouse
  unreachable, a Feast repository not applied) are first translated into the project's error of
  that domain, so they print the same way.
- Anything else prints one line and ``run with --debug for the traceback``; exit 1.
- ``--debug`` prints the traceback as well.
- A reader that stops reading (``status | head``) ends the command quietly with status 141, as
  a SIGPIPE would (``128 + 13``): nothing more is printed, no error.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from xiva_source.errors import LoyaltyError
from xiva_source.redaction import redact

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "guard", "report_error", "translate"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def guard(run: Callable[[], int], *, label: str, debug: bool, stream: TextIO | None = None) -> int:
    """Run ``run`` and turn any exception into a short message and an exit status.

    Args:
        run: The command; returns its exit status.
        label: Prefix of the messages, e.g. ``"xiva-source materialize"``.
        debug: Print tracebacks too.
        stream: Where messages go (default ``sys.stderr``).

    Returns:
        The exit status: ``run``'s, or the error's.
    """
    out = stream or sys.stderr
    try:
        return int(run() or 0)
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=out)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except SystemExit:
        raise
    except Exception as e:
        if debug:
            out.write(redact(traceback.format_exc()))  # an exception's args may hold a secret
        return report_error(e, label=label, debug=debug, stream=out)


def report_error(
    error: BaseException, *, label: str, debug: bool = False, stream: TextIO | None = None
) -> int:
    """Print ``error`` the boundary's way; returns the exit status it calls for."""
    out = stream or sys.stderr
    known = translate(error)
    if known is not None:
        print(f"{label}: error: {_flat(known.problem)}", file=out)
        if known.fix:
            print(f"  fix: {_flat(known.fix)}", file=out)
        return known.exit_code
    text = _one_line(redact(str(error))) or "(no message)"
    print(f"{label}: unexpected error: {type(error).__name__}: {text}", file=out)
    if not debug:
        print("  run with --debug for the traceback", file=out)
    return EXIT_FAILURE


def translate(error: BaseException) -> LoyaltyError | None:
    """The project's error for ``error`` (itself, a cause, or a translated third-party failure)."""
    from xiva_source.feast_plugin.foreign_errors import project_error_for

    return project_error_for(error)


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush must not fail on the closed pipe
    (the recipe of Python's ``signal`` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is no file (a test's capture)
        pass


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    return first if len(first) <= 400 else first[:397] + "..."


def _flat(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
