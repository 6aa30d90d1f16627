"""The whole flow over TLS: ``feast apply``, the cron job, stock ``get_online_features`` (sync and
async: ``feast serve``'s path), live refresh, ``xiva-source status`` and segmentation, first on a
Redis that requires client certificates (so a client built without the ``REDIS_TLS_*`` files
could not connect at all), then on a TLS-only Redis Cluster. Nothing but the settings changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv, make_repo
from tests.support.flow import online, online_async, seg
from tests.support.tls import RedisTlsServer, TlsCluster, TlsFiles
from xiva_source.cli import main as xiva_main
from xiva_source.jobs.materialize import run_materialization
from xiva_source.jobs.refresh import refresh_customer

SEGMENTS = "- name: toronto\n  rules:\n    - {'==': [{'var': 'city'}, 'Toronto']}\n"


def _tls_env(env: FeastEnv, files: TlsFiles, url: str, redis_type: str = "redis") -> None:
    for name, value in {
        "REDIS_URL": url,
        "REDIS_TYPE": redis_type,
        "REDIS_TLS_CA_FILE": str(files.ca),
        "REDIS_TLS_CERT_FILE": str(files.client_cert),
        "REDIS_TLS_KEY_FILE": str(files.client_key),
    }.items():
        env.monkeypatch.setenv(name, value)
    env.redis_url = url


def _drop_snapshot_table(env: FeastEnv, table: str) -> None:
    import sqlalchemy as sa

    from xiva_source.dwh import get_engine

    with get_engine(env.dwh_url).begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))


def _tls_repo(
    env: FeastEnv, server: RedisTlsServer | TlsCluster, redis_type: str, redis_ns: str, tmp: Path
) -> Iterator[Path]:
    """A repository applied with its online store on ``server``; its keys and table dropped."""
    _tls_env(env, server.files, server.url, redis_type)
    suffix = uuid.uuid4().hex[:10]
    try:
        yield make_repo(tmp / "repo", f"loyalty_{suffix}", snapshot_table=f"snap_{suffix}")
    finally:
        server.delete_matching(f"*{suffix}*")
        server.delete_matching(f"*{redis_ns}*")
        _drop_snapshot_table(env, f"snap_{suffix}")


@pytest.fixture
def mtls_repo(
    feast_env: FeastEnv, redis_mtls: RedisTlsServer, redis_ns: str, tmp_path: Path
) -> Iterator[Path]:
    """A repository applied with its online store on the mutual-TLS Redis."""
    yield from _tls_repo(feast_env, redis_mtls, "redis", redis_ns, tmp_path)


def test_the_whole_flow_over_mutual_tls(
    mtls_repo: Path,
    feast_env: FeastEnv,
    redis_mtls: RedisTlsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = mtls_repo
    sim, dwh = feast_env.sim, feast_env.dwh
    everyone = sorted({*dwh.shared_ids, *dwh.dwh_only_ids, *dwh.xiva_only_ids})

    summary = run_materialization(repo, progress=False)
    assert summary.status == "ok", summary.line()

    xiva_only = dwh.xiva_only_ids[:5]
    revenues = online(repo, xiva_only, ["customer_features:total_revenue"])
    for cid, revenue in zip(xiva_only, revenues["total_revenue"], strict=True):
        assert revenue == pytest.approx(float(sim.view_360(cid)["financial"]["total_bills"]))
    cities = online(repo, everyone, ["customer_features:city"])["city"]
    assert online_async(repo, everyone, ["customer_features:city"])["city"] == cities

    customer_id = dwh.shared_ids[2]
    sim.update_customers(ids=[customer_id])
    features = refresh_customer(customer_id, repo_path=repo)
    revenue = float(sim.view_360(customer_id)["financial"]["total_bills"])
    assert features["total_revenue"] == pytest.approx(revenue)

    assert xiva_main(["status", "--repo", str(repo), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["online_keys"] == len(everyone)
    assert "usage" not in status.get("problems", {})

    segdir = tmp_path / "segments"
    segdir.mkdir()
    (segdir / "s.yaml").write_text(SEGMENTS)
    toronto = sorted(c for c, city in zip(everyone, cities, strict=True) if city == "Toronto")
    assert toronto
    out = seg(capsys, repo, segdir, "sizes")
    assert out.splitlines()[0].startswith(f"toronto\t{len(toronto)}\t")
    out = seg(capsys, repo, segdir, "refresh")
    assert f"toronto\tsize={len(toronto)}\tjoined={len(toronto)}\tleft=0" in out

    # A CA that did not sign the server: the job stops at once, naming the fix.
    from xiva_source.jobs.errors import MaterializationFailedError

    feast_env.monkeypatch.setenv("REDIS_TLS_CA_FILE", str(redis_mtls.files.other_ca))
    with pytest.raises(MaterializationFailedError) as info:
        run_materialization(repo, progress=False)
    assert "certificate verify failed" in info.value.problem
    assert "REDIS_TLS_CA_FILE" in (info.value.fix or "")


@pytest.fixture
def tls_cluster_repo(
    feast_env: FeastEnv, redis_tls_cluster: TlsCluster, redis_ns: str, tmp_path: Path
) -> Iterator[Path]:
    """A repository applied with its online store on the TLS-only Redis Cluster."""
    yield from _tls_repo(feast_env, redis_tls_cluster, "redis_cluster", redis_ns, tmp_path)


def test_the_flow_on_a_tls_cluster(
    tls_cluster_repo: Path,
    feast_env: FeastEnv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = tls_cluster_repo
    dwh = feast_env.dwh
    everyone = sorted({*dwh.shared_ids, *dwh.dwh_only_ids, *dwh.xiva_only_ids})

    summary = run_materialization(repo, progress=False)
    assert summary.status == "ok", summary.line()
    cities = online(repo, everyone, ["customer_features:city"])["city"]
    assert sum(c is not None for c in cities) > len(everyone) // 2
    assert online_async(repo, everyone, ["customer_features:city"])["city"] == cities

    segdir = tmp_path / "segments"
    segdir.mkdir()
    (segdir / "s.yaml").write_text(SEGMENTS)
    toronto = [c for c in cities if c == "Toronto"]
    out = seg(capsys, repo, segdir, "sizes")
    assert f"population: {len(everyone)} customer(s)" in out
    assert out.splitlines()[0].startswith(f"toronto\t{len(toronto)}\t")
