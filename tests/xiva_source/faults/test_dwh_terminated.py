"""DWH connections terminated while the job's query runs (``pg_terminate_backend``): the run fails
with exit status 1 and moves no watermark; the rerun completes and every customer equals the
source.

To cut the connection mid-query deterministically, the test holds an ``ACCESS EXCLUSIVE`` lock on
the DWH table: the job's read waits on it, and the test terminates exactly the backends it blocks
(``pg_blocking_pids``), then lets go.
"""

from __future__ import annotations

import sqlalchemy as sa

from tests.support.feast import FeastEnv
from tests.support.xiva_source.faults import (
    Job,
    assert_every_customer_equals_the_source,
    wait_until,
    watermarks,
)
from tests.support.xiva_source.jobs import Truth
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE

BLOCKED_BY_ME = sa.text("SELECT pid FROM pg_stat_activity WHERE :me = ANY(pg_blocking_pids(pid))")


def test_dwh_connections_terminated_mid_query_fail_the_run_and_the_rerun_completes(
    job: Job, feast_env: FeastEnv, truth: Truth
) -> None:
    feast_env.set_mode("dwh")
    done = watermarks(job.repo)  # none yet: the first run is the one cut off

    engine = sa.create_engine(feast_env.dwh_url)
    terminated: list[int] = []
    try:
        with engine.connect() as conn:
            me = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            conn.execute(
                sa.text(f'LOCK TABLE "{CUSTOMER_FEATURES_TABLE}" IN ACCESS EXCLUSIVE MODE')
            )
            job.start()

            def blocked() -> bool:
                conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))  # a fresh view
                pids = conn.execute(BLOCKED_BY_ME, {"me": me}).scalars().all()
                for pid in pids:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                terminated.extend(pids)
                return bool(pids)

            wait_until("a DWH read", blocked, job)
            conn.rollback()  # lets go of the table
    finally:
        engine.dispose()
    code, out = job.finish()

    assert terminated
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.startswith("materialize ")]
    assert len(lines) == 1 and lines[0].startswith("materialize failed"), out
    assert "dwh" in lines[0].lower(), lines[0]
    assert watermarks(job.repo) == done

    code, out = job.run()

    assert code == 0, out
    assert_every_customer_equals_the_source(job.repo, truth, feast_env)
