"""The whole flow on a real 3-primary Redis Cluster (``REDIS_TYPE=redis_cluster``, every node in
``REDIS_URL``): a repository applied, materialized by the cron job, read with stock
``get_online_features``, one customer refreshed live, then ``segmentation sizes``, ``refresh``
and ``export`` — the same commands as on a single Redis, nothing else configured."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv
from tests.support.flow import online, seg
from tests.support.redis_cluster import RedisClusterNodes
from xiva_source.cli import main as xiva_main
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.redis_scan import scan_entity_keys
from xiva_source.jobs.materialize import run_materialization
from xiva_source.jobs.refresh import refresh_customer

SEGMENTS = (
    "- name: toronto\n  description: Toronto customers\n  rules:\n"
    "    - {'==': [{'var': 'city'}, 'Toronto']}\n"
    "- name: big\n  description: big spenders\n  rules:\n"
    "    - {'>': [{'var': 'total_revenue'}, 1000]}\n"
)


def test_the_whole_flow_on_a_redis_cluster(
    cluster_feast_repo: Path,
    feast_env: FeastEnv,
    redis_cluster: RedisClusterNodes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from feast import FeatureStore

    repo = cluster_feast_repo
    sim, dwh = feast_env.sim, feast_env.dwh
    everyone = sorted({*dwh.shared_ids, *dwh.dwh_only_ids, *dwh.xiva_only_ids})

    # 1. The cron job: lock, watermarks, expiry, all on the cluster.
    summary = run_materialization(repo, progress=False)
    assert summary.status == "ok", summary.line()
    store = FeatureStore(repo_path=str(repo))
    layout = RedisLayout.of(store.config, ["customer_id"])
    cluster = redis_cluster.client()
    try:
        keys = list(scan_entity_keys(cluster, layout))
        assert sorted(str(layout.entity_id(k)) for k in keys) == everyone
        assert len({cluster.get_node_from_key(k).name for k in keys}) == 3  # every primary
        assert cluster.exists(f"xiva_source:materialize:lock:{store.project}") == 0  # released
    finally:
        cluster.close()
    assert xiva_main(["materialize", "--repo", str(repo)]) == 0  # incremental run: ok again
    capsys.readouterr()

    # 2. Stock get_online_features reads what the job wrote, Xiva's values where only Xiva has
    # the customer.
    xiva_only = dwh.xiva_only_ids[:5]
    revenues = online(repo, xiva_only, ["customer_features:total_revenue"])
    for cid, revenue in zip(xiva_only, revenues["total_revenue"], strict=True):
        assert revenue == pytest.approx(float(sim.view_360(cid)["financial"]["total_bills"]))
    cities = online(repo, everyone, ["customer_features:city"])["city"]
    assert sum(c is not None for c in cities) > len(everyone) // 2

    # 3. Live refresh of one customer.
    customer_id = dwh.shared_ids[3]
    sim.update_customers(ids=[customer_id])
    financial = sim.view_360(customer_id)["financial"]
    features = refresh_customer(customer_id, repo_path=repo)
    assert features["total_revenue"] == pytest.approx(float(financial["total_bills"]))
    now = online(repo, [customer_id], ["customer_features:total_revenue"])
    assert now["total_revenue"][0] == pytest.approx(float(financial["total_bills"]))

    # 4. Segmentation over the whole population, on every primary.
    segdir = tmp_path / "segments"
    segdir.mkdir()
    (segdir / "s.yaml").write_text(SEGMENTS)
    cities = online(repo, everyone, ["customer_features:city"])["city"]
    toronto = sorted(c for c, city in zip(everyone, cities, strict=True) if city == "Toronto")
    assert toronto, "the data has Toronto customers"
    out = seg(capsys, repo, segdir, "sizes")
    assert f"population: {len(everyone)} customer(s)" in out
    assert out.splitlines()[0].startswith(f"toronto\t{len(toronto)}\t")

    target = tmp_path / "toronto.csv"
    out = seg(capsys, repo, segdir, "export", "toronto", str(target), "--with-features")
    assert f"{len(toronto)} member(s) of toronto written to" in out
    with target.open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["customer_id"] for r in rows) == toronto
    assert {r["city"] for r in rows} == {"Toronto"}

    out = seg(capsys, repo, segdir, "refresh")
    assert f"toronto\tsize={len(toronto)}\tjoined={len(toronto)}\tleft=0" in out
    stored = seg(capsys, repo, segdir, "members", "toronto", "--stored").split()
    assert stored == toronto


def test_a_plain_redis_type_on_a_cluster_fails_at_the_lock_naming_redis_type(
    cluster_feast_repo: Path, feast_env: FeastEnv, redis_cluster: RedisClusterNodes
) -> None:
    from xiva_source.jobs.errors import MaterializationFailedError

    # One node of the cluster named as a single Redis: the lock's key lives elsewhere -> MOVED.
    # Ports differ per node; try each so one of them does not own the lock's slot.
    failures = []
    for port in redis_cluster.ports:
        feast_env.monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}")
        feast_env.monkeypatch.setenv("REDIS_TYPE", "redis")
        try:
            run_materialization(cluster_feast_repo, progress=False)
        except MaterializationFailedError as e:
            failures.append(e)
    assert len(failures) >= 2  # every node but the lock key's owner answers MOVED
    for error in failures:
        assert "REDIS_TYPE=redis_cluster" in error.fix
        assert "MOVED" in error.problem
