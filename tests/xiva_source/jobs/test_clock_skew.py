"""Issue 16, item 4: no change is lost to a Xiva clock that disagrees with ours.

The simulator (a real HTTP server) runs its clock 30 minutes behind or ahead of this host's,
twice the pull's 15-minute overlap: its changes are stamped, and its ``Date`` header and tokens
issued, on that clock. Customers change between two runs of the job (Redis, PostgreSQL DWH);
every change must be online after the next run, every customer equal to the merged truth, and the
run's line must name the skew it measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv
from tests.support.xiva_source.jobs import Truth, all_ids, differences, online
from xiva_source.jobs.materialize import run_materialization


@pytest.fixture
def truth(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Truth]:
    made = Truth(tmp_path)
    yield made
    made.cleanup()


@pytest.mark.parametrize("minutes", [-30, 30], ids=["behind", "ahead"])
def test_every_change_is_online_after_the_next_run_whatever_xivas_clock(
    minutes: int, feast_repo: Path, feast_env: FeastEnv, truth: Truth
) -> None:
    sim = feast_env.sim
    sim.set_clock_skew(minutes * 60)
    first = run_materialization(feast_repo, progress=False)
    assert first.exit_code == 0, first.line()
    named = re.search(r"; xiva clock: (\d+) s (behind|ahead of) this host's", first.line())
    assert named is not None, first.line()
    assert abs(int(named[1]) - abs(minutes) * 60) <= 2  # the Date header has whole seconds
    assert named[2] == ("behind" if minutes < 0 else "ahead of")

    changed = sim.update_customers(count=40)  # stamped on Xiva's clock, 30 minutes off ours
    second = run_materialization(feast_repo, progress=False)

    assert second.exit_code == 0, second.line()
    assert second.report.malformed == 0, second.line()  # "in the future" only on our clock
    # Each changed customer read once, plus the list and one login: tokens are timed by their
    # lifetime, so a token "expired" on our clock is not refreshed before every call.
    assert second.report.xiva_calls <= len(changed) + 5, second.line()
    got = online(feast_repo, changed)
    bills = [float(sim.view_360(c)["financial"]["total_bills"]) for c in changed]
    assert [got[c]["customer_features__total_revenue"] for c in changed] == pytest.approx(bills)
    ids = all_ids(sim, feast_env.dwh)
    diffs = differences(online(feast_repo, ids), truth.values(ids))
    assert not diffs, f"{len(diffs)} cells differ from the merged truth, e.g. {diffs[:5]}"
