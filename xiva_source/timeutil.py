"""UTC time helpers: the one place timestamps are normalized, parsed and printed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Clock", "as_utc", "human_duration", "parse_iso", "to_iso", "utc_now"]

Clock = Callable[[], datetime]
"""A source of the current time (UTC, aware); injected so tests control time."""


def utc_now() -> datetime:
    """The current time, UTC, timezone-aware (the default :data:`Clock`)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, e.g. ``2026-10-14T08:00:00Z``."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def parse_iso(value: Any) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` or an offset; naive means UTC) into aware UTC.

    Raises:
        ValueError: ``value`` is not a string holding an ISO 8601 timestamp.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))


def human_duration(duration: timedelta | float) -> str:
    """A duration as people write it: ``1s``, ``30m``, ``2h``, ``1h 30m``, ``3d 4h``.

    The two largest units, smaller ones dropped (``90061`` s is ``1d 1h``); under a second,
    ``0s``. The form ``--max-age`` accepts, unit by unit.

    Args:
        duration: A ``timedelta`` or seconds.
    """
    seconds = int(duration.total_seconds() if isinstance(duration, timedelta) else duration)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"
