"""``human_duration``: durations in messages as people write them, never ``0:00:01``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from xiva_source.timeutil import human_duration


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(seconds=1), "1s"),
        (0.4, "0s"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=2), "2h"),
        (timedelta(minutes=90), "1h 30m"),
        (timedelta(days=3, hours=4, minutes=5), "3d 4h"),
        (86400 + 3600 + 61, "1d 1h"),
    ],
)
def test_human_duration(duration: timedelta | float, text: str) -> None:
    assert human_duration(duration) == text
