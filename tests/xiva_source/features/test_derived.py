"""The one derivation of the features that age: days since the last payment, completed years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

from xiva_source.features.derived import (
    AS_OF,
    derivation_clock,
    derivation_now,
    derive_columns,
    derive_frame,
    derive_row,
    facts_from_counts,
    to_dates,
    utc_date,
)


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _at(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


@pytest.mark.parametrize(
    ("born", "as_of", "age"),
    [
        ("2000-06-15", _at(2026, 6, 15), 26),  # birthday today: the year is completed
        ("2000-06-15", _at(2026, 6, 14, 23), 25),  # the day before
        ("2000-02-29", _at(2025, 2, 28, 23), 24),  # leap-day birthday, common year: not yet
        ("2000-02-29", _at(2025, 3, 1), 25),  # ... completed on 1 March
        ("2000-02-29", _at(2028, 2, 29), 28),  # leap year: on the day
        ("2000-02-28", _at(2024, 2, 28), 24),
        ("2026-06-15", _at(2026, 6, 15), 0),  # born today
        ("2026-06-16", _at(2026, 6, 15), None),  # not born yet: no true age
        (None, _at(2026, 6, 15), None),
    ],
)
def test_age_is_completed_years_as_of_the_moment(
    born: str | None, as_of: datetime, age: int | None
) -> None:
    assert derive_row({"birth_date": born}, as_of=as_of)["age"] == age


@pytest.mark.parametrize(
    ("paid", "as_of", "days"),
    [
        ("2026-06-15", _at(2026, 6, 15, 23), 0),  # today, late in the day: still 0
        ("2026-06-14", _at(2026, 6, 15), 1),
        ("2024-02-28", _at(2024, 3, 1), 2),  # across a leap day
        ("2023-02-28", _at(2023, 3, 1), 1),
        ("2026-06-16", _at(2026, 6, 15), None),  # a payment "in the future": no true count
        (None, _at(2026, 6, 15), None),
    ],
)
def test_days_since_last_payment_as_of_the_moment(
    paid: str | None, as_of: datetime, days: int | None
) -> None:
    assert derive_row({"last_payment_date": paid}, as_of=as_of)["last_purchase_days_ago"] == days


def test_facts_of_any_date_like_type_give_the_same_values() -> None:
    as_of = _at(2026, 6, 15, 12)
    forms = [
        "1990-01-20",
        date(1990, 1, 20),
        datetime(1990, 1, 20),  # naive: UTC
        _at(1990, 1, 20),
        datetime(1990, 1, 20, 23, 30, tzinfo=timezone(timedelta(hours=-3))),  # 21 Jan UTC
        pd.Timestamp("1990-01-20", tz="UTC"),
    ]
    ages = [derive_row({"birth_date": f}, as_of=as_of)["age"] for f in forms]
    assert ages == [36] * len(forms)
    later = derive_row({"last_payment_date": forms[4]}, as_of=_at(1990, 1, 22))
    assert later["last_purchase_days_ago"] == 1  # its UTC date is the 21st


def test_a_frame_is_derived_per_row_as_of_its_own_label_time() -> None:
    frame = pd.DataFrame(
        {
            "last_payment_date": pd.to_datetime(
                ["2021-01-01", "2021-01-01", None],  # type: ignore[arg-type]
                utc=True,
            ),
            "birth_date": pd.to_datetime(["2000-01-02", "2000-01-02", "2000-01-02"], utc=True),
            AS_OF: pd.to_datetime(
                ["2021-01-01 10:00", "2021-01-11 00:00", "2026-01-01 00:00"], utc=True
            ),
        },
        index=[7, 8, 9],
    )
    out = derive_frame(frame, as_of=_at(2030, 1, 1))  # the AS_OF column wins over as_of
    assert list(out.index) == [7, 8, 9]
    assert out["last_purchase_days_ago"].tolist() == [0, 10, pd.NA]
    assert out["age"].tolist() == [20, 21, 25]
    assert str(out["age"].dtype) == "Int64"


def test_a_frame_without_the_facts_or_rows_gives_missing_values() -> None:
    out = derive_frame(pd.DataFrame({"city": ["Oslo", None]}), as_of=_at(2026, 1, 1))
    assert out.isna().all().all() and list(out.columns) == ["last_purchase_days_ago", "age"]
    empty = derive_frame(pd.DataFrame({"birth_date": pd.Series([], dtype=object)}))
    assert len(empty) == 0
    # what Feast hands over online: python datetimes and None in an object column
    online = pd.DataFrame(
        {"birth_date": [None, _at(2000, 1, 1)], "last_payment_date": [None, None]}
    )
    assert derive_frame(online, as_of=_at(2026, 1, 1))["age"].tolist() == [pd.NA, 26]


def test_now_is_the_default_moment() -> None:
    today = datetime.now(UTC)
    row = derive_row({"last_payment_date": (today - timedelta(days=3)).date().isoformat()})
    assert row["last_purchase_days_ago"] == 3


def test_counts_as_of_a_timestamp_become_facts_that_age_alike() -> None:
    stamps = pd.Series(
        pd.to_datetime(
            pd.Series(["2024-02-29 10:00", "2025-06-01 00:00", "2025-06-01 00:00", None]), utc=True
        )
    )
    paid = facts_from_counts("last_purchase_days_ago", [3, 0, -2, 5], stamps)
    assert paid.tolist()[:2] == [
        pd.Timestamp("2024-02-26", tz="UTC"),
        pd.Timestamp("2025-06-01", tz="UTC"),
    ]
    assert pd.isna(paid.iloc[2]) and pd.isna(paid.iloc[3])  # negative count, no timestamp
    born = facts_from_counts("age", [40, 20, None, 30], stamps)
    # The latest birth date consistent with the age: 29 Feb of a common year is 28 Feb.
    assert born.tolist()[:2] == [
        pd.Timestamp("1984-02-29", tz="UTC"),
        pd.Timestamp("2005-06-01", tz="UTC"),
    ]
    assert pd.isna(born.iloc[2])
    born_leap = facts_from_counts("age", [41], pd.Series([pd.Timestamp("2024-02-29", tz="UTC")]))
    assert born_leap.tolist() == [pd.Timestamp("1983-02-28", tz="UTC")]
    # Round trip: derived as of the count's own moment, the count comes back; later it has aged.
    frame = pd.DataFrame({"birth_date": born_leap, AS_OF: [pd.Timestamp("2024-02-29", tz="UTC")]})
    assert derive_frame(frame)["age"].tolist() == [41]
    frame[AS_OF] = [pd.Timestamp("2025-02-28", tz="UTC")]
    assert derive_frame(frame)["age"].tolist() == [42]


def test_to_dates_reads_arrow_and_pandas_timestamps() -> None:
    arrow = pa.array([_at(2020, 5, 5, 13), None], type=pa.timestamp("us", tz="UTC"))
    assert to_dates(arrow.to_pandas()).tolist()[0] == pd.Timestamp("2020-05-05", tz="UTC")
    naive = pd.Series(pd.to_datetime(["2020-05-05 13:00"]))
    assert to_dates(naive).tolist() == [pd.Timestamp("2020-05-05", tz="UTC")]
    assert pd.isna(to_dates(["not a date"]).iloc[0])


def _date_like_values() -> list[object]:
    """Facts of every form and edge: leap days, month ends, bounds, zones, text, missing."""
    import random

    rng = random.Random(5)
    days = [date(1900, 1, 1) + timedelta(days=rng.randrange(0, 200 * 365)) for _ in range(300)]
    days += [date(y, m, d) for y in (1996, 2000, 2023, 2024) for m, d in ((2, 28), (2, 29), (3, 1))
             if not (m == 2 and d == 29 and y % 4)]  # fmt: skip
    values: list[object] = []
    for i, day in enumerate(days):
        moment = datetime(day.year, day.month, day.day, (i * 7) % 24, tzinfo=UTC)
        values += [
            day,
            moment,
            moment.replace(tzinfo=None),  # naive: UTC
            moment.astimezone(timezone(timedelta(hours=-5))),  # its UTC date is the day
            pd.Timestamp(moment),
            day.isoformat(),
        ]
    return [*values, None, pd.NaT, float("nan"), "not a date", date(1600, 1, 1), date(2300, 1, 1)]


def test_the_list_form_gives_the_frame_forms_values() -> None:
    """derive_columns (the on-demand view's) and derive_frame (the reader's) agree everywhere."""
    facts = _date_like_values()
    n = len(facts)
    as_of = [_at(2024, 2, 29), _at(2025, 2, 28, 23), _at(2025, 3, 1), _at(2100, 12, 31), None]
    stamps = [as_of[i % len(as_of)] for i in range(n)]
    columns: dict[str, list[object]] = {
        "birth_date": facts,
        "last_payment_date": facts[::-1],
        AS_OF: list(stamps),
    }
    listed = derive_columns(columns)
    framed = derive_frame(pd.DataFrame(columns, dtype=object))
    for name, values in listed.items():
        assert values == [None if pd.isna(v) else int(v) for v in framed[name]], name
    assert sum(v is not None for v in listed["age"]) > n // 2
    # one moment for every row (online): as_of, then the clock
    one = derive_columns({"birth_date": facts}, as_of=_at(2026, 6, 15))
    frame = derive_frame(pd.DataFrame({"birth_date": facts}, dtype=object), as_of=_at(2026, 6, 15))
    assert one["age"] == [None if pd.isna(v) else int(v) for v in frame["age"]]
    assert one["last_purchase_days_ago"] == [None] * n  # no payment date column


def test_utc_date_is_to_dates_for_one_value() -> None:
    for value in _date_like_values():
        stamp = to_dates(pd.Series([value], dtype=object)).iloc[0]
        assert utc_date(value) == (None if pd.isna(stamp) else stamp.date()), value


def test_the_derivation_clock_sets_now_for_every_form() -> None:
    fixed = _at(2031, 3, 1, 10)
    row = {"birth_date": date(2000, 3, 2), "last_payment_date": date(2031, 2, 1)}
    with derivation_clock(lambda: fixed):
        assert derivation_now() == fixed
        assert derive_row(row) == {"last_purchase_days_ago": 28, "age": 30}
        assert derive_columns({k: [v] for k, v in row.items()}) == {
            "last_purchase_days_ago": [28],
            "age": [30],
        }
        frame = derive_frame(pd.DataFrame({k: [v] for k, v in row.items()}, dtype=object))
        assert frame["age"].tolist() == [30]
        with derivation_clock(lambda: datetime(2031, 3, 2)):  # naive: UTC; nested
            assert derive_row(row)["age"] == 31
        assert derive_row(row)["age"] == 30
    assert derivation_now().year == datetime.now(UTC).year  # the real clock again


@pytest.mark.filterwarnings("error")
def test_day_counts_with_gaps_and_impossible_values_warn_nothing() -> None:
    """Missing and out-of-calendar counts are missing facts, converted without numpy warnings
    (the source of the ``overflow encountered in multiply`` beside ``--full``'s summary line)."""
    stamps = pd.Series([pd.Timestamp("2026-01-10 08:00", tz="UTC")] * 5)
    paid = facts_from_counts("last_purchase_days_ago", [None, 2.0, float("nan"), 1e15, "x"], stamps)
    assert paid.iloc[1] == pd.Timestamp("2026-01-08", tz="UTC")
    assert paid.drop(index=1).isna().all()
