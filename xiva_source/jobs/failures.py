"""How a job's failure becomes a ``problem`` and a ``fix``: the one place foreign errors are mapped.

The job wraps the exceptions it expects where they happen (Redis -> ``OnlineStoreError``, the
registry -> ``RepositoryError``; the pipeline raises ``DataSourceError`` / ``DwhError`` itself), so
every failure normally arrives as a :class:`~xiva_source.errors.LoyaltyError` carrying its own
``problem`` and ``fix``. :func:`as_project_error` is the safety net for what slipped through:
:mod:`xiva_source.feast_plugin.foreign_errors` maps a foreign exception to its failure domain.
"""

from __future__ import annotations

from xiva_source.errors import LoyaltyError
from xiva_source.feast_plugin.foreign_errors import project_error_for
from xiva_source.redaction import redact

__all__ = ["RERUN_NOTE", "as_project_error", "explain_failure"]

RERUN_NOTE = "The watermark did not move: the next run repeats the window."
"""Appended to every failed run's fix: what the failure did (not) change."""

_UNEXPECTED_FIX = "See the log above (--log-level INFO for details)."


def as_project_error(error: BaseException) -> LoyaltyError:
    """``error`` as a project error: itself when it is one, else its failure domain's error.

    Args:
        error: Any exception a run raised.

    Returns:
        A :class:`~xiva_source.errors.LoyaltyError` with ``problem`` and ``fix`` (secrets masked);
        ``error`` itself when it already is one.
    """
    known = project_error_for(error)
    if known is not None:
        return known
    text = redact(str(error))
    return LoyaltyError(f"{type(error).__name__}: {text}", _UNEXPECTED_FIX)


def explain_failure(error: BaseException, where: str) -> tuple[str, str]:
    """The cause and the fix of a failed run, for its summary line and its error.

    Args:
        error: What the run raised.
        where: What failed, e.g. ``"view customer_features"`` or ``"the lock"``.

    Returns:
        ``(cause, fix)``: the cause names ``where`` and the failure; the fix ends with
        :data:`RERUN_NOTE`.
    """
    project_error = as_project_error(error)
    fix = project_error.fix or _UNEXPECTED_FIX
    return f"{where}: {project_error.problem}", f"{fix} {RERUN_NOTE}"
