"""Issue 16, item 1: a source's values are never lost because another part was down.

The DWH (and the snapshot table in it) goes away under the job: a TCP proxy in front of the
session's PostgreSQL is cut (open connections reset, new ones refused) before or during a run of
``python -m xiva_source materialize`` in a child process, then restored. Xiva's rows of that run
could not be merged with the DWH nor recorded in the snapshot table; the next run must read them
again (the re-read mark, ``xiva_source/jobs/plan.py``) so every customer ends equal to the merged
truth of both sources, with the precedence of ``FEATURE_STORE_MERGE_STRATEGY``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.feast import FeastEnv
from tests.support.xiva_source.faults import (
    DwhProxy,
    Job,
    assert_every_customer_equals_the_source,
    customer_360_calls,
    wait_until,
)
from tests.support.xiva_source.jobs import Truth


def _line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("materialize ")]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture
def fresh_truth(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Truth]:
    """The merged truth computed now (the test changes Xiva: the package's cache would be stale)."""
    made = Truth(tmp_path)
    yield made
    made.cleanup()


@pytest.mark.parametrize("strategy", ["xiva_first", "dwh_first"])
def test_first_run_with_the_dwh_down_then_back_ends_at_the_truth(
    strategy: str, job: Job, feast_env: FeastEnv, truth: Truth, dwh_proxy: DwhProxy
) -> None:
    feast_env.set_mode("auto", strategy)
    job.env["DWH_URL"] = dwh_proxy.url
    dwh_proxy.cut()

    code, out = job.run()  # Xiva served alone; its pull cannot be recorded (the DWH holds it)

    line = _line(out)
    assert code == 3, out
    assert "fallback: dwh failed" in line, line
    assert "xiva's rows were not settled" in line, line
    assert "Xiva is read again from the beginning once the DWH" in line, line

    code, out = job.run()  # still down: Xiva's new changes only, the re-read waits for the DWH

    line = _line(out)
    assert code == 3 and "fallback: dwh failed" in line, out
    calls = int(re.search(r" xiva_calls=(\d+) ", line)[1])  # type: ignore[index]
    assert calls < 20, line  # a login and a list page: no customer changed

    dwh_proxy.restore()
    code, out = job.run()

    assert code == 0, out
    assert "fallbacks=0" in _line(out)
    assert_every_customer_equals_the_source(job.repo, truth, feast_env)


@pytest.mark.parametrize("when", ["first-run", "incremental"])
def test_dwh_cut_in_the_middle_of_a_run_then_back_ends_at_the_truth(
    when: str, job: Job, feast_env: FeastEnv, fresh_truth: Truth, dwh_proxy: DwhProxy
) -> None:
    feast_env.set_mode("auto")
    config_path = job.repo / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    # Chunks of 40 customers: the first ones merged with the DWH and recorded, then the cut.
    config.setdefault("materialization", {})["online_write_batch_size"] = 40
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    job.env["DWH_URL"] = dwh_proxy.url
    if when == "incremental":
        code, out = job.run()
        assert code == 0, out
        feast_env.sim.update_customers(count=160)

    job.env["XIVA_REQUESTS_PER_SECOND"] = "80"  # ~2 s of Xiva reads: time to cut mid-pull
    reads = customer_360_calls(feast_env.sim)
    job.start()
    # (A child process importing Feast on a busy machine can take a while to start reading.)
    wait_until(
        "60 customer reads",
        lambda: customer_360_calls(feast_env.sim) >= reads + 60,
        job,
        timeout=120,
    )
    dwh_proxy.cut()
    code, out = job.finish()

    line = _line(out)
    assert code == 3, out
    assert "dwh failed" in line and "xiva's rows were not settled" in line, line

    dwh_proxy.restore()
    del job.env["XIVA_REQUESTS_PER_SECOND"]
    code, out = job.run()

    assert code == 0, out
    assert_every_customer_equals_the_source(job.repo, fresh_truth, feast_env)
