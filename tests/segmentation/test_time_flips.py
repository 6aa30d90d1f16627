"""Time flips: the date windows never miss a customer whose comparison changes as time passes
(brute force over dates), and rules that cannot be analysed say why."""

from __future__ import annotations

import datetime as dt
import operator
import random

import pytest

from segmentation import Segment
from segmentation.time_flips import analyse, fact_windows, fresh_floors, goes_stale
from xiva_source.features.derived import derive_row

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}  # fmt: skip
_EPOCH = dt.date(1970, 1, 1)


def _in(windows: list[tuple[int, int]], day: dt.date) -> bool:
    n = (day - _EPOCH).days
    return any(lo <= n <= hi for lo, hi in windows)


@pytest.mark.parametrize(
    ("feature", "fact"), [("age", "birth_date"), ("last_purchase_days_ago", "last_payment_date")]
)
def test_windows_hold_every_flip(feature: str, fact: str) -> None:
    rng = random.Random(17)
    for _ in range(40):
        op = rng.choice(list(_OPS))
        t = (
            rng.choice([0, 1, 18, 30, 65, 90, 29.5, 365])
            if feature == "age"
            else rng.randint(0, 400)
        )
        seg = Segment("s", [{op: [{"var": feature}, t]}])
        analysis = analyse([seg])
        assert analysis.reason is None and analysis.thresholds == {feature: {float(t)}}
        d0 = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 800))
        d1 = d0 + dt.timedelta(days=rng.choice([1, 2, 7, 40, 400]))
        windows = fact_windows(analysis, d0, d1)[fact]
        start = d0 - dt.timedelta(days=366 * (int(t) + 3) if feature == "age" else int(t) + 10)
        for offset in range(0, (d1 - start).days + 30, 1 if feature != "age" else 3):
            f = start + dt.timedelta(days=offset)
            as_of = [dt.datetime.combine(d, dt.time(), dt.UTC) for d in (d0, d1)]
            values = [derive_row({fact: f}, as_of=m)[feature] for m in as_of]
            results = [v is not None and _OPS[op](v, t) for v in values]
            if results[0] != results[1]:
                assert _in(windows, f), (op, t, d0, d1, f, values)


def test_leap_day_birthdays_are_in_the_window() -> None:
    seg = Segment("s", [{">=": [{"var": "age"}, 18]}])
    d0, d1 = dt.date(2025, 2, 27), dt.date(2025, 3, 2)
    windows = fact_windows(analyse([seg]), d0, d1)["birth_date"]
    assert _in(windows, dt.date(2007, 2, 28)) and _in(windows, dt.date(2007, 3, 1))


def test_same_day_has_no_window() -> None:
    seg = Segment("s", [{">=": [{"var": "age"}, 18]}])
    assert fact_windows(analyse([seg]), dt.date(2025, 1, 1), dt.date(2025, 1, 1)) == {}


@pytest.mark.parametrize(
    "rule",
    [
        {">": [{"+": [{"var": "age"}, 1]}, 30]},
        {">": [{"var": ["age", 0]}, 30]},
        {">": [{"var": "age"}, {"var": "total_revenue"}]},
        {"in": [{"var": "age"}, ["a", 3]]},
    ],
)
def test_rules_that_cannot_be_analysed_say_why(rule: dict) -> None:
    analysis = analyse([Segment("odd", [rule])])
    assert analysis.reason is not None and "odd" in analysis.reason and "age" in analysis.reason


def test_rules_without_ageing_features_have_nothing_to_age() -> None:
    analysis = analyse([Segment("s", [{">": [{"var": "total_revenue"}, 3]}])])
    assert analysis.reason is None and not analysis.used
    assert fact_windows(analysis, dt.date(2025, 1, 1), dt.date(2026, 1, 1)) == {}


def test_existence_and_in_lists_are_analysed() -> None:
    analysis = analyse([Segment("s", [{"!!": [{"var": "age"}]}, {"in": [{"var": "age"}, [20, 30]]},
                                      {"missing": ["last_purchase_days_ago"]}])])  # fmt: skip
    assert analysis.reason is None and analysis.used == {"age", "last_purchase_days_ago"}
    assert analysis.thresholds == {"age": {20.0, 30.0}}


def test_staleness_floor() -> None:
    import pandas as pd

    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    day = 86400.0
    frame = pd.DataFrame({"st": [now.timestamp() - 5 * day, now.timestamp() - day, float("nan")]})
    floors = fresh_floors(frame, {"v": "st"}, now, {"v": 2 * day})
    assert floors == {"v": now.timestamp() - day}  # the stale value is not a floor
    assert not goes_stale(floors["v"], 2 * day, now + dt.timedelta(hours=23))
    assert goes_stale(floors["v"], 2 * day, now + dt.timedelta(days=1, hours=1))
    assert not goes_stale(floors["v"], None, now + dt.timedelta(days=100))
