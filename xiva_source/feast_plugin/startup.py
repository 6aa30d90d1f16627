"""A faster ``import feast`` for the cron job: Feast's classes without typeguard's instrumentation.

Feast decorates its definition classes (``FeatureView``, ``OnDemandFeatureView``,
``FeatureService``, the data sources, ...) with typeguard's ``@typechecked``. At import, that
decorator instruments every method of each class: it reads the module's source, parses it and
compiles each method again. That is most of ``import feast`` (measured here: 12-18 s of it under
load became 3-6 s without it; ``bench/incremental.py`` shows a run's wall time), paid by every run
of ``xiva-source materialize`` before it does any work.

:func:`skip_feast_type_instrumentation` makes the decorator the identity, as typeguard itself does
under ``python -O``, for the rest of the process, when Feast is not imported yet. What is lost is
typeguard's run-time check of the argument types of Feast's own methods (a ``TypeCheckError`` for
a call with wrong types); the job builds Feast's objects only from its registry and calls them
with the types they declare. Only the job's command calls it (``cli/xiva.py``), before anything
imports Feast; ``feast apply`` and the tests keep Feast's checks.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["skip_feast_type_instrumentation"]


def _identity(target: Any = None, **_options: Any) -> Any:
    """``@typechecked`` and ``@typechecked(...)`` as typeguard has them under ``python -O``."""
    if target is None:
        return lambda decorated: decorated
    return target


def skip_feast_type_instrumentation() -> bool:
    """Make typeguard's ``@typechecked`` the identity before Feast is imported.

    Returns:
        Whether it took effect (``False``: Feast was already imported, or typeguard is missing).
    """
    if "feast" in sys.modules:
        return False
    try:
        import typeguard
    except ImportError:  # Feast without typeguard: nothing to skip
        return False
    typeguard.typechecked = _identity  # type: ignore[assignment]
    return True
