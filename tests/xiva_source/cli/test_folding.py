"""Log warnings folded into a job's one line (``xiva_source/cli/folding.py``)."""

from __future__ import annotations

import logging
import warnings

import pytest

from xiva_source.cli.app import configure_logging
from xiva_source.cli.folding import MAX_FOLDED, folded_warnings
from xiva_source.redaction import register_secret


@pytest.fixture(autouse=True)
def _stderr_logging() -> None:
    configure_logging("WARNING")


def test_warnings_are_kept_off_stderr_and_folded_distinct_and_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    register_secret("Fold-secret-42")
    log = logging.getLogger("some.library")
    with folded_warnings(True) as folded:
        log.info("not kept: below WARNING")
        for _ in range(3):
            log.warning("Redis rate limiter unavailable (%s)", "ConnectionError")
        log.error("lost the lock\nsecond line with Fold-secret-42")
        log.warning("password was Fold-secret-42")
        warnings.warn("an experimental feature", RuntimeWarning, stacklevel=1)
        clauses = folded.clauses()
    assert capsys.readouterr().err == ""
    assert clauses[:3] == [
        "Redis rate limiter unavailable (ConnectionError)",
        "lost the lock",
        "password was ***",
    ]
    assert clauses[-1].startswith("1 more logged warnings")  # the RuntimeWarning, 4th distinct


def test_more_than_the_cap_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    with folded_warnings(True) as folded:
        for i in range(MAX_FOLDED + 2):
            logging.getLogger("x").warning("warning %d", i)
        clauses = folded.clauses()
    assert capsys.readouterr().err == ""
    assert len(clauses) == MAX_FOLDED + 1
    assert clauses[-1].startswith("2 more logged warnings (--log-level INFO")


def test_records_not_folded_are_printed_at_the_end_and_nothing_is_kept_when_disabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with folded_warnings(True):
        logging.getLogger("x").warning("kept, then printed")
        assert capsys.readouterr().err == ""
    assert "kept, then printed" in capsys.readouterr().err

    with folded_warnings(False) as folded:
        logging.getLogger("x").warning("printed at once")
        assert "printed at once" in capsys.readouterr().err
    assert folded.records == []


def test_other_handlers_still_get_every_record(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with folded_warnings(True) as folded:
        logging.getLogger("x").warning("for the file handler too")
        folded.clauses()
    assert capsys.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == ["for the file handler too"]
