"""Live refresh of one customer: Xiva now -> online store (real simulator, Redis, PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
import sqlalchemy as sa
import yaml

from tests.support.feast import FeastEnv
from xiva_source.cli import main
from xiva_source.dwh import get_engine
from xiva_source.feast_plugin.errors import RepositoryError
from xiva_source.features.derived import derive_row
from xiva_source.jobs.errors import LiveRefreshError
from xiva_source.jobs.materialize import run_materialization
from xiva_source.jobs.refresh import refresh_customer
from xiva_source.xiva_api.errors import (
    XivaAuthenticationError,
    XivaBadResponseError,
    XivaNotFoundError,
)

if TYPE_CHECKING:
    from feast import FeatureStore

    from xiva_source.simulator import XivaSimulator

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def cli(argv: list[str]) -> int:
    """``xiva-source refresh ARGV``, in process."""
    return main(["refresh", *argv])


def _store(repo: Path) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def _online(repo: Path, customer_id: str, refs: list[str]) -> dict[str, Any]:
    rows = (
        _store(repo)
        .get_online_features(features=refs, entity_rows=[{"customer_id": customer_id}])
        .to_dict()
    )
    return {name: values[0] for name, values in rows.items()}


def _keys(redis_url: str, project: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=f"*{project}", count=1000))
    finally:
        client.close()


def test_refresh_makes_a_change_visible_online_at_once_and_leaves_dwh_features(
    repo: Path, feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops_env = feast_env.sim
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    run_materialization(repo, progress=False)
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    customer_id = feast_env.dwh.shared_ids[5]  # in Xiva and the DWH
    refs = ["customer_features:total_revenue", "customer_features:transaction_count"]
    dwh_refs = ["customer_dwh_features:churn_score", "customer_dwh_features:lifetime_value"]
    dwh_before = _online(repo, customer_id, dwh_refs)
    ops_env.update_customers(ids=[customer_id])
    financial = ops_env.view_360(customer_id)["financial"]

    features = refresh_customer(customer_id, repo_path=repo)

    assert features["customer_id"] == customer_id
    assert features["total_revenue"] == pytest.approx(float(financial["total_bills"]))
    online = _online(repo, customer_id, refs)
    assert online["total_revenue"] == pytest.approx(float(financial["total_bills"]))
    assert online["transaction_count"] == int(financial["payment_count"])
    assert _online(repo, customer_id, dwh_refs) == dwh_before
    # Recorded in the snapshot table (the DWH), like every Xiva read.
    table = yaml.safe_load((repo / "feature_store.yaml").read_text())["offline_store"][
        "snapshot_table"
    ]
    with get_engine(feast_env.dwh_url).connect() as conn:
        count = conn.execute(
            sa.text(f'SELECT count(*) FROM "{table}" WHERE customer_id = :c'), {"c": customer_id}
        ).scalar_one()
    assert count == 1


def test_unknown_customer_is_a_clear_error_and_writes_nothing(
    repo: Path,
    redis_url: str,
    project: str,
) -> None:
    with pytest.raises(XivaNotFoundError) as info:
        refresh_customer(UNKNOWN_ID, repo_path=repo)
    assert info.value.status == 404
    assert _keys(redis_url, project) == []


def test_xiva_failing_writes_nothing(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    ops_env: XivaSimulator,
    redis_url: str,
    project: str,
) -> None:
    monkeypatch.setenv("XIVA_API_PASSWORD", "wrong-password")
    with pytest.raises(XivaAuthenticationError) as info:
        refresh_customer(ops_env.customer_ids()[0], repo_path=repo)
    assert "wrong-password" not in str(info.value)
    assert _keys(redis_url, project) == []


def test_a_360_view_answering_another_customer_is_refused_and_writes_nothing(
    repo: Path, ops_env: XivaSimulator, redis_url: str, project: str
) -> None:
    from xiva_source.simulator import FaultConfig

    asked = ops_env.customer_ids()[0]
    ops_env.set_faults(FaultConfig(kinds=("swapped",), paths={"customer_360"}))
    with pytest.raises(XivaBadResponseError) as info:
        refresh_customer(asked, repo_path=repo)
    assert "another customer's record" in str(info.value) and asked in str(info.value)
    assert _keys(redis_url, project) == []


def test_dwh_mode_refuses(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    with pytest.raises(LiveRefreshError, match="FEATURE_STORE_DATA_SOURCE") as info:
        refresh_customer(UNKNOWN_ID, repo_path=repo)
    assert info.value.exit_code == 2 and "auto" in info.value.fix


def test_repository_problems_name_the_fix(
    repo: Path, tmp_path: Path, redis_url: str, project: str
) -> None:
    with pytest.raises(RepositoryError, match=r"No feature_store\.yaml") as info:
        refresh_customer(UNKNOWN_ID, repo_path=tmp_path / "nowhere")
    assert "make apply" in info.value.fix
    with pytest.raises(RepositoryError, match="'nope' is not in the registry") as info:
        refresh_customer(UNKNOWN_ID, repo_path=repo, view="nope")
    assert "make apply" in info.value.fix
    assert _keys(redis_url, project) == []


def test_xiva_mode_writes_every_xiva_feature(
    repo: Path, ops_env: XivaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")
    customer_id = ops_env.customer_ids()[3]
    features = refresh_customer(customer_id, repo_path=repo)
    names = [f.name for f in _store(repo).get_feature_view("customer_features").features]
    online = _online(repo, customer_id, [f"customer_features:{n}" for n in names])
    for n in names:
        want = features[n]
        assert online[n] == (pytest.approx(want) if isinstance(want, float) else want), n
    # The features that age are returned as of now, derived from the facts (never written).
    assert "birth_date" in names and "age" not in names
    derived = _online(repo, customer_id, ["customer_time_features:age"])
    assert features["age"] == derived["age"] == derive_row(features)["age"]
    assert "last_purchase_days_ago" in features


def test_cli_prints_the_features_as_json(
    repo: Path, ops_env: XivaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    customer_id = ops_env.customer_ids()[7]
    assert cli([customer_id, "--repo", str(repo)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["customer_id"] == customer_id
    assert printed["customer_status"] == ops_env.customer(customer_id)["status"].lower()

    assert cli([UNKNOWN_ID, "--repo", str(repo)]) == 1
    assert UNKNOWN_ID in capsys.readouterr().err
    assert cli([customer_id, "--repo", "/nowhere"]) == 2


def test_dwh_first_fills_only_features_that_are_null_online(
    repo: Path, feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops_env = feast_env.sim
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    run_materialization(repo, progress=False)
    names = ["customer_status", "total_revenue", "transaction_count", "customer_tier", "city"]
    refs = [f"customer_features:{n}" for n in names]
    shared = feast_env.dwh.shared_ids[:60]
    before = {c: _online(repo, c, refs) for c in shared}
    customer_id = next(c for c in shared if None in [before[c][n] for n in names])
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    monkeypatch.setenv("FEATURE_STORE_MERGE_STRATEGY", "dwh_first")
    ops_env.update_customers(ids=[customer_id])

    features = refresh_customer(customer_id, repo_path=repo)

    after = _online(repo, customer_id, refs)
    for name in names:
        expected = before[customer_id][name]
        if expected is None:
            expected = features[name]  # filled from Xiva
        assert after[name] == expected, name  # the DWH's value wins where it has one
