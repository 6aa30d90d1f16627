"""The one place a third-party exception becomes the project error of its failure domain.

Redis failures are the online store's (:class:`OnlineStoreError`), SQLAlchemy's are the
warehouse's (:class:`~xiva_source.dwh.errors.DwhError`), Feast's "not found" is the repository's
(:class:`RepositoryError`). Both the jobs (for their summary line) and the command line's error
boundary ask here, so a failure reads the same wherever it surfaces.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from xiva_source.errors import LoyaltyError
from xiva_source.feast_plugin.errors import REFUSED_FIX, OnlineStoreError, RepositoryError
from xiva_source.redaction import redact
from xiva_source.redis_client import cluster_hint, describe_redis_error, tls_hint

__all__ = ["exception_chain", "project_error_for"]


def project_error_for(error: BaseException) -> LoyaltyError | None:
    """The project's error for ``error``: itself or a cause that is one, else a translation.

    The exception's chain (``__cause__`` / ``__context__``) is searched, so a library that wraps a
    ``redis.ConnectionError`` in its own exception is still recognised.

    Args:
        error: Any exception.

    Returns:
        A :class:`~xiva_source.errors.LoyaltyError` carrying ``problem`` and ``fix`` (secrets
        masked), or ``None`` when neither ``error`` nor its causes belong to a known domain.
    """
    chain = list(exception_chain(error))
    for item in chain:
        if isinstance(item, LoyaltyError):
            return item
    for item in chain:
        translated = _translate(item)
        if translated is not None:
            return translated
    return None


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its ``__cause__`` / ``__context__``, each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _translate(error: BaseException) -> LoyaltyError | None:
    # Only a library already imported can have raised: nothing is imported just to check.
    text = _one_line(redact(str(error)))
    redis_exc = sys.modules.get("redis.exceptions")
    if redis_exc is not None and isinstance(
        error, redis_exc.RedisError | redis_exc.RedisClusterException
    ):
        # A plain client against a cluster node (MOVED, CLUSTERDOWN) or the reverse: the fix is
        # REDIS_TYPE, not "is Redis running?".
        tls = tls_hint(error)
        if tls is not None:  # a TLS failure: CA, client certificate, redis:// at a TLS port
            return OnlineStoreError(f"the online store (Redis) failed: {tls[0]}", tls[1])
        hint = cluster_hint(error)
        if hint is not None:
            return OnlineStoreError(
                "the online store (Redis) answered as another kind of deployment than "
                f"REDIS_TYPE says: {_one_line(describe_redis_error(error))}",
                hint,
            )
        refused = isinstance(error, redis_exc.ResponseError)
        return OnlineStoreError.failed(text, fix=REFUSED_FIX if refused else None)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(error, sa_exc.SQLAlchemyError | sa_exc.ArgumentError):
        from xiva_source.dwh.errors import DwhError

        return DwhError(f"the warehouse failed: {text}")
    feast_errors = sys.modules.get("feast.errors")
    if feast_errors is not None and isinstance(error, feast_errors.FeastObjectNotFoundException):
        return RepositoryError(f"the Feast registry does not know it: {text}")
    return None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if len(lines[0]) <= 400 else lines[0][:397] + "..."
