"""Reference derivations of the ageing features, written independently of the product's
(``xiva_source/features/derived.py``), for tests to compare against."""

from __future__ import annotations

from datetime import date

__all__ = ["days_since", "years_between"]


def years_between(born: date | None, on: date) -> int | None:
    """Whole years from ``born`` to ``on`` (an age); ``None`` when unknown or in the future."""
    if born is None or born > on:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def days_since(paid: date | None, on: date) -> int | None:
    """Days from ``paid`` to ``on``; ``None`` when unknown or in the future."""
    return None if paid is None or paid > on else (on - paid).days
