"""Features that age (``last_purchase_days_ago``, ``age``), derived from stored facts as of a read.

The store keeps facts that stay true until the customer changes (``last_payment_date``,
``birth_date``: dates, held as 00:00 UTC); a day count or an age is true only at one moment, so it
is computed when it is read, as of the moment the read describes:

- online (stock ``get_online_features``, ``feast serve``, the segmentation reader, the live
  refresh's output): now (the derivation's clock, :func:`derivation_clock`);
- in a training set (``get_historical_features``): each label's own timestamp, which the offline
  store hands over in the :data:`AS_OF` column.

This module is THE derivation; every reader calls it (the on-demand feature view
``customer_time_features`` of ``feature_repo/features.py``,
:class:`segmentation.reader.OnlineReader`, :func:`xiva_source.jobs.refresh.refresh_customer`),
so they cannot disagree. It has two forms of the same rules, tested against each other value for
value (``tests/xiva_source/features/test_derived.py``):

- :func:`derive_frame`, vectorized (pandas), for many rows: the segmentation reader's chunks;
- :func:`derive_columns` / :func:`derive_row`, plain Python on lists, for a few rows at a time:
  the on-demand view (Feast's ``mode="python"``: an online read of one customer costs
  microseconds, where building DataFrames cost milliseconds; docs/feature-repo.md, "Serving").

The rules:

- ``last_purchase_days_ago``: whole days from the payment date to the as-of date (UTC dates);
- ``age``: completed years from the birth date to the as-of date; someone born on 29 February
  completes a year on 1 March in common years (28 February is still the day before);
- a missing fact gives a missing feature; a fact after the as-of date (a payment "in the
  future", someone not born yet) gives a missing feature too: a wrong value is worse than none.

:func:`facts_from_counts` is the inverse, for sources that store counts as of a row's timestamp
(the DWH's ``last_purchase_days_ago`` and ``age`` as of ``updated_at``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from xiva_source.features.catalogue import DERIVED_FEATURES, DerivedFeature
from xiva_source.timeutil import Clock, as_utc, utc_now

__all__ = [
    "AS_OF",
    "derivation_clock",
    "derivation_now",
    "derive_columns",
    "derive_frame",
    "derive_row",
    "facts_from_counts",
    "to_dates",
    "utc_date",
]

AS_OF = "__as_of"
"""Column of a retrieval table holding each row's as-of moment (the label's timestamp).

The project's offline store adds it to ``get_historical_features`` results before Feast runs the
on-demand views, and drops it afterwards; a frame without it is derived as of now."""


_clock: Clock = utc_now


def derivation_now() -> datetime:
    """The moment an online read derives as of: the derivation's clock (default: now, UTC)."""
    return as_utc(_clock())


@contextmanager
def derivation_clock(clock: Clock) -> Iterator[None]:
    """Derive "now" from ``clock`` inside the block, in every thread of the process.

    Feast runs the on-demand view with no parameter but the features read, so the moment it
    derives as of can only come from here: a test (or ``feast serve`` started by a launcher that
    enters this block first) fixes the day the ages are computed for.

    Args:
        clock: Returns the current moment (aware; a naive one is taken as UTC).
    """
    global _clock
    previous, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = previous


def to_dates(values: Any) -> pd.Series:
    """Anything date-like (``datetime``, ``date``, ISO text, pandas/Arrow timestamps, ``None``) as
    UTC midnights (``datetime64[ns, UTC]``, ``NaT`` when missing or unreadable).

    A naive value is taken as UTC; an aware one is converted to UTC before its date is taken.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        stamps = series.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        stamps = series.dt.tz_localize("UTC")
    else:
        stamps = pd.to_datetime(
            series.astype(object).map(_plain), utc=True, errors="coerce", format="mixed"
        )
    return stamps.dt.normalize().astype("datetime64[ns, UTC]")


def _plain(value: Any) -> Any:
    # pandas cannot mix aware and naive datetimes in one conversion: make every one aware (UTC).
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    return value


def _as_of_dates(frame: pd.DataFrame, as_of: datetime | None) -> pd.Series:
    if AS_OF in frame.columns:
        return to_dates(frame[AS_OF]).set_axis(frame.index)
    moment = derivation_now() if as_of is None else as_utc(as_of)
    day = pd.Timestamp(moment).normalize()
    return pd.Series(day, index=frame.index, dtype="datetime64[ns, UTC]")


def _derive(feature: DerivedFeature, fact: pd.Series, as_of: pd.Series) -> pd.Series:
    if feature.unit == "days":
        value = (as_of - fact).dt.days.astype("float64")
    else:
        birthday_ahead = (as_of.dt.month * 100 + as_of.dt.day) < (fact.dt.month * 100 + fact.dt.day)
        value = (as_of.dt.year - fact.dt.year).astype("float64") - birthday_ahead
    # A fact after the as-of date (missing dates included) has no true value then.
    return value.where(fact <= as_of).astype("Int64").rename(feature.name)


def derive_frame(frame: pd.DataFrame, as_of: datetime | None = None) -> pd.DataFrame:
    """The derived features of every row of ``frame``, as of each row's moment.

    Args:
        frame: Rows holding the facts (``last_payment_date``, ``birth_date``; a fact column that
            is absent gives missing values) and, for training sets, the :data:`AS_OF` column.
        as_of: The moment when ``frame`` has no :data:`AS_OF` column (default: now, UTC; a naive
            datetime is taken as UTC; :func:`derivation_now`).

    Returns:
        One nullable ``Int64`` column per derived feature (``last_purchase_days_ago``, ``age``),
        ``frame``'s index.
    """
    as_of_dates = _as_of_dates(frame, as_of)
    out = {}
    for feature in DERIVED_FEATURES.values():
        if feature.fact in frame.columns:
            fact = to_dates(frame[feature.fact]).set_axis(frame.index)
            out[feature.name] = _derive(feature, fact, as_of_dates)
        else:
            out[feature.name] = pd.Series(pd.array([pd.NA] * len(frame), dtype="Int64"))
            out[feature.name].index = frame.index
    return pd.DataFrame(out, index=frame.index)


# The scalar form of to_dates' range: pandas holds nanosecond timestamps, so a date it cannot hold
# is missing in derive_frame and must be missing here too.
_FIRST_DAY = pd.Timestamp.min.ceil("D").date()
_LAST_DAY = pd.Timestamp.max.floor("D").date()


def utc_date(value: Any) -> date | None:
    """The UTC date of one date-like value: :func:`to_dates` for a scalar (None when missing).

    ``datetime`` (naive = UTC; ``pd.Timestamp`` too) and ``date`` take the fast path; anything
    else (ISO text, ``numpy.datetime64``, NaN) goes through :func:`to_dates` itself.
    """
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        # The UTC date; an offset subtracted is cheaper than astimezone (pytz's UTC included).
        offset = None if value.tzinfo is None or value.tzinfo is UTC else value.utcoffset()
        day = (value - offset if offset else value).date()
    elif isinstance(value, date):
        day = value
    else:
        stamp = to_dates(pd.Series([value], dtype=object)).iloc[0]
        return None if pd.isna(stamp) else stamp.date()
    return day if _FIRST_DAY <= day <= _LAST_DAY else None


def _days(fact: date | None, as_of: date | None) -> int | None:
    if fact is None or as_of is None or fact > as_of:
        return None
    return (as_of - fact).days


def _years(fact: date | None, as_of: date | None) -> int | None:
    if fact is None or as_of is None or fact > as_of:
        return None
    return as_of.year - fact.year - ((as_of.month, as_of.day) < (fact.month, fact.day))


_RULES: Mapping[str, Callable[[date | None, date | None], int | None]] = {
    "days": _days,
    "years": _years,
}


def derive_columns(
    columns: Mapping[str, Sequence[Any]], as_of: datetime | None = None
) -> dict[str, list[int | None]]:
    """:func:`derive_frame` for columns held as Python lists: the on-demand view's form.

    What Feast's ``mode="python"`` on-demand views receive: online, the features read, one list
    per feature (``datetime`` or None per customer); in a training set, the retrieval table's
    columns, :data:`AS_OF` among them.

    Args:
        columns: Equal-length columns holding the facts (``last_payment_date``, ``birth_date``;
            an absent fact gives missing values) and optionally :data:`AS_OF`; other columns
            are ignored.
        as_of: The moment when ``columns`` has no :data:`AS_OF` (default:
            :func:`derivation_now`; a naive datetime is taken as UTC).

    Returns:
        One list per derived feature (``last_purchase_days_ago``, ``age``): ``int`` or None.
    """
    rows = len(next(iter(columns.values()), ()))
    stamps = columns.get(AS_OF)
    days: Sequence[date | None]
    if stamps is not None:
        days = [utc_date(v) for v in stamps]
    else:
        days = [as_utc(derivation_now() if as_of is None else as_of).date()] * rows
    out: dict[str, list[int | None]] = {}
    for feature in DERIVED_FEATURES.values():
        facts = columns.get(feature.fact)
        if facts is None:
            out[feature.name] = [None] * rows
            continue
        rule = _RULES[feature.unit]
        out[feature.name] = [rule(utc_date(f), d) for f, d in zip(facts, days, strict=True)]
    return out


def derive_row(row: Mapping[str, Any], as_of: datetime | None = None) -> dict[str, int | None]:
    """:func:`derive_columns` for one row (a live refresh, a single customer's features).

    Args:
        row: The facts (``last_payment_date``, ``birth_date``: ``datetime``, ``date`` or ISO text).
        as_of: The moment described (default: :func:`derivation_now`).

    Returns:
        ``{"last_purchase_days_ago": int | None, "age": int | None}``.
    """
    facts = {f.fact: [row.get(f.fact)] for f in DERIVED_FEATURES.values()}
    return {name: values[0] for name, values in derive_columns(facts, as_of=as_of).items()}


_MAX_DAYS = 100_000
"""The largest day count placed on the calendar (about 274 years)."""


def facts_from_counts(feature: str, counts: Any, stamps: Any) -> pd.Series:
    """The fact behind counts that were true at ``stamps`` (the inverse of the derivation).

    - ``last_purchase_days_ago`` N at T: the payment date is T's date minus N days.
    - ``age`` A at T: the LATEST birth date consistent with it, T's date minus A years (29
      February becomes 28 February in a common year), so the age derived later never exceeds the
      true one and lags it by less than a year.

    A negative count, or one that cannot be placed on the calendar, gives a missing fact.

    Args:
        feature: A derived feature's name (``last_purchase_days_ago`` or ``age``).
        counts: The counts (anything pandas reads as numbers; ``None``/NaN missing).
        stamps: The moment each count was true (e.g. the DWH's ``updated_at``).

    Returns:
        The facts as UTC midnights (``datetime64[ns, UTC]``, ``NaT`` when missing).

    Raises:
        KeyError: ``feature`` is not a derived feature.
    """
    spec = DERIVED_FEATURES[feature]
    days = to_dates(stamps)
    number = pd.to_numeric(pd.Series(counts, dtype=object), errors="coerce").set_axis(days.index)
    number = number.where(number >= 0)
    if spec.unit == "days":
        # Whole days, as integers, and only where there is one: pandas converts a float series
        # by rounding its fractions, whose numpy multiply warned "overflow encountered in
        # multiply" now and then on chunks with missing counts (the job's --full, the Feast
        # path). A count past the calendar's range (pandas' dates end in 2262) is no fact.
        number = number.where(number <= _MAX_DAYS).round()
        known = number.notna()
        delta = pd.Series(pd.NaT, index=days.index, dtype="timedelta64[ns]")
        delta[known] = pd.to_timedelta(number[known].astype("int64"), unit="D")
        return (days - delta).astype("datetime64[ns, UTC]")
    year = days.dt.year - number
    month, day = days.dt.month, days.dt.day
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day = day.where(~((month == 2) & (day == 29) & ~leap), 28)
    parts = pd.DataFrame({"year": year, "month": month, "day": day})
    return pd.to_datetime(parts, errors="coerce", utc=True).astype("datetime64[ns, UTC]")
