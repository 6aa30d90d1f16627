"""The DWH sessions' statement timeout (``DWH_STATEMENT_TIMEOUT_SECONDS``) and its words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xiva_source.dwh.engine import session_settings, sql_error_text, timeout_text
from xiva_source.dwh.errors import DwhError
from xiva_source.settings import DEFAULT_DWH_STATEMENT_TIMEOUT, Settings, dwh_statement_timeout


@pytest.fixture
def timeout_restored() -> Iterator[None]:
    yield
    Settings(dwh_statement_timeout_seconds=DEFAULT_DWH_STATEMENT_TIMEOUT)


@pytest.mark.usefixtures("timeout_restored")
def test_the_last_loaded_setting_is_what_sessions_apply() -> None:
    assert Settings().dwh_statement_timeout_seconds == 60 == dwh_statement_timeout()
    assert session_settings() == [
        "SET TIME ZONE 'UTC'",
        "SET lock_timeout = 60000",
        "SET statement_timeout = 60000",
    ]
    Settings(dwh_statement_timeout_seconds=2.5)
    assert session_settings(statement_timeout=False) == [
        "SET TIME ZONE 'UTC'",
        "SET lock_timeout = 2500",
    ]
    Settings(dwh_statement_timeout_seconds=0)  # no limit
    assert session_settings() == ["SET TIME ZONE 'UTC'"]


@pytest.mark.usefixtures("timeout_restored")
def test_a_cancelled_statement_is_named_with_the_setting_and_its_fix() -> None:
    Settings(dwh_statement_timeout_seconds=5)

    class Cancelled(Exception):
        orig = "canceling statement due to statement timeout\nCONTEXT: while locking"

    text = sql_error_text(Cancelled())
    assert text == (
        "the DWH did not answer within 5 s (DWH_STATEMENT_TIMEOUT_SECONDS): a lock or a slow "
        "query (statement timeout)"
    )
    error = DwhError(f"reading 'dwh' failed: {text}", hint="Check DWH_URL.")
    assert "pg_locks" in error.fix and "raise DWH_STATEMENT_TIMEOUT_SECONDS" in error.fix
    assert timeout_text("ERROR: canceling statement due to lock timeout") is not None
    assert timeout_text("canceling statement due to user request") is None
    assert timeout_text("connection refused") is None


def test_a_negative_timeout_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from xiva_source.errors import ConfigurationError
    from xiva_source.settings import load_settings

    monkeypatch.setenv("DWH_STATEMENT_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ConfigurationError, match="DWH_STATEMENT_TIMEOUT_SECONDS"):
        load_settings(env_file=None)
