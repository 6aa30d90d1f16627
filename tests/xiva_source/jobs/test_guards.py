"""Guards against runs that freeze the store (issue 8, item 9): a future --end-date, an empty
pull, an online store that was wiped, a corrupted run state. Real Xiva simulator, PostgreSQL and
Redis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv
from tests.support.xiva_source.jobs import all_ids, iter_project_keys, online, store_of
from xiva_source.cli import main
from xiva_source.jobs.errors import MaterializationConfigError, MaterializationStateError
from xiva_source.jobs.materialize import run_materialization
from xiva_source.timeutil import utc_now


def _watermark(repo: Path, view: str) -> object:
    store = store_of(repo)
    return store.registry.get_feature_view(
        view, store.project, allow_cache=False
    ).most_recent_end_time


def test_an_end_date_in_the_future_is_refused_with_exit_2(
    feast_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["materialize", "--repo", str(feast_repo), "--end-date", "2030-01-01"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is in the future" in err and "Traceback" not in err
    assert _watermark(feast_repo, "customer_features") is None
    # A small clock skew is tolerated.
    soon = utc_now() + timedelta(minutes=1)
    assert (
        run_materialization(feast_repo, end_date=soon, views=["customer_dwh_features"]).status
        == "ok"
    )
    with pytest.raises(MaterializationConfigError):
        run_materialization(feast_repo, end_date=utc_now() + timedelta(hours=1))


def test_an_empty_first_pull_does_not_move_the_watermark_and_is_reported(
    feast_repo: Path, feast_env: FeastEnv, pg_url: str
) -> None:
    import sqlalchemy as sa

    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.dwh import get_engine

    create_demo_dwh(pg_url, feast_env.sim, seed=11)
    with get_engine(pg_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM customer_features_view"))
    feast_env.monkeypatch.setenv("DWH_URL", pg_url)
    feast_env.set_mode("dwh")

    summary = run_materialization(feast_repo, progress=False)

    line = summary.line()
    assert summary.status == "ok"
    assert "returned no rows reading from the beginning" in line
    assert _watermark(feast_repo, "customer_features") is None
    assert _watermark(feast_repo, "customer_dwh_features") is None
    # Rows arrive: the next run reads everything (its watermark never moved).
    dwh = create_demo_dwh(pg_url, feast_env.sim, seed=11)
    again = run_materialization(feast_repo, progress=False)
    assert again.report.rows_by_source["dwh"] >= len(dwh.customer_ids)
    assert _watermark(feast_repo, "customer_features") is not None


def test_a_wiped_online_store_is_noticed_and_reloaded(
    feast_repo: Path, feast_env: FeastEnv
) -> None:
    import redis

    from tests.support.services import REDIS_URL

    feast_env.set_mode("dwh")
    first = run_materialization(feast_repo, progress=False)
    ids = all_ids(feast_env.sim, feast_env.dwh)[:50]
    before = online(feast_repo, ids)
    project = store_of(feast_repo).project
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(*iter_project_keys(project))  # Redis restarted empty
    client.close()

    second = run_materialization(feast_repo, progress=False)

    line = second.line()
    assert "reload=wiped" in line and "marker is missing" in line
    assert second.rows == first.rows
    assert online(feast_repo, ids) == before
    third = run_materialization(feast_repo, progress=False)
    assert "reload=no" in third.line()


def test_a_corrupted_mode_stops_incremental_runs_and_a_full_run_rewrites_it(
    feast_repo: Path, feast_env: FeastEnv
) -> None:
    import redis

    from tests.support.services import REDIS_URL

    feast_env.set_mode("dwh")
    assert run_materialization(feast_repo, progress=False).status == "ok"
    state = f"xiva_source:materialize:state:{store_of(feast_repo).project}"
    client = redis.Redis.from_url(REDIS_URL)
    client.hset(state, "mode:customer_dwh_features", "sideways")
    before = _watermark(feast_repo, "customer_dwh_features")

    with pytest.raises(MaterializationStateError) as info:
        run_materialization(feast_repo, progress=False)

    assert info.value.exit_code == info.value.summary.exit_code == 4
    assert "'mode:customer_dwh_features'" in str(info.value) and "'sideways'" in str(info.value)
    assert "xiva-source materialize --full --view customer_dwh_features" in info.value.fix
    assert _watermark(feast_repo, "customer_dwh_features") == before
    full = run_materialization(
        feast_repo, progress=False, full=True, views=["customer_dwh_features"]
    )
    assert full.status == "ok" and "'mode:customer_dwh_features'" in full.line()
    assert client.hget(state, "mode:customer_dwh_features") == b"dwh"
    client.close()
    again = run_materialization(feast_repo, progress=False)
    assert again.status == "ok" and again.reload == "no" and "corrupted" not in again.line()
