"""Features that age (``last_purchase_days_ago``, ``age``), derived from stored facts as of a read.

The store keeps facts that stay true until the customer changes (``last_payment_date``,
``birth_date``: dates, held as 00:00 UTC); a day count or an age is true only at one moment, so it
is computed when it is read, as of the moment the read describes:

- online (stock ``get_online_features``, ``feast serve``, the segmentation reader, the live
  refresh's output): now;
- in a training set (``get_historical_features``): each label's own timestamp, which the offline
  store hands over in the :data:`AS_OF` column.

:func:`derive_frame` is THE derivation; every reader calls it (the on-demand feature view
``customer_time_features`` of ``feature_repo/features.py``,
:class:`segmentation.reader.OnlineReader`, :func:`xiva_source.jobs.refresh.refresh_customer`),
so they cannot disagree. The rules:

- ``last_purchase_days_ago``: whole days from the payment date to the as-of date (UTC dates);
- ``age``: completed years from the birth date to the as-of date; someone born on 29 February
  completes a year on 1 March in common years (28 February is still the day before);
- a missing fact gives a missing feature; a fact after the as-of date (a payment "in the
  future", someone not born yet) gives a missing feature too: a wrong value is worse than none.

:func:`facts_from_counts` is the inverse, for sources that store counts as of a row's timestamp
(the DWH's ``last_purchase_days_ago`` and ``age`` as of ``updated_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd

from xiva_source.features.catalogue import DERIVED_FEATURES, DerivedFeature
from xiva_source.timeutil import as_utc, utc_now

__all__ = ["AS_OF", "derive_frame", "derive_row", "facts_from_counts", "to_dates"]

AS_OF = "__as_of"
"""Column of a retrieval table holding each row's as-of moment (the label's timestamp).

The project's offline store adds it to ``get_historical_features`` results before Feast runs the
on-demand views, and drops it afterwards; a frame without it is derived as of now."""


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
    moment = utc_now() if as_of is None else as_utc(as_of)
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
            datetime is taken as UTC).

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


def derive_row(row: Mapping[str, Any], as_of: datetime | None = None) -> dict[str, int | None]:
    """:func:`derive_frame` for one row (a live refresh, a single customer's features).

    Args:
        row: The facts (``last_payment_date``, ``birth_date``: ``datetime``, ``date`` or ISO text).
        as_of: The moment described (default: now, UTC).

    Returns:
        ``{"last_purchase_days_ago": int | None, "age": int | None}``.
    """
    facts = {f.fact: [row.get(f.fact)] for f in DERIVED_FEATURES.values()}
    frame = pd.DataFrame(facts, dtype=object)
    derived = derive_frame(frame, as_of=as_of).iloc[0]
    return {str(name): (None if pd.isna(v) else int(v)) for name, v in derived.items()}


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
        return (days - pd.to_timedelta(number, unit="D")).astype("datetime64[ns, UTC]")
    year = days.dt.year - number
    month, day = days.dt.month, days.dt.day
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day = day.where(~((month == 2) & (day == 29) & ~leap), 28)
    parts = pd.DataFrame({"year": year, "month": month, "day": day})
    return pd.to_datetime(parts, errors="coerce", utc=True).astype("datetime64[ns, UTC]")
