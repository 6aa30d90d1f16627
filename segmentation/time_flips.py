"""Customers whose membership may flip only because time passed since the last refresh.

Two things change a customer's evaluation without any write:

* **Ageing features** (``age``, ``last_purchase_days_ago``: derived from the stored dates
  ``birth_date``, ``last_payment_date`` as of the refresh's ``now``,
  :mod:`xiva_source.features.derived`). A rule compares such a feature with constants
  (``{">": [{"var": "last_purchase_days_ago"}, 90]}``): the comparison can change only when the
  value crosses a threshold ``t``, i.e. reaches ``k`` for ``k`` near ``t`` (``floor(t)``,
  ``floor(t) + 1``, ``ceil(t)``, ``ceil(t) + 1``: every operator's step is there). A value of
  ``d - f`` days (or completed years) reaches ``k`` between the last refresh's date ``d0`` and
  this one's ``d1`` exactly when the stored date ``f`` lies in ``(d0 - k, d1 - k]`` (years: ``k``
  years back, the 29 February rule within a day). A date that was in the future (a missing value)
  appears when ``f`` is in ``(d0, d1]``. Each window is widened by a day or two on each side:
  re-evaluating a few extra customers is safe, missing one is not. The customers are found in a
  sorted set per date ``<p>:time:<fact>`` (``customer -> days since 1970-01-01``), which every
  refresh updates for the customers it reads (the whole population in full; the changes
  otherwise) and which the writers keep current through the journal (a changed date is a change).
* **Staleness** (a value older than its view's ``ttl`` reads as missing): between ``now0`` and
  ``now1`` a value goes stale when its event timestamp is in ``[now0 - ttl, now1 - ttl)``, so it
  was fresh at ``now0``. A refresh records each view's oldest fresh timestamp (its *floor*); when
  ``now1 - ttl`` is still at or below the floor nothing can have gone stale. Otherwise the segments
  reading that view are refreshed in full (said in the result), which records a new floor.

A rule that uses an ageing feature in any other way (arithmetic on it, a ``var`` with a default,
a comparison with something that is not a number) cannot be analysed: its segment falls back to a
full evaluation, logged, with the reason in the refresh result. So do a clock that went backwards
and a segment never refreshed incrementally.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xiva_source.features.catalogue import DERIVED_FEATURES
from xiva_source.features.derived import to_dates

if TYPE_CHECKING:
    from segmentation.segment import Segment

__all__ = [
    "RuleAnalysis",
    "TimeIndex",
    "analyse",
    "fact_windows",
    "fresh_floors",
    "goes_stale",
]

_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "===", "!=", "!=="})
_EXISTENCE = frozenset({"!", "!!"})
_EPOCH = _dt.date(1970, 1, 1).toordinal()
_SLACK_DAYS = 2


@dataclass(frozen=True)
class RuleAnalysis:
    """What time can do to some segments' rules.

    Attributes:
        thresholds: Per ageing feature used, the constants it is compared with.
        used: The ageing features the rules read (with or without a threshold).
        reason: Why the rules cannot be analysed (``None``: they can).
    """

    thresholds: dict[str, set[float]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    reason: str | None = None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ageing_var(node: Any) -> str | None:
    """The ageing feature a ``{"var": name}`` node reads (``None``: not such a node)."""
    if isinstance(node, dict) and len(node) == 1 and "var" in node:
        arg = node["var"]
        name = arg[0] if isinstance(arg, list) and arg else arg
        if isinstance(name, str) and name in DERIVED_FEATURES:
            return name
    return None


def analyse(segments: Iterable[Segment]) -> RuleAnalysis:
    """The ageing features the segments' rules compare, with their thresholds.

    Args:
        segments: The segments (with every segment they reference: their rules count too).

    Returns:
        The analysis; its ``reason`` says why it failed, naming the segment.
    """
    out = RuleAnalysis()
    for seg in segments:
        for named in seg.rules:
            reason = _walk(named.rule, out)
            if reason is not None:
                return RuleAnalysis(reason=f"segment {seg.name!r}: {reason}")
    return out


def _walk(rule: Any, out: RuleAnalysis) -> str | None:
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict) or len(node) != 1:
            continue
        ((op, raw),) = node.items()
        args = raw if isinstance(raw, list) else [raw]
        if op == "var":
            name = _ageing_var(node)
            if name is not None:
                return f"{name!r} is read other than compared with a number ({node!r})"
            stack.extend(args)
            continue
        if op in ("missing", "missing_some"):
            names = args[1] if op == "missing_some" and len(args) > 1 else args
            for name in names if isinstance(names, list) else [names]:
                if isinstance(name, str) and name in DERIVED_FEATURES:
                    out.used.add(name)
            continue
        rest: list[Any] = []
        for i, arg in enumerate(args):
            name = _ageing_var(arg)
            if name is None:
                rest.append(arg)
                continue
            if isinstance(arg["var"], list) and len(arg["var"]) > 1:
                return f"{name!r} has a default value ({arg!r})"
            others = [a for j, a in enumerate(args) if j != i]
            if op in _COMPARISONS and others and all(_number(a) for a in others):
                out.thresholds.setdefault(name, set()).update(float(a) for a in others)
            elif op == "in" and i == 0 and len(args) == 2 and isinstance(args[1], list):
                if not all(_number(a) for a in args[1]):
                    return f"{name!r} is looked up in a list that is not only numbers"
                out.thresholds.setdefault(name, set()).update(float(a) for a in args[1])
            elif op not in _EXISTENCE:
                return f"{name!r} is used by {op!r} other than compared with a number"
            out.used.add(name)
        if op == "in" and _ageing_var(args[0] if args else None) is not None:
            continue  # the list of constants holds no var
        stack.extend(rest)
    return None


def _steps(thresholds: Iterable[float]) -> set[int]:
    """The values whose reaching may change a comparison with these thresholds."""
    out: set[int] = set()
    for t in thresholds:
        low, high = math.floor(t), math.ceil(t)
        out.update({low, low + 1, high, high + 1})
    return out


def _years_back(day: _dt.date, years: int) -> _dt.date | None:
    """``day`` ``years`` years earlier (29 February -> 28 February); None before year 1."""
    year = day.year - years
    if not 1 <= year <= 9999:
        return None
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return day.replace(year=year, day=28)


def fact_windows(
    analysis: RuleAnalysis, d0: _dt.date, d1: _dt.date
) -> dict[str, list[tuple[int, int]]]:
    """Per stored date, the windows (days since 1970-01-01, inclusive) holding every customer
    whose ageing feature may cross a threshold between the dates ``d0`` and ``d1``.

    Empty when ``d0 == d1`` (the derivation is by date: nothing ages within a day).
    """
    out: dict[str, list[tuple[int, int]]] = {}
    if d1 <= d0:
        return out
    for name in sorted(analysis.used | set(analysis.thresholds)):
        feature = DERIVED_FEATURES[name]
        # A date in the future (no value yet) that is reached.
        windows = [(d0.toordinal() - _SLACK_DAYS, d1.toordinal() + _SLACK_DAYS)]
        for k in sorted(_steps(analysis.thresholds.get(name, ()))):
            if feature.unit == "days":
                windows.append((d0.toordinal() - k - _SLACK_DAYS, d1.toordinal() - k + _SLACK_DAYS))
                continue
            lo, hi = _years_back(d0, k), _years_back(d1, k)
            if lo is not None and hi is not None:
                windows.append((lo.toordinal() - _SLACK_DAYS, hi.toordinal() + _SLACK_DAYS))
        out.setdefault(feature.fact, []).extend((lo - _EPOCH, hi - _EPOCH) for lo, hi in windows)
    return out


def fresh_floors(
    frame: pd.DataFrame,
    stamp_columns: Mapping[str, str],
    now: _dt.datetime,
    limits: Mapping[str, float | None],
) -> dict[str, float]:
    """Per view with a staleness limit, the oldest event timestamp still fresh at ``now``.

    Args:
        frame: A chunk read with ``times=True``.
        stamp_columns: View -> its stamp column in ``frame``.
        now: The refresh's moment.
        limits: View -> staleness limit in seconds (``None``: never stale).
    """
    out: dict[str, float] = {}
    now_s = now.timestamp()
    for view, column in stamp_columns.items():
        limit = limits.get(view)
        if limit is None or column not in frame.columns:
            continue
        stamps = frame[column].to_numpy(dtype="float64")
        fresh = stamps[~np.isnan(stamps) & (stamps >= now_s - limit)]
        if fresh.size:
            out[view] = float(fresh.min())
    return out


def goes_stale(floor: float | None, limit: float | None, now1: _dt.datetime) -> bool:
    """Whether a value fresh at the last refresh (oldest: ``floor``) may be stale at ``now1``."""
    return limit is not None and floor is not None and floor < now1.timestamp() - limit


class TimeIndex:
    """The sorted sets of the stored dates (``<p>:time:<fact>``): customer -> epoch days.

    Args:
        client: The Redis client.
        prefix: The memberships' key prefix.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, fact: str) -> str:
        """The sorted set of one stored date."""
        return f"{self.prefix}:time:{fact}"

    def update(self, facts: Mapping[str, Any], ids: Sequence[str], chunk: int = 10_000) -> None:
        """Record the dates of ``ids`` (fact -> values aligned with ``ids``); a missing date is
        removed (nothing to age)."""
        if not ids:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for fact, values in facts.items():
                dates = to_dates(pd.Series(np.asarray(values, dtype=object)))
                days = dates.to_numpy(dtype="datetime64[D]")
                known = ~np.isnat(days)
                day_numbers = days.astype("int64")
                key = self.key(fact)
                pairs: dict[str, int] = {}
                gone: list[str] = []
                for cid, ok, day in zip(ids, known, day_numbers, strict=True):
                    if ok:
                        pairs[cid] = int(day)
                    else:
                        gone.append(cid)
                items = list(pairs.items())
                for start in range(0, len(items), chunk):
                    pipe.zadd(key, dict(items[start : start + chunk]))
                for start in range(0, len(gone), chunk):
                    pipe.zrem(key, *gone[start : start + chunk])
            pipe.execute()

    def find(self, windows: Mapping[str, Sequence[tuple[int, int]]]) -> set[str]:
        """The customers whose date is in any window (inclusive bounds, epoch days)."""
        found: set[str] = set()
        with self.client.pipeline(transaction=False) as pipe:
            for fact, spans in windows.items():
                for lo, hi in spans:
                    pipe.zrangebyscore(self.key(fact), lo, hi)
            for ids in pipe.execute():
                found.update(c.decode() if isinstance(c, bytes) else c for c in ids)
        return found

    def facts(self) -> list[str]:
        """The stored dates the rules may age (the keys :meth:`update` writes)."""
        return sorted({f.fact for f in DERIVED_FEATURES.values()})
