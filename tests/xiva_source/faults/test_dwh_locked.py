"""A DWH table locked by an ETL transaction (issue 16, item 7): the run does not wait for it.

The test holds ``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`` in its own connection, as an ETL load
would, for the whole run. With ``DWH_STATEMENT_TIMEOUT_SECONDS`` the job's read gives up: in
``dwh`` mode the run fails (exit 1), in ``auto`` mode it falls back to Xiva (exit 3); its line names
the setting. Once the lock is gone, the rerun completes and every customer equals the source.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support.feast import FeastEnv
from tests.support.xiva_source.faults import (
    Job,
    assert_every_customer_equals_the_source,
    watermarks,
)
from tests.support.xiva_source.jobs import Truth
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE

TIMEOUT = "2"


@pytest.fixture
def etl_lock(feast_env: FeastEnv) -> Iterator[None]:
    """The DWH's customer table locked, as an ETL transaction holds it, until the test ends."""
    engine = sa.create_engine(feast_env.dwh_url)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(f'LOCK TABLE "{CUSTOMER_FEATURES_TABLE}" IN ACCESS EXCLUSIVE MODE')
            )
            yield
            conn.rollback()
    finally:
        engine.dispose()


def _line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # the summary line, and nothing else
    return lines[0]


def test_a_locked_table_fails_a_dwh_run_naming_the_timeout_and_the_rerun_completes(
    job: Job, feast_env: FeastEnv, truth: Truth
) -> None:
    feast_env.set_mode("dwh")
    job.env["DWH_STATEMENT_TIMEOUT_SECONDS"] = TIMEOUT
    done = watermarks(job.repo)
    engine = sa.create_engine(feast_env.dwh_url)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(f'LOCK TABLE "{CUSTOMER_FEATURES_TABLE}" IN ACCESS EXCLUSIVE MODE')
            )
            code, out = job.run()  # the lock is held the whole run: only the timeout ends it
            conn.rollback()
    finally:
        engine.dispose()

    line = _line(out)
    assert code == 1 and line.startswith("materialize failed mode=dwh"), out
    assert f"the DWH did not answer within {TIMEOUT} s (DWH_STATEMENT_TIMEOUT_SECONDS)" in line
    assert "a lock or a slow query" in line and "pg_locks" in line and line.count("Fix:") == 1
    assert watermarks(job.repo) == done

    code, out = job.run()

    assert code == 0, out
    assert_every_customer_equals_the_source(job.repo, truth, feast_env)


@pytest.mark.usefixtures("etl_lock")
def test_a_locked_table_in_auto_mode_falls_back_to_xiva_naming_the_timeout(
    job: Job, feast_env: FeastEnv
) -> None:
    feast_env.set_mode("auto")
    job.env["DWH_STATEMENT_TIMEOUT_SECONDS"] = TIMEOUT

    code, out = job.run()

    line = _line(out)
    assert code == 3 and line.startswith("materialize degraded mode=auto"), out
    assert "; fallback: dwh failed" in line, line
    assert f"did not answer within {TIMEOUT} s (DWH_STATEMENT_TIMEOUT_SECONDS)" in line, line
