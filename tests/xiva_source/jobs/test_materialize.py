"""The cron-safe materialization job: lock, summary line, exit codes, watermark, incremental runs.

Everything is real: the session's Xiva simulator, Redis (the online store and the lock),
PostgreSQL or SQLite for the DWH, and a copy of ``feature_repo`` applied under a project named
after the test's Redis namespace (so the namespace cleanup removes its keys).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from tests.support.feast import FeastEnv
from tests.support.services import SIM_PASSWORD
from xiva_source.cli import main
from xiva_source.feast_plugin.online_store import online_redis_client
from xiva_source.feast_plugin.redis_format import RedisLayout
from xiva_source.feast_plugin.run_state import RedisRunState
from xiva_source.jobs.errors import MaterializationConfigError, MaterializationFailedError
from xiva_source.jobs.expiry import extend_online_expiry
from xiva_source.jobs.locks import LockHolder, RedisMaterializationLock, lock_for_store
from xiva_source.jobs.materialize import run_materialization
from xiva_source.timeutil import utc_now

if TYPE_CHECKING:
    from feast import FeatureStore

    from xiva_source.simulator import XivaSimulator

SUMMARY_RE = re.compile(
    r"^materialize ok mode=(?P<mode>\w+) rows (?P<rows>(?:\w+=\d+ ?)+) views=(?P<views>\d+) "
    r"xiva_calls=\d+ fallbacks=(?P<fallbacks>\d+) failed_customers=\d+ "
    r"pending_retries=(?:\d+|unknown) malformed=\d+ (?:\w+=\w+ )*duration=\d+\.\ds"
)


def cli(argv: list[str]) -> int:
    """``xiva-source materialize ARGV``, in process."""
    return main(["materialize", *argv])


def _store(repo: Path) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def _watermark(repo: Path, view: str) -> datetime | None:
    store = _store(repo)
    fv = store.registry.get_feature_view(view, store.project, allow_cache=False)
    return fv.most_recent_end_time


def _online(repo: Path, ids: list[str], features: list[str]) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = (
        _store(repo)
        .get_online_features(features=features, entity_rows=[{"customer_id": c} for c in ids])
        .to_dict()
    )
    return result


def _project_keys(redis_url: str, project: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        # The job's own keys (state, marker) end with the project too: entity keys only.
        keys = client.scan_iter(match=f"*{project}", count=1000)
        return [k for k in keys if not k.startswith(b"xiva_source:")]
    finally:
        client.close()


def _calls(sim: XivaSimulator, endpoint: str) -> int:
    return int(sum(sim.counters()["by_endpoint"].get(endpoint, {}).values()))


def test_first_run_loads_everyone_then_incremental_run_fetches_only_changed(
    repo: Path, ops_env: XivaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = ops_env
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")
    ids = sim.customer_ids()  # (lastUpdate, id) order: the first is the oldest
    oldest = sim.customer(ids[0])
    assert datetime.fromisoformat(oldest["lastUpdate"]) < datetime.now(UTC) - timedelta(days=365)

    sim.reset_counters()
    first = run_materialization(repo, progress=False)

    assert first.status == "ok" and first.exit_code == 0
    assert first.report.rows_by_source["xiva"] == len(ids)
    assert _calls(sim, "customer_360") == len(ids)
    assert {v.name for v in first.views} == {"customer_features", "customer_dwh_features"}
    assert all(v.start is None for v in first.views)  # never materialized: everything
    assert _watermark(repo, "customer_features") == first.views[0].end
    online = _online(repo, [ids[0]], ["customer_features:customer_status"])
    assert online["customer_status"] == [oldest["status"].lower()]  # years old, still loaded

    changed = sim.update_customers(count=10)
    sim.reset_counters()
    second = run_materialization(repo, progress=False)

    assert second.status == "ok"
    assert _calls(sim, "customer_360") == 10
    assert second.report.rows_by_source["xiva"] == 10
    view = next(v for v in second.views if v.name == "customer_features")
    assert view.start == next(v for v in first.views if v.name == "customer_features").end
    bills = [float(sim.view_360(c)["financial"]["total_bills"]) for c in changed]
    online = _online(repo, changed, ["customer_features:total_revenue"])
    assert online["total_revenue"] == pytest.approx(bills)


def test_cli_prints_one_summary_line_and_exits_0(
    repo: Path,
    feast_env: FeastEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")

    code = cli(["--repo", str(repo), "--no-progress"])

    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert len(out) == 1
    match = SUMMARY_RE.match(out[0])
    assert match, out[0]
    assert match["mode"] == "dwh" and match["views"] == "2" and match["fallbacks"] == "0"
    assert "dwh=" in match["rows"] and "xiva=" not in match["rows"]
    online = _online(repo, feast_env.dwh.customer_ids[:3], ["customer_dwh_features:churn_score"])
    assert len(online["churn_score"]) == 3
    assert any(v is not None for v in online["churn_score"])


def test_at_log_level_info_the_line_says_what_each_step_cost(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        assert (
            main(["--log-level", "INFO", "materialize", "--repo", str(repo), "--no-progress"]) == 0
        )
        assert (
            main(["--log-level", "INFO", "materialize", "--repo", str(repo), "--no-progress"]) == 0
        )
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    costs = re.search(
        r"; costs: load=\S+s plan=\S+s/2views pulls=\S+s/(\d+)rows writes=\S+s/(\d+)rows "
        r"expiry=\S+s/(\d+)keys state=\S+s dwh_lookback_rows=(\d+)",
        lines[1],
    )
    assert costs, lines[1]
    assert costs[1] == costs[2] == "0"  # nothing changed: nothing read, nothing written
    assert int(costs[3]) > 100  # the sweep: this small store whole
    assert costs[4] == "0"  # nothing arrived late


def test_auto_mode_falls_back_to_the_dwh_when_xiva_fails_and_exits_3(
    repo: Path,
    feast_env: FeastEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    monkeypatch.setenv("XIVA_API_PASSWORD", "wrong-password")

    code = cli(["--repo", str(repo), "--no-progress"])

    line = capsys.readouterr().err.strip()  # degraded: the line on stderr
    assert code == 3
    assert line.startswith("materialize degraded mode=auto")
    assert "fallbacks=1" in line
    assert "fallback: xiva failed" in line
    assert "wrong-password" not in line
    # Xiva was never read: Feast's watermark (every source online up to it) cannot move, and
    # xiva_first customer_features cells are Xiva's: unknown, so not written (never the DWH's).
    assert _watermark(repo, "customer_features") is None
    assert _watermark(repo, "customer_dwh_features") is not None
    online = _online(repo, feast_env.dwh.shared_ids[:5], ["customer_features:customer_tier"])
    assert online["customer_tier"] == [None] * 5
    # Xiva is back: everything is read and merged.
    monkeypatch.setenv("XIVA_API_PASSWORD", SIM_PASSWORD)
    assert run_materialization(repo, progress=False).status == "ok"
    assert _watermark(repo, "customer_features") is not None
    online = _online(repo, feast_env.dwh.shared_ids[:5], ["customer_features:customer_tier"])
    assert any(tier is not None for tier in online["customer_tier"])


def test_only_source_failing_exits_1_and_keeps_online_values_and_watermark(
    repo: Path,
    feast_env: FeastEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    assert run_materialization(repo, progress=False).status == "ok"
    watermark = _watermark(repo, "customer_features")
    ids = feast_env.dwh.shared_ids[:40]
    refs = ["customer_features:total_revenue", "customer_features:customer_tier"]
    before = _online(repo, ids, refs)
    feast_env.sim.update_customers(ids=ids)  # Xiva has newer values...

    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "xiva")
    monkeypatch.setenv("XIVA_API_PASSWORD", "wrong-password")  # ...that cannot be read
    code = cli(["--repo", str(repo), "--no-progress", "--view", "customer_features"])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith("materialize failed mode=xiva")
    assert "Data source 'xiva' failed" in line  # the cause...
    assert "XIVA_API_PASSWORD" in line and "watermark did not move" in line  # ...and the fix
    assert "wrong-password" not in captured.err
    assert _online(repo, ids, refs) == before
    assert _watermark(repo, "customer_features") == watermark


def test_second_run_while_the_lock_is_held_skips_and_touches_nothing(
    repo: Path,
    ops_env: XivaSimulator,
    redis_url: str,
    project: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = _store(repo)
    lock = lock_for_store(store, online_redis_client(store.config))
    assert isinstance(lock, RedisMaterializationLock)
    ops_env.reset_counters()
    with lock.held() as holder:
        assert holder is None  # we hold it, like a running job would
        code = cli(["--repo", str(repo)])
    line = capsys.readouterr().out.strip()

    assert code == 0
    assert re.fullmatch(
        rf"skipped: another materialization holds the lock \(pid {os.getpid()} on \S+, since "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\)",
        line,
    ), line
    assert ops_env.counters()["total"] == 0
    assert _project_keys(redis_url, project) == []
    assert _watermark(repo, "customer_features") is None
    # Released: the next run goes ahead.
    assert run_materialization(repo, views=["customer_dwh_features"]).status == "ok"


def test_a_dead_runs_redis_lock_expires(repo: Path, redis_url: str, project: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name = f"xiva_source:materialize:lock:{project}"
    # What a run killed with -9 leaves behind: its record, no more renewals.
    client.set(name, LockHolder.me().dumps(), px=300)
    skipped = run_materialization(repo, views=["customer_dwh_features"])
    time.sleep(0.35)
    after = run_materialization(repo, views=["customer_dwh_features"])
    client.close()

    assert skipped.status == "skipped" and skipped.holder is not None
    assert after.status == "ok" and after.rows > 0


def test_redis_lock_is_renewed_while_held_and_released_only_by_its_owner(
    redis_url: str, redis_ns: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    mine = RedisMaterializationLock(client, f"{redis_ns}:lock", ttl=0.3)
    other = RedisMaterializationLock(client, f"{redis_ns}:lock", ttl=0.3)
    assert mine.acquire() is None
    time.sleep(0.5)  # longer than the ttl: only the renewal keeps it
    assert mine.owned()
    holder = other.acquire()
    other.release()  # not the owner: must not delete it
    assert holder is not None and holder.pid == os.getpid()
    assert client.exists(f"{redis_ns}:lock") == 1
    mine.release()
    assert client.exists(f"{redis_ns}:lock") == 0
    client.close()


def test_successful_run_extends_expiry_of_keys_it_did_not_rewrite(
    repo: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, project: str
) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    first = run_materialization(repo, progress=False)
    client = redis.Redis.from_url(redis_url)
    keys = _project_keys(redis_url, project)

    def ttl(key: bytes) -> int:
        return int(client.ttl(key))  # type: ignore[arg-type]

    assert len(keys) > 100
    assert 900 < ttl(keys[0]) <= 1000
    client.expire(keys[0], 5)  # as if swept long ago: about to expire...
    # ...after the last full reads (a key they wrote, or a write or a sweep since, expires at
    # their start + ttl or later; one that expires earlier was not written since: left alone).
    online = [fv.name for fv in _store(repo).list_feature_views() if fv.online]
    RedisRunState(client, project).save_full_reads(online, utc_now() - timedelta(seconds=2000))
    other = (
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val="x")])
        )
        + f"other_{project}".encode()
    )  # another project whose name ends with ours
    client.hset(other, "f", "v")  # type: ignore[arg-type]

    second = run_materialization(repo, progress=False)

    assert second.rows == 0  # nothing changed: nothing rewritten...
    assert first.expiry_extended == 0  # a full run: the writes themselves set every expiry
    assert second.expiry_extended >= len(keys)
    assert ttl(keys[0]) > 900  # ...and yet the expiry counts from this run
    assert ttl(other) == -1
    layout = RedisLayout.of(_store(repo).config, ["customer_id"])
    assert extend_online_expiry(client, layout, 0) == 0
    gone = (
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val="gone")])
        )
        + project.encode()
    )  # a customer no source has any more
    client.hset(gone, "f", "v")  # type: ignore[arg-type]
    client.expire(gone, 50)

    reload = run_materialization(repo, progress=False, full=True)  # ignores the watermark
    assert reload.rows == first.rows
    assert all(view.start is None for view in reload.views)
    assert reload.expiry_extended == 0 and 0 < ttl(gone) <= 50  # left to expire
    assert ttl(keys[1]) > 900
    later = run_materialization(repo, progress=False)
    assert later.rows == 0 and later.expiry_extended == len(keys)  # every key it wrote...
    assert 0 < ttl(gone) <= 50  # ...but not the one it did not write: never extended again
    client.close()


def test_config_errors_exit_2(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["--repo", str(tmp_path / "nowhere")]) == 2
    assert "No feature_store.yaml" in capsys.readouterr().err
    assert cli(["--repo", str(repo), "--view", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Unknown feature view(s): nope" in err and "customer_features" in err
    assert cli(["--end-date", "yesterday"]) == 2
    with pytest.raises(MaterializationConfigError, match="Unknown feature view"):
        run_materialization(repo, views=["nope"])


def test_failed_error_carries_the_summary(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    monkeypatch.setenv("DWH_URL", "sqlite:////nonexistent-dir/none.sqlite")
    with pytest.raises(MaterializationFailedError) as info:
        run_materialization(repo, progress=False)
    assert info.value.summary.status == "failed"
    assert info.value.summary.exit_code == 1
    assert info.value.summary.views == []
    assert "DWH_URL" in info.value.summary.line()
    # The error carries the cause's problem and fix (the CLI prints them, no isinstance ladder).
    assert info.value.problem.startswith("view customer_")
    assert "Data source 'dwh' failed" in info.value.problem
    assert "DWH_URL" in info.value.fix and "watermark did not move" in info.value.fix
    assert info.value.exit_code == 1


def test_unreachable_redis_fails_with_the_cause_and_exits_1(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1

    code = cli(["--repo", str(repo), "--no-progress"])

    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("materialize failed")
    assert "the lock: the online store (Redis) failed" in err and "Check REDIS_URL" in err
    assert _watermark(repo, "customer_features") is None


def test_auto_mode_with_the_dwh_down_serves_xiva_and_keeps_dwh_only_values(
    repo: Path,
    feast_env: FeastEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    assert run_materialization(repo, progress=False).status == "ok"
    dwh_watermark = _watermark(repo, "customer_dwh_features")
    ids = feast_env.dwh.shared_ids[:20]
    churn_before = _online(repo, ids, ["customer_dwh_features:churn_score"])["churn_score"]
    changed = feast_env.sim.update_customers(ids=ids[:5])

    # The DWH goes away (nothing listens on port 1); Xiva still works.
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root:dwh-pw@127.0.0.1:1/test")
    code = cli(["--repo", str(repo), "--no-progress"])

    captured = capsys.readouterr()
    line = captured.err.strip()
    assert code == 3, captured.err
    assert line.startswith("materialize degraded mode=auto") and "xiva=5" in line
    assert "\n" not in line  # one line: nothing else on stderr at the default level
    assert "fallback: dwh failed, customer_dwh_features kept its previous values" in line
    assert "dwh-pw" not in captured.out + captured.err
    # customer_features was served from Xiva and its watermark moved; the DWH-only view kept both.
    assert _watermark(repo, "customer_dwh_features") == dwh_watermark
    after = _online(repo, changed, ["customer_features:total_revenue"])["total_revenue"]
    assert after == [
        pytest.approx(float(feast_env.sim.view_360(c)["financial"]["total_bills"])) for c in changed
    ]
    assert _online(repo, ids, ["customer_dwh_features:churn_score"])["churn_score"] == churn_before


def test_auto_mode_with_both_sources_down_exits_1(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root@127.0.0.1:1/test")
    monkeypatch.setenv("XIVA_API_PASSWORD", "wrong-password")

    code = cli(["--repo", str(repo), "--no-progress"])

    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and err.startswith("materialize failed mode=auto")
    assert "every source failed" in err and "wrong-password" not in err
    assert _watermark(repo, "customer_features") is None
