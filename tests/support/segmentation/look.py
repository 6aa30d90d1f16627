"""Plain-Python references for the "look before sending" tests: the seg_repo's rows as written,
with the stale customers' ``customer_features`` values missing (older than the view's ttl)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tests.support.segmentation.repo import FeastRepo

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


def rows(repo: FeastRepo) -> dict[str, Row]:
    """Customer id -> feature values as the engine should read them (missing: None)."""
    out: dict[str, Row] = {}
    for cid, record in repo.frame.iterrows():
        row: Row = {}
        for name, value in record.items():
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            missing = missing or str(value) == "<NA>"
            row[str(name)] = None if missing or cid in repo.stale_ids else value
        out[str(cid)] = row
    return out


def greater(feature: str, bound: float) -> Predicate:
    return lambda r: r[feature] is not None and r[feature] > bound


def less(feature: str, bound: float) -> Predicate:
    return lambda r: r[feature] is not None and r[feature] < bound


def equals(feature: str, value: Any) -> Predicate:
    return lambda r: r[feature] is not None and r[feature] == value


def members(table: dict[str, Row], *predicates: Predicate) -> set[str]:
    """The ids for which every predicate holds."""
    return {cid for cid, row in table.items() if all(p(row) for p in predicates)}
