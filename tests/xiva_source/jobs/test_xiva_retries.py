"""The job and the Xiva pull's tolerated failures: failed and malformed customers are reported,
retried and online after the next run; ``xiva_calls`` is the run's own (real simulator, Redis,
PostgreSQL, Feast)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from xiva_source.jobs.materialize import run_materialization
from xiva_source.simulator import FaultConfig

if TYPE_CHECKING:
    from xiva_source.simulator import XivaSimulator


def _online_revenue(repo: Path, ids: list[str]) -> list[Any]:
    from feast import FeatureStore

    result = (
        FeatureStore(repo_path=str(repo))
        .get_online_features(
            features=["customer_features:total_revenue"],
            entity_rows=[{"customer_id": c} for c in ids],
        )
        .to_dict()
    )
    return list(result["total_revenue"])


def _bills(sim: XivaSimulator, ids: list[str]) -> list[float]:
    return [float(sim.view_360(c)["financial"]["total_bills"]) for c in ids]


def test_failed_and_malformed_customers_are_online_after_the_next_run_without_a_change(
    repo: Path, ops_env: XivaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = ops_env
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")
    assert run_materialization(repo, progress=False).status == "ok"  # everyone online

    changed = sim.update_customers(count=100)
    failing, malformed = changed[:4], changed[4]
    sim.set_faults(
        FaultConfig(
            kinds=("503",),
            paths={f"/customerManagement/v4/customers/{c}/" for c in failing},
        )
    )
    sim.corrupt_customer(malformed, {"financial.total_bills": {"not": "a number"}})
    sim.reset_counters()
    second = run_materialization(repo, progress=False)

    line = second.line()
    assert second.status == "ok", line
    assert second.report.failed_customers == 4 and second.report.malformed == 1, line
    assert " pending_retries=5 malformed=1 " in line and f"; malformed: {malformed}" in line
    assert second.report.xiva_calls == sim.counters()["total"]  # this run's own requests
    assert _online_revenue(repo, changed[5:]) == pytest.approx(_bills(sim, changed[5:]))
    # Not read this time: the previous values stay online (never a null, never a wrong value).
    assert None not in _online_revenue(repo, [*failing, malformed])
    assert _online_revenue(repo, failing) != pytest.approx(_bills(sim, failing))

    sim.clear_faults()  # Xiva answers again; nothing changed in it since the second run
    sim.reset_counters()
    third = run_materialization(repo, progress=False)

    assert third.status == "ok"
    assert (third.report.retried, third.report.recovered) == (
        5,
        4,
    )  # the malformed one is still malformed
    assert third.report.pending_retries == 1 and third.report.malformed == 1
    assert third.report.xiva_calls == sim.counters()["total"]
    assert _online_revenue(repo, failing) == pytest.approx(_bills(sim, failing))


def test_a_360_view_answering_another_customer_is_malformed_and_written_under_neither_id(
    repo: Path, ops_env: XivaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 16, item 5: Xiva answers customer A's 360 view with B's record (a mixed-up gateway
    # cache). Under A it would be another customer's data; under B, a write nobody asked for.
    import yaml

    from xiva_source.dwh.pending import list_pending, pending_table_name

    sim = ops_env
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")
    assert run_materialization(repo, progress=False).status == "ok"
    changed = sim.update_customers(count=20)
    asked = changed[0]
    before = _online_revenue(repo, [asked])
    sim.set_faults(
        FaultConfig(kinds=("swapped",), paths={f"/customerManagement/v4/customers/{asked}/"})
    )
    second = run_materialization(repo, progress=False)

    line = second.line()
    assert second.exit_code == 3 and second.report.malformed == 1, line
    assert " pending_retries=1 malformed=1 " in line and f"; malformed: {asked} " in line, line
    assert second.rows == len(changed) - 1  # A's answer written under neither id
    assert _online_revenue(repo, [asked]) == before  # A keeps its own previous values
    snapshots = yaml.safe_load((repo / "feature_store.yaml").read_text())["offline_store"]
    table = pending_table_name(snapshots["snapshot_table"])
    _, rows = list_pending(os.environ["DWH_URL"], table)
    assert [r.customer_id for r in rows] == [asked]
    assert "another customer's record" in rows[0].reason and asked in rows[0].reason

    sim.clear_faults()  # Xiva answers A's own record again: the retry reads it
    third = run_materialization(repo, progress=False)

    assert third.exit_code == 0 and third.report.recovered == 1, third.line()
    assert _online_revenue(repo, [asked]) == pytest.approx(_bills(sim, [asked]))
