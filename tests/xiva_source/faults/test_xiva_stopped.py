"""The Xiva API killed mid-pull (the simulator's process, ``SIGKILL``: every connection drops):
in ``xiva`` mode the run fails, keeping what it read with the rest pending a retry, and moves no
watermark of that view; in ``auto`` mode the view falls back to the DWH. Either way the rerun,
Xiva back, completes and every customer equals the source."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.feast import FEAST_SIM_CUSTOMERS, FeastEnv
from tests.support.services import SIM_PASSWORD, SIM_USER
from tests.support.xiva_source.faults import (
    Job,
    assert_every_customer_equals_the_source,
    free_port,
    wait_until,
    watermarks,
)
from tests.support.xiva_source.jobs import Truth


@dataclass
class SimProcess:
    """``python -m xiva_source.simulator`` (the Feast simulator's population) in its own process."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xiva_source.simulator",
                "--port",
                str(self.port),
                "--customers",
                str(FEAST_SIM_CUSTOMERS),
                "--seed",
                "11",
                "--user",
                f"{SIM_USER}:{SIM_PASSWORD}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.customer_reads()
                return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)

    def customer_reads(self) -> int:
        with urllib.request.urlopen(f"{self.root}/_sim/counters", timeout=2) as answer:
            counters = json.load(answer)
        return int(sum(counters["by_endpoint"].get("customer_360", {}).values()))

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_sim(feast_env: FeastEnv) -> Iterator[SimProcess]:
    """A simulator process of the test's own on a fixed port, the job's (and truth's) Xiva."""
    sim = SimProcess(free_port())
    sim.start()
    feast_env.monkeypatch.setenv("XIVA_API_BASE_URL", f"{sim.root}/api")
    yield sim
    sim.kill()


@pytest.mark.parametrize("mode", ["xiva", "auto", "auto-first-run"])
def test_xiva_killed_mid_pull_loses_nothing(
    mode: str, job: Job, feast_env: FeastEnv, truth: Truth, private_sim: SimProcess
) -> None:
    feast_env.set_mode(mode.removesuffix("-first-run"))
    args: tuple[str, ...] = ()
    if mode == "auto":
        # The steady state: a store already served; a full run then reads every customer again.
        # ("auto-first-run": an empty store, where the DWH-only customers must not be lost.)
        first_code, first_out = job.run()
        assert first_code == 0, first_out
        args = ("--full",)
    done = watermarks(job.repo)
    job.env["XIVA_REQUESTS_PER_SECOND"] = "200"  # ~2 s of Xiva reads: time to kill it mid-pull
    job.start(*args)
    reads = private_sim.customer_reads()
    wait_until("50 customer reads", lambda: private_sim.customer_reads() >= reads + 50, job)
    private_sim.kill()
    code, out = job.finish()
    lines = [line for line in out.splitlines() if line.startswith("materialize ")]
    assert len(lines) == 1, out

    if mode == "xiva":  # failed: what was read is kept, the rest pending a retry
        assert code == 1 and lines[0].startswith("materialize failed"), out
        assert "pending a retry" in lines[0], lines[0]
        assert watermarks(job.repo)["customer_features"] == done["customer_features"]
    else:  # degraded (3; 0 before exit status 3 existed): served from the DWH
        assert code in (0, 3) and "fallback" in lines[0], out

    private_sim.start()  # Xiva back (same data)
    del job.env["XIVA_REQUESTS_PER_SECOND"]
    code, out = job.run()

    assert code == 0, out
    assert_every_customer_equals_the_source(job.repo, truth, feast_env)
