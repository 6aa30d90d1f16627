"""Materialization through Feast itself: first run, incremental runs, failures, CLI, registry."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from feast import FeatureStore

from tests.support.feast import FeastEnv, feast_cli, feast_cli_on_terminal
from xiva_source.dwh import get_engine
from xiva_source.errors import DataSourceError
from xiva_source.features.extractor import features_from_360
from xiva_source.simulator import FaultConfig

ROOT = Path(__file__).resolve().parents[3]
REFS = [
    "customer_features:total_revenue",
    "customer_features:transaction_count",
    "customer_features:city",
    "customer_dwh_features:churn_score",
]


def _online(store: FeatureStore, ids: list[str]) -> dict[str, list[Any]]:
    return store.get_online_features(
        features=REFS, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()


def _watermark(repo: Path, view: str) -> datetime | None:
    return FeatureStore(repo_path=str(repo)).get_feature_view(view).most_recent_end_time


def _calls_360(env: FeastEnv) -> int:
    return sum(env.sim.counters()["by_endpoint"].get("customer_360", {}).values())


def _dwh_churn(env: FeastEnv, ids: list[str]) -> dict[str, float | None]:
    with get_engine(env.dwh_url).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT CAST(customer_id AS TEXT), churn_score FROM customer_features_view")
        ).all()
    return {c: None if v is None else float(v) for c, v in rows if c in set(ids)}


def _last_update(env: FeastEnv, cid: str) -> datetime:
    return datetime.fromisoformat(env.sim.customer(cid)["lastUpdate"].replace("Z", "+00:00"))


def test_first_run_loads_years_old_customers_then_only_changed_ones_are_fetched(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    sim = feast_env.sim
    store = FeatureStore(repo_path=str(feast_repo))
    ids = sim.customer_ids()
    oldest = ids[0]
    assert _last_update(feast_env, oldest) < datetime.now(UTC) - timedelta(days=365)

    # A short ttl: stock Feast would start the first run at now - 30 days and skip `oldest`.
    view = store.get_feature_view("customer_features")
    view.ttl = timedelta(days=30)
    store.apply([view])

    first_end = datetime.now(UTC)
    store.materialize_incremental(end_date=first_end)
    assert _calls_360(feast_env) == len(ids)  # every customer, however old its lastUpdate
    dwh_only = feast_env.dwh.dwh_only_ids[:3]
    online = _online(store, [oldest, *dwh_only])
    assert online["total_revenue"][0] == pytest.approx(
        features_from_360(sim.view_360(oldest))["total_revenue"]
    )
    churn = _dwh_churn(feast_env, dwh_only)
    assert online["churn_score"][1:] == pytest.approx([churn[c] for c in dwh_only])

    sim.reset_counters()
    changed = sim.update_customers(count=5)
    store.materialize_incremental(end_date=datetime.now(UTC))
    overlap = first_end - timedelta(seconds=300)
    boundary = {c for c in ids if overlap <= _last_update(feast_env, c) and c not in changed}
    assert _calls_360(feast_env) == len(changed) + len(boundary)
    after = _online(store, changed)
    for cid, revenue in zip(changed, after["total_revenue"], strict=True):
        assert revenue == pytest.approx(features_from_360(sim.view_360(cid))["total_revenue"])


def test_ties_at_the_page_boundary_are_all_fetched(feast_env: FeastEnv, feast_repo: Path) -> None:
    sim = feast_env.sim
    store = FeatureStore(repo_path=str(feast_repo))
    first_end = datetime.now(UTC)
    store.materialize_incremental(end_date=first_end)
    sim.reset_counters()
    tie = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    changed = sim.update_customers(count=120, at=tie)  # > 2 pages of 50 sharing one lastUpdate
    store.materialize_incremental(end_date=tie + timedelta(seconds=1))
    overlap = first_end - timedelta(seconds=300)
    expected = {c for c in sim.customer_ids() if _last_update(feast_env, c) >= overlap}
    assert expected >= set(changed)
    assert _calls_360(feast_env) == len(expected)  # each exactly once, none skipped
    got = _online(store, changed)["total_revenue"]
    want = [features_from_360(sim.view_360(c))["total_revenue"] for c in changed]
    assert got == pytest.approx(want)


@pytest.mark.parametrize("mode", ["xiva", "dwh"])
def test_single_mode_failure_keeps_online_values_and_the_watermark(
    mode: str, feast_env: FeastEnv, feast_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feast_env.set_mode(mode)
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC))
    mark = _watermark(feast_repo, "customer_features")
    assert mark is not None
    ids = feast_env.dwh.shared_ids[:10]
    before = _online(store, ids)
    assert any(v is not None for v in before["total_revenue"])

    feast_env.sim.update_customers(ids=ids)
    if mode == "xiva":
        feast_env.sim.set_faults(FaultConfig(rate=1.0, kinds=("503",), retry_after="zero"))
    else:
        monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root@127.0.0.1:5432/no_such_db")
    with pytest.raises(DataSourceError, match=mode):
        FeatureStore(repo_path=str(feast_repo)).materialize_incremental(end_date=datetime.now(UTC))
    assert _watermark(feast_repo, "customer_features") == mark
    assert _online(FeatureStore(repo_path=str(feast_repo)), ids) == before


def test_registry_round_trip_from_a_second_process(feast_env: FeastEnv, feast_repo: Path) -> None:
    feast_env.set_mode("dwh")
    store = FeatureStore(repo_path=str(feast_repo))
    store.materialize_incremental(end_date=datetime.now(UTC))
    ids = feast_env.dwh.shared_ids[:5]
    script = (
        "import json, sys\n"
        "from feast import FeatureStore\n"
        "store = FeatureStore(repo_path=sys.argv[1])\n"
        "src = store.get_data_source('customer_source')\n"
        "print(json.dumps({'source': type(src).__name__, 'dwh_table': src.dwh.table,\n"
        "  'online': store.get_online_features(features=json.loads(sys.argv[2]),\n"
        "    entity_rows=[{'customer_id': c} for c in json.loads(sys.argv[3])]).to_dict()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(feast_repo), json.dumps(REFS), json.dumps(ids)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["source"] == "CustomerSource"
    assert loaded["dwh_table"] == "customer_features_view"
    assert loaded["online"] == json.loads(json.dumps(_online(store, ids)))
    assert any(v is not None for v in loaded["online"]["total_revenue"])


def test_feast_cli_apply_and_materialize_incremental(feast_env: FeastEnv, feast_repo: Path) -> None:
    applied = feast_cli(feast_repo, "apply")
    assert applied.returncode == 0, applied.stderr
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    run = feast_cli(feast_repo, "materialize-incremental", stamp)
    assert run.returncode == 0, run.stderr
    assert "customer_features" in run.stdout
    assert "customers/s" not in run.stderr  # stderr is not a terminal: no progress bar
    store = FeatureStore(repo_path=str(feast_repo))
    assert _watermark(feast_repo, "customer_features") is not None
    ids = feast_env.sim.customer_ids()[:3]
    want = [features_from_360(feast_env.sim.view_360(c))["city"] for c in ids]
    got = _online(store, ids)["city"]
    # auto, xiva_first: Xiva's city unless Xiva has none.
    assert [g for g, w in zip(got, want, strict=True) if w is not None] == [w for w in want if w]


def test_feast_materialize_in_a_terminal_shows_the_pulls_progress(
    feast_env: FeastEnv, feast_repo: Path
) -> None:
    """The first Xiva pull through ``feast materialize`` moves a bar per customer, with the total
    from Xiva's count, like ``xiva-source materialize`` (README, "the first pull")."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    code, out, terminal = feast_cli_on_terminal(
        feast_repo, "materialize", "2000-01-01T00:00:00", stamp, "--views", "customer_features"
    )
    assert code == 0, terminal
    assert "customer_features" in out
    total = len(feast_env.sim.customer_ids())
    shown = [int(n) for n in re.findall(rf"customer_source: .*?(\d+)/{total} \[", terminal)]
    assert shown and "customers/s" in terminal, terminal[-2000:]
    assert max(shown) > 0  # it moved (tqdm draws at most every 0.1 s: the last step may not show)


def test_pull_latest_is_pull_all_latest_per_customer(feast_env: FeastEnv, feast_repo: Path) -> None:
    from xiva_source.feast_plugin.offline_store import LoyaltyOfflineStore

    store = FeatureStore(repo_path=str(feast_repo))
    fv = store.get_feature_view("customer_dwh_features")
    source, names = fv.batch_source, [f.name for f in fv.features]
    assert source is not None
    args = (store.config, source, ["customer_id"], names, "updated_at")
    end = datetime.now(UTC)
    every_row = LoyaltyOfflineStore.pull_all_from_table_or_query(*args, None, None, end).to_arrow()
    latest = LoyaltyOfflineStore.pull_latest_from_table_or_query(
        *args, None, end - timedelta(days=36500), end
    ).to_arrow()
    ids = latest.column("customer_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(set(every_row.column("customer_id").to_pylist()))
    assert set(ids) == set(feast_env.dwh.customer_ids)
