"""Helpers of the fault tests: wait for a run's progress, check every customer against the truth."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.xiva_source.jobs.fallback_helpers import Truth, all_ids, differences, online, store_of

if TYPE_CHECKING:
    from datetime import datetime

    from tests.feast_fixtures import FeastEnv
    from tests.xiva_source.faults.conftest import Job
    from xiva_source.simulator import XivaSimulator

VIEWS = ("customer_features", "customer_dwh_features")


def wait_until(what: str, predicate: Callable[[], bool], job: Job, timeout: float = 30) -> None:
    """Poll ``predicate`` until true; fail if the run ended first or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert job.process is not None
        if job.process.poll() is not None:
            _, err = job.process.communicate()
            raise AssertionError(f"the run ended before {what}: {job.process.returncode} {err}")
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def customer_360_calls(sim: XivaSimulator) -> int:
    """Customer reads the simulator answered so far."""
    return int(sum(sim.counters()["by_endpoint"].get("customer_360", {}).values()))


def watermarks(repo: Path) -> dict[str, datetime | None]:
    """Each view's watermark (Feast's most recent materialization end) in the registry."""
    store = store_of(repo)
    return {
        view: store.registry.get_feature_view(
            view, store.project, allow_cache=False
        ).most_recent_end_time
        for view in VIEWS
    }


def assert_every_customer_equals_the_source(
    repo: Path, truth: Truth, env: FeastEnv, sim: XivaSimulator | None = None
) -> None:
    """Every customer of either source is served exactly as a full run with every source up."""
    ids = all_ids(sim or env.sim, env.dwh)
    want = truth.values(ids)
    got: dict[str, dict[str, Any]] = online(repo, ids)
    diffs = differences(got, want)
    assert not diffs, (
        f"{len(diffs)} cells of {len({d[0] for d in diffs})} customers differ "
        f"({sorted({d[1] for d in diffs})}), e.g. {diffs[:5]}"
    )
    assert len(want) == len(ids) and any(
        v is not None for row in want.values() for v in row.values()
    )
