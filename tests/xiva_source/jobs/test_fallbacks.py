"""A fallback never degrades what is online; the next run leaves every customer at the truth.

Issue 8, items 3, 4 and 8: watermarks per source, late DWH rows, fallbacks. Every scenario
ends with every customer equal to the merged truth (a fresh full run with every source up,
``Truth`` of tests/support/xiva_source/jobs.py). Everything is real: the session's Xiva
simulator, a PostgreSQL DWH of the test's own (``pg_url``), Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.support.feast import FeastEnv
from tests.support.services import SIM_PASSWORD
from tests.support.xiva_source.jobs import (
    Truth,
    all_ids,
    differences,
    online,
    touch_dwh,
)
from xiva_source.jobs.materialize import run_materialization
from xiva_source.timeutil import utc_now

if TYPE_CHECKING:
    from xiva_source.demo.data import DemoDwh

DEAD_DWH = "postgresql+psycopg://root:dwh-pw@127.0.0.1:1/test"


@pytest.fixture
def own_dwh(feast_env: FeastEnv, pg_url: str) -> DemoDwh:
    """A DWH of this test's own (it is changed), filled for the simulator's customers."""
    from xiva_source.demo.data import create_demo_dwh

    dwh = create_demo_dwh(pg_url, feast_env.sim, seed=11)
    feast_env.monkeypatch.setenv("DWH_URL", pg_url)
    feast_env.set_mode("auto")
    return dwh


@pytest.fixture
def truth(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Truth]:
    made = Truth(tmp_path)
    yield made
    made.cleanup()


def _run(repo: Path, **kwargs: object) -> str:
    summary = run_materialization(repo, progress=False, **kwargs)  # type: ignore[arg-type]
    assert summary.status == "ok", summary.line()
    return summary.line()


def _assert_truth(repo: Path, truth: Truth, ids: list[str]) -> None:
    want = truth.values(ids)
    diffs = differences(online(repo, ids), want)
    assert not diffs, f"{len(diffs)} cells differ from the merged truth, e.g. {diffs[:5]}"


def test_dwh_down_then_back_keeps_dwh_cells_and_ends_at_the_truth(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, pg_url: str, truth: Truth
) -> None:
    sim, mp = feast_env.sim, feast_env.monkeypatch
    ids = all_ids(sim, own_dwh)
    _run(feast_repo)
    before = online(feast_repo, ids)

    changed = sim.update_customers(ids=own_dwh.shared_ids[:60])
    mp.setenv("DWH_URL", DEAD_DWH)
    line = _run(feast_repo)
    assert "fallback: dwh failed" in line and "partial=" in line and "partial=0" not in line
    during = online(feast_repo, ids)
    # No cell the DWH filled was nulled or replaced: a cell is either Xiva's new value or as before.
    for cid in changed:
        for name, old in before[cid].items():
            now = during[cid][name]
            assert now is not None or old is None, (cid, name)
    assert during[own_dwh.dwh_only_ids[0]] == before[own_dwh.dwh_only_ids[0]]

    # The DWH comes back with changes made during the outage.
    mp.setenv("DWH_URL", pg_url)
    touch_dwh(pg_url, own_dwh.shared_ids[30:90] + own_dwh.dwh_only_ids[:10], utc_now())
    line = _run(feast_repo)
    assert "fallbacks=0" in line
    _assert_truth(feast_repo, truth, ids)


def test_xiva_down_longer_than_the_overlap_is_caught_up(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, truth: Truth
) -> None:
    sim, mp = feast_env.sim, feast_env.monkeypatch
    mp.setenv("XIVA_PULL_OVERLAP_SECONDS", "1")
    ids = all_ids(sim, own_dwh)
    _run(feast_repo)

    time.sleep(1.5)
    changed = sim.update_customers(count=50)  # during the outage, older than the overlap...
    time.sleep(2.5)  # ...by the time Xiva is back
    mp.setenv("XIVA_API_PASSWORD", "wrong-password")
    line = _run(feast_repo)
    assert "fallback: xiva failed" in line
    mp.setenv("XIVA_API_PASSWORD", SIM_PASSWORD)
    sim.reset_counters()
    _run(feast_repo)

    got = online(feast_repo, changed)
    bills = [float(sim.view_360(c)["financial"]["total_bills"]) for c in changed]
    assert [got[c]["customer_features__total_revenue"] for c in changed] == pytest.approx(bills)
    _assert_truth(feast_repo, truth, ids)


def test_failed_snapshot_read_is_a_fallback_and_keeps_xiva_values(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, pg_url: str, truth: Truth
) -> None:
    ids = all_ids(feast_env.sim, own_dwh)
    _run(feast_repo)
    before = online(feast_repo, ids)
    yaml_path = feast_repo / "feature_store.yaml"
    config = yaml.safe_load(yaml_path.read_text())
    good = dict(config["offline_store"])
    touched = own_dwh.shared_ids[:40]
    touch_dwh(pg_url, touched, utc_now(), revenue_delta=1000.0)

    config["offline_store"]["snapshot_url"] = DEAD_DWH  # Xiva's last known values unreadable
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    line = _run(feast_repo)
    assert "fallbacks=1" in line and "last known values unavailable" in line
    during = online(feast_repo, touched)
    # xiva_first: the Xiva-owned revenue keeps its Xiva value, never the DWH's.
    for cid in touched:
        assert during[cid]["customer_features__total_revenue"] == pytest.approx(
            before[cid]["customer_features__total_revenue"]
        )

    config["offline_store"] = good
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _run(feast_repo)
    _assert_truth(feast_repo, truth, ids)


def test_xiva_rows_the_snapshot_table_refused_are_read_again_and_recorded(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, pg_url: str, truth: Truth
) -> None:
    # Issue 16, item 1: the snapshot table fails while the DWH works. Xiva's changes are merged
    # and online, but not recorded: a later DWH change of those customers would be merged with
    # Xiva's stale last known values unless Xiva is read again (and recorded) first.
    sim = feast_env.sim
    ids = all_ids(sim, own_dwh)
    _run(feast_repo)
    changed = sim.update_customers(ids=own_dwh.shared_ids[:40])
    yaml_path = feast_repo / "feature_store.yaml"
    config = yaml.safe_load(yaml_path.read_text())
    good = dict(config["offline_store"])
    config["offline_store"]["snapshot_url"] = DEAD_DWH
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    line = _run(feast_repo)
    assert "Xiva pull not recorded in the snapshot table" in line, line
    assert "xiva's rows were not settled (not recorded in the snapshot table)" in line, line

    config["offline_store"] = good
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))
    sim.reset_counters()
    line = _run(feast_repo)  # reads Xiva again from the previous run's start: recorded now
    assert "not settled" not in line, line
    assert sim.counters()["by_endpoint"]["customer_360"][200] >= len(changed)
    touch_dwh(pg_url, changed, utc_now(), revenue_delta=1000.0)
    _run(feast_repo)  # the DWH's changes merged with Xiva's last known values: the new ones
    _assert_truth(feast_repo, truth, ids)


def test_mode_switch_dwh_to_auto_rewrites_the_view(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, truth: Truth
) -> None:
    ids = all_ids(feast_env.sim, own_dwh)
    feast_env.set_mode("dwh")
    _run(feast_repo)
    feast_env.set_mode("auto")
    line = _run(feast_repo)
    assert "reload=mode" in line
    _assert_truth(feast_repo, truth, ids)


def test_dwh_tables_created_after_a_first_run_are_caught_up(
    feast_repo: Path, feast_env: FeastEnv, pg_url: str, truth: Truth
) -> None:
    from xiva_source.demo.data import create_demo_dwh

    feast_env.monkeypatch.setenv("DWH_URL", pg_url)  # an empty database: no tables yet
    feast_env.set_mode("auto")
    summary = run_materialization(feast_repo, progress=False)
    assert summary.status == "ok" and summary.report.fallbacks
    dwh = create_demo_dwh(pg_url, feast_env.sim, seed=11)
    _run(feast_repo)
    _assert_truth(feast_repo, truth, all_ids(feast_env.sim, dwh))


def test_a_dwh_row_loaded_an_hour_late_is_read_by_the_next_run(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, pg_url: str
) -> None:
    _run(feast_repo)
    late = own_dwh.dwh_only_ids[:3]
    touch_dwh(pg_url, late, utc_now() - timedelta(hours=1), revenue_delta=5000.0)
    _run(feast_repo)
    got = online(feast_repo, late)
    assert all(got[c]["customer_dwh_features__churn_score"] == 0.5 for c in late)
    assert all(got[c]["customer_features__total_revenue"] > 5000 for c in late)


def test_full_rewrites_a_row_stamped_in_the_far_future(
    feast_repo: Path, feast_env: FeastEnv, own_dwh: DemoDwh, truth: Truth
) -> None:
    from datetime import UTC, datetime

    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from tests.support.xiva_source.jobs import store_of

    _run(feast_repo)
    victim = own_dwh.shared_ids[0]
    store = store_of(feast_repo)
    fv = store.get_feature_view("customer_features")
    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=victim)])
    bogus = {"city": Value(string_val="Atlantis")}
    # What a lastUpdate in the year 9999 left behind: Feast's newer-wins never replaces it.
    store._get_provider().online_write_batch(
        store.config, fv, [(key, bogus, datetime(9999, 1, 1, tzinfo=UTC), None)], None
    )
    _run(feast_repo, full=True)
    _assert_truth(feast_repo, truth, [victim, *own_dwh.shared_ids[1:5]])
