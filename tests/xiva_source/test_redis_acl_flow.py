"""The whole flow as the least-privilege Redis users of docs/operations.md ("Security"): the
``redis_acl`` server applies the page's ``ACL SETUSER`` lines (default user off), then
``feast apply``, the job, ``status`` and live refresh run as ``loyalty-job``, stock reads (sync
and async) as ``loyalty-serving``, segmentation as ``loyalty-segmentation``; Redis's ACL log must
show no denied command, and each user is refused what it must not do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.feast import FeastEnv, make_repo
from tests.support.flow import online, online_async, seg
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.tls import ACL_PASSWORDS, ACL_PROJECT, AclRedis, acl_command, acl_lines
from xiva_source.cli import main as xiva_main
from xiva_source.jobs.materialize import run_materialization

SEGMENTS = "- name: toronto\n  rules:\n    - {'==': [{'var': 'city'}, 'Toronto']}\n"


@pytest.fixture
def acl_repo(feast_env: FeastEnv, redis_acl: AclRedis, tmp_path: Path) -> Iterator[Path]:
    """The repository (project ``loyalty``, as the ACL lines name it) applied as the job user."""
    feast_env.monkeypatch.setenv("REDIS_URL", redis_acl.url("loyalty-job"))
    feast_env.monkeypatch.setenv("XIVA_REDIS_PREFIX", "xiva")  # the lines' ~xiva:*
    feast_env.redis_url = redis_acl.url("loyalty-job")
    redis_acl.reset_log()
    suffix = uuid.uuid4().hex[:10]
    try:
        yield make_repo(tmp_path / "repo", ACL_PROJECT, snapshot_table=f"snap_{suffix}")
    finally:
        admin = redis_acl.admin()
        admin.flushall()  # the session's private server: nothing else lives there
        admin.close()
        import sqlalchemy as sa

        from xiva_source.dwh import get_engine

        with get_engine(feast_env.dwh_url).begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "snap_{suffix}"'))


def _as(env: FeastEnv, server: AclRedis, user: str) -> None:
    env.monkeypatch.setenv("REDIS_URL", server.url(user))


def test_the_whole_flow_as_the_documented_acl_users(
    acl_repo: Path,
    feast_env: FeastEnv,
    redis_acl: AclRedis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = acl_repo
    sim, dwh = feast_env.sim, feast_env.dwh
    everyone = sorted({*dwh.shared_ids, *dwh.dwh_only_ids, *dwh.xiva_only_ids})

    # The job user: the cron job twice (the second incremental), status, live refresh.
    summary = run_materialization(repo, progress=False)
    assert summary.status == "ok", summary.line()
    assert xiva_main(["materialize", "--repo", str(repo)]) == 0
    capsys.readouterr()
    assert xiva_main(["status", "--repo", str(repo), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["online_keys"] == len(everyone), status
    assert not status.get("problems"), status
    customer_id = dwh.shared_ids[1]
    sim.update_customers(ids=[customer_id])
    assert xiva_main(["refresh", customer_id, "--repo", str(repo)]) == 0
    revenue = float(sim.view_360(customer_id)["financial"]["total_bills"])
    capsys.readouterr()

    # The serving user: stock reads, sync and async (feast serve's path).
    _as(feast_env, redis_acl, "loyalty-serving")
    now = online(repo, [customer_id], ["customer_features:total_revenue"])
    assert now["total_revenue"][0] == pytest.approx(revenue)
    cities = online(repo, everyone, ["customer_features:city"])["city"]
    assert online_async(repo, everyone, ["customer_features:city"])["city"] == cities

    # The segmentation user: sizes, refresh (memberships, events, the served view), members.
    _as(feast_env, redis_acl, "loyalty-segmentation")
    segdir = tmp_path / "segments"
    segdir.mkdir()
    (segdir / "s.yaml").write_text(SEGMENTS)
    toronto = sorted(c for c, city in zip(everyone, cities, strict=True) if city == "Toronto")
    assert toronto
    out = seg(capsys, repo, segdir, "sizes")
    assert out.splitlines()[0].startswith(f"toronto\t{len(toronto)}\t")
    out = seg(capsys, repo, segdir, "refresh")
    assert f"toronto\tsize={len(toronto)}\tjoined={len(toronto)}\tleft=0" in out
    assert seg(capsys, repo, segdir, "members", "toronto", "--stored").split() == toronto
    assert "toronto" in seg(capsys, repo, segdir, "events")

    # The serving user reads the served segment flags too.
    _as(feast_env, redis_acl, "loyalty-serving")
    flags = online(repo, toronto[:3], ["customer_segments:segments"])
    assert all("toronto" in (f or []) for f in flags["segments"]), flags

    # Nothing the flow sent was denied.
    assert redis_acl.denied() == []


def test_each_user_is_refused_what_it_must_not_do(redis_acl: AclRedis) -> None:
    job = redis.Redis.from_url(redis_acl.url("loyalty-job"))
    serving = redis.Redis.from_url(redis_acl.url("loyalty-serving"))
    segmentation = redis.Redis.from_url(redis_acl.url("loyalty-segmentation"))
    default = redis.Redis(host="127.0.0.1", port=redis_acl.port)
    try:
        for client in (job, serving, segmentation):
            for command in (("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "*"), ("INFO",)):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    client.execute_command(*command)
        with pytest.raises(redis.exceptions.NoPermissionError):
            serving.hset(f"key-of-{ACL_PROJECT}", "f", "v")  # read-only
        with pytest.raises(redis.exceptions.NoPermissionError):
            job.set("another-app:key", "v")  # not the project's keys
        with pytest.raises(redis.exceptions.NoPermissionError):
            segmentation.set("xiva_source:materialize:lock:other", "v")
        with pytest.raises(redis.exceptions.AuthenticationError):
            default.ping()  # the default user is off
    finally:
        for client in (job, serving, segmentation, default):
            client.close()
        redis_acl.reset_log()


def test_the_acl_users_work_on_a_cluster(redis_cluster: RedisClusterNodes) -> None:
    """The same lines on every node of a cluster (the default user left on: the cluster is the
    session's, shared): a cluster client as each user finds the slot map and does its work."""
    from xiva_source.redis_client import connect_redis

    users = [line for line in acl_lines() if "default" not in line.split()[2:3]]
    for port in redis_cluster.ports:
        admin = redis.Redis(host="127.0.0.1", port=port)
        try:
            for line in users:
                assert admin.execute_command(*acl_command(line))
            admin.acl_log_reset()
        finally:
            admin.close()
    nodes = ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports)
    suffix = uuid.uuid4().hex[:8]
    keys = [f"{i}-{suffix}-{ACL_PROJECT}" for i in range(20)]  # Feast's keys end with the project

    def as_user(user: str) -> Any:
        url = f"redis://{user}:{ACL_PASSWORDS[user]}@{nodes}"
        return connect_redis(url, redis_type="redis_cluster")

    job, serving = as_user("loyalty-job"), as_user("loyalty-serving")
    segmentation = as_user("loyalty-segmentation")
    try:
        for key in keys:
            job.hset(key, "f", "v")
        assert [serving.hget(k, "f") for k in keys] == [b"v"] * len(keys)
        segmentation.xadd(f"segmentation:{{{ACL_PROJECT}}}:events-{suffix}", {"e": "joined"})
        with pytest.raises(redis.exceptions.NoPermissionError):
            serving.hset(keys[0], "f", "w")
    finally:
        for key in keys:
            job.delete(key)
        job.delete(f"segmentation:{{{ACL_PROJECT}}}:events-{suffix}")
        denied: list[Any] = []
        for port in redis_cluster.ports:
            admin = redis.Redis(host="127.0.0.1", port=port)
            log: list[dict[str, Any]] = admin.acl_log()  # type: ignore[assignment]
            denied += [  # all but the refused HSET above
                entry
                for entry in log
                if (str(entry.get("username")), str(entry.get("object")))
                != ("loyalty-serving", "hset")
            ]
            admin.acl_log_reset()
            for user in ACL_PASSWORDS:
                admin.acl_deluser(user)
            admin.close()
        for client in (job, serving, segmentation):
            client.close()
    assert denied == []
