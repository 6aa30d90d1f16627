"""``xiva-source status --max-age``: the duration syntax (the command runs in
tests/xiva_source/jobs/test_run_outcome.py, against a materialized repository)."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from xiva_source.cli import main
from xiva_source.cli.status import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1.5H", 5400), ("45s", 45)],
)
def test_max_age_takes_seconds_or_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "soon", "0", "-5m"])
def test_a_bad_max_age_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_a_bad_max_age_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--max-age", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err
