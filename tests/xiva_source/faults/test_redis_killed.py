"""Redis (the online store and the lock) killed mid-run and restarted empty: the run fails with
exit status 1 and moves no watermark of the view it was on; the rerun reloads what Redis lost and
every customer equals the source."""

from __future__ import annotations

from tests.support.feast import FeastEnv
from tests.support.xiva_source.faults import (
    Job,
    PrivateRedis,
    assert_every_customer_equals_the_source,
    customer_360_calls,
    wait_until,
    watermarks,
)
from tests.support.xiva_source.jobs import Truth


def test_redis_killed_mid_run_fails_the_run_and_the_rerun_restores_everything(
    job: Job, feast_env: FeastEnv, truth: Truth, private_redis: PrivateRedis
) -> None:
    feast_env.monkeypatch.setenv("REDIS_URL", private_redis.url)  # the job's and the checks'
    done = watermarks(job.repo)  # none yet
    job.env["XIVA_REQUESTS_PER_SECOND"] = "200"
    job.start()  # ~2 s of Xiva reads to kill Redis in (the DWH-only view may finish before)
    wait_until("50 customer reads", lambda: customer_360_calls(feast_env.sim) >= 50, job)
    private_redis.kill()
    code, out = job.finish(timeout=60)

    assert code == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    # One line, the promise: what loggers warned of meanwhile (the rate limiter and the usage
    # counters losing Redis, the lock's renewal and release) is folded into it.
    assert len(lines) == 1 and lines[0].startswith("materialize failed"), out
    assert "Redis" in lines[0] or "REDIS_URL" in lines[0], lines[0]
    assert lines[0].count("Fix:") == 1 and "; warning: " in lines[0], lines[0]
    assert watermarks(job.repo)["customer_features"] == done["customer_features"]

    private_redis.start()  # back, empty: every online value and the job's state are gone
    del job.env["XIVA_REQUESTS_PER_SECOND"]
    code, out = job.run()

    assert code == 0, out
    assert "materialize ok" in out and "reload=wiped" in out, out
    assert_every_customer_equals_the_source(job.repo, truth, feast_env)
