"""Log warnings folded into a job's one line (``materialize`` promises one line per run).

At the default log level (``WARNING``, no ``--debug``) every warning or error a logger emits
while a run goes (the Xiva client's rate limiter and usage counters losing Redis, the lock's
renewal, Feast's or a driver's own, a Python ``warnings.warn``) is kept off stderr and handed to
the run's summary line as ``; warning: ...`` clauses instead: each distinct message once, at
most :data:`MAX_FOLDED`, then a count. With ``--log-level INFO``/``DEBUG`` or ``--debug``
nothing is folded: the records print as they happen. When the command ends without a line to
fold them into (another error), the kept records are printed after all, so nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from xiva_source.redaction import redact

__all__ = ["MAX_FOLDED", "FoldedWarnings", "folded_warnings"]

MAX_FOLDED = 3
"""Distinct messages folded into the line; more are counted."""

_MESSAGE_LIMIT = 200


class FoldedWarnings(logging.Filter):
    """The records a run's handlers did not print (a filter on the stderr handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.folded = False
        """:meth:`clauses` was called: the line carries them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        self.records.append(record)
        return False

    def clauses(self) -> list[str]:
        """The warnings for the summary line: distinct messages (secrets masked, one line each,
        cut to 200 characters), at most :data:`MAX_FOLDED`, then how many more."""
        self.folded = True
        distinct: list[str] = []
        for record in self.records:
            text = _one_line(record)
            if text not in distinct:
                distinct.append(text)
        shown = distinct[:MAX_FOLDED]
        if len(distinct) > MAX_FOLDED:
            more = len(distinct) - MAX_FOLDED
            shown.append(f"{more} more logged warnings (--log-level INFO prints every one)")
        return shown


def _one_line(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # a record with bad arguments: its format string
        message = str(record.msg)
    lines = [line.strip() for line in redact(message).splitlines() if line.strip()]
    text = lines[0] if lines else record.levelname
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


@contextmanager
def folded_warnings(enabled: bool) -> Iterator[FoldedWarnings]:
    """Keep warnings off the command line's stderr while the block runs (``enabled``).

    Yields:
        The kept records; call :meth:`FoldedWarnings.clauses` to fold them into the line. Those
        not folded by the end are handed back to the handlers then.
    """
    from xiva_source.cli.app import stderr_handlers

    kept = FoldedWarnings()
    # The command line's stderr handlers only: another handler (a file, a test's capture) still
    # gets every record.
    handlers = stderr_handlers() if enabled else []
    for handler in handlers:
        handler.addFilter(kept)
    if enabled:  # Python warnings (a library's RuntimeWarning) too, as records of py.warnings
        logging.captureWarnings(True)
    try:
        yield kept
    finally:
        if enabled:
            logging.captureWarnings(False)
        for handler in handlers:
            handler.removeFilter(kept)
        if not kept.folded:
            for record in kept.records:
                for handler in handlers:
                    if record.levelno >= handler.level:
                        handler.handle(record)
