"""The one error boundary of every command.

- Any :class:`~xiva_source.errors.LoyaltyError` prints its ``problem`` and ``fix`` (two lines, no
  traceback) and exits with its ``exit_code`` (1 failure, 2 configuration).
- A few third-party failures that are expected in operation (Redis unreachable, the warehouse
  unreachable, a Feast repository not applied) are first translated into the project's error of
  that domain, so they print the same way.
- Anything else prints one line and ``run with --debug for the traceback``; exit 1.
- ``--debug`` prints the traceback as well.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TextIO

from xiva_source.errors import LoyaltyError
from xiva_source.redaction import redact

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "guard", "report_error", "translate"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130


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
    except SystemExit:
        raise
    except Exception as e:
        if debug:
            traceback.print_exc(file=out)
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
    """The project's error for ``error`` (itself, or a translated cause), or ``None``.

    The exception's chain (``__cause__`` / ``__context__``) is searched, so a library that wraps a
    ``redis.ConnectionError`` in its own exception is still recognised.
    """
    for item in _chain(error):
        if isinstance(item, LoyaltyError):
            return item
    for item in _chain(error):
        translated = _third_party(item)
        if translated is not None:
            return translated
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _third_party(error: BaseException) -> LoyaltyError | None:
    # Only libraries already imported can have raised: nothing is imported just to check.
    redis_exc = sys.modules.get("redis.exceptions")
    if redis_exc is not None and isinstance(
        error, redis_exc.ConnectionError | redis_exc.TimeoutError | redis_exc.AuthenticationError
    ):
        from xiva_source.feast_plugin.errors import OnlineStoreError

        return OnlineStoreError(f"Redis (the online store) is unreachable: {_one_line(str(error))}")
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(
        error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.ArgumentError
    ):
        from xiva_source.dwh.errors import DwhError

        return DwhError(f"the warehouse cannot be reached: {_one_line(str(error))}")
    feast_errors = sys.modules.get("feast.errors")
    if feast_errors is not None and isinstance(error, feast_errors.FeastObjectNotFoundException):
        from xiva_source.feast_plugin.errors import RepositoryError

        return RepositoryError(f"the Feast registry does not know it: {_one_line(str(error))}")
    return None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    return first if len(first) <= 400 else first[:397] + "..."


def _flat(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
