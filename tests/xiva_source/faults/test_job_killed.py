"""The job killed with ``SIGKILL`` mid-run: the next run takes the dead run's lock over at once
(it does not wait for the lock to expire), completes, and every customer equals the source."""

from __future__ import annotations

import signal

from tests.support.feast import FeastEnv
from tests.support.xiva_source.faults import (
    Job,
    assert_every_customer_equals_the_source,
    customer_360_calls,
    wait_until,
    watermarks,
)
from tests.support.xiva_source.jobs import Truth
from xiva_source.jobs.locks import LockHolder, redis_lock_name


def test_a_run_killed_mid_pull_is_taken_over_at_once_and_loses_nothing(
    job: Job, feast_env: FeastEnv, truth: Truth
) -> None:
    import redis

    from tests.support.xiva_source.jobs import store_of

    project = store_of(job.repo).project
    before = watermarks(job.repo)
    job.env["XIVA_REQUESTS_PER_SECOND"] = "200"  # ~2 s of Xiva reads: time to kill it mid-pull
    job.start()
    wait_until("50 customer reads", lambda: customer_360_calls(feast_env.sim) >= 50, job)
    assert job.process is not None
    dead_pid = job.process.pid
    job.process.send_signal(signal.SIGKILL)
    assert job.process.wait(10) == -signal.SIGKILL

    client = redis.Redis.from_url(feast_env.redis_url)
    try:
        raw: bytes = client.get(redis_lock_name(project))  # type: ignore[assignment]
        held = LockHolder.loads(raw)
    finally:
        client.close()
    assert held is not None and held.pid == dead_pid  # the dead run's lock is still there
    # The view it was pulling keeps its watermark (a view finished before may have moved).
    assert watermarks(job.repo)["customer_features"] == before["customer_features"]

    code, out = job.run()

    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("materialize ")]
    assert len(lines) == 1 and lines[0].startswith("materialize ok"), out
    # Taken over because its owner is dead (the pid named), not after the lock expired: no
    # wall-clock bound, which a loaded machine's slow start-up would break.
    assert f"took over the materialization lock of a dead run (pid {dead_pid} on" in lines[0]
    assert all(watermarks(job.repo).values())
    assert_every_customer_equals_the_source(job.repo, truth, feast_env)
