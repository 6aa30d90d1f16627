"""The Xiva client's one logger, with a filter that masks secrets in every record it emits.

Every module of :mod:`xiva_source.xiva_api` logs here (``xiva_source.xiva_api.client``, the name
operators filter on), so the redacting filter covers auth, paging, rate and usage messages alike.
"""

from __future__ import annotations

import logging

from xiva_source.redaction import redact

__all__ = ["LOGGER_NAME", "logger"]

LOGGER_NAME = "xiva_source.xiva_api.client"
"""The logger every module of the client writes to."""


class _RedactingFilter(logging.Filter):
    """Last line of defence: mask anything token- or password-like in this logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logger = logging.getLogger(LOGGER_NAME)
if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
    logger.addFilter(_RedactingFilter())
