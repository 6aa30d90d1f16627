"""Feast's Ray compute engine with our offline store: the same online values as in-process.

Two repository copies (two projects) materialize the same window, one with the in-process engine,
one with ``batch_engine: ray.engine`` on a local Ray started once per session (2 CPUs); their
Redis hashes and ``get_online_features`` are compared cell for cell. The cron job's Ray routing is
checked the same way, and the DWH range split is checked to cover every customer exactly once.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis
import sqlalchemy as sa
import yaml
from feast import FeatureStore

from tests.support.feast import FeastEnv, make_repo
from tests.support.services import REDIS_URL, SIM_PASSWORD, SIM_USER
from tests.support.tiers import service
from xiva_source import dwh
from xiva_source.dwh.reads import customer_boundaries
from xiva_source.feast_plugin.offline_store import LoyaltyRetrievalJob
from xiva_source.feast_plugin.ray_support import PullSpec, ReadPart, plan_parts, read_part
from xiva_source.jobs.materialize import run_materialization
from xiva_source.pipeline.context import PullOptions
from xiva_source.pipeline.pull import pull_batches
from xiva_source.pipeline.report import PullReport
from xiva_source.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
VIEWS = ["customer_features", "customer_dwh_features"]
REFS = [
    "customer_features:customer_status",
    "customer_features:total_revenue",
    "customer_features:transaction_count",
    "customer_features:last_payment_date",
    "customer_features:customer_tier",
    "customer_features:city",
    "customer_features:birth_date",
    "customer_dwh_features:avg_transaction_value",
    "customer_dwh_features:lifetime_value",
    "customer_dwh_features:churn_score",
]
END = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
@service("ray")
def local_ray(feast_sim: Any, feast_dwh_url: str) -> Iterator[str]:
    """Ray on this machine, started once (2 CPUs, no dashboard); returns its address.

    Workers get the deployment's environment (they build the online store from it, as Ray
    workers in production get it from their image or ``runtime_env``)."""
    import ray

    env = {
        "XIVA_API_BASE_URL": feast_sim.base_url,
        "XIVA_API_USERNAME": SIM_USER,
        "XIVA_API_PASSWORD": SIM_PASSWORD,
        "DWH_URL": feast_dwh_url,
        "REDIS_URL": REDIS_URL,
    }
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    yield context.address_info["gcs_address"]  # type: ignore[attr-defined]
    ray.shutdown()


@pytest.fixture
def second_repo(feast_env: FeastEnv, tmp_path: Path) -> Iterator[Path]:
    """Another applied repository copy (its own project, snapshot table and Redis keys)."""
    suffix = uuid.uuid4().hex[:10]
    project = f"loyalty_{suffix}"
    yield make_repo(tmp_path / "ray_repo", project, snapshot_table=f"snap_{suffix}")
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    with dwh.get_engine(feast_env.dwh_url).begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "snap_{suffix}"'))


def use_ray(repo: Path, address: str | None = None) -> None:
    path = repo / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["batch_engine"] = {"type": "ray.engine", "write_concurrency": 2, "max_workers": 3}
    if address:
        config["batch_engine"]["ray_address"] = address
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def hashes(project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every Feast entity hash of ``project``, keyed by entity key (the project suffix cut off;
    the job's own state keys left out)."""
    client = redis.Redis.from_url(REDIS_URL)
    suffix = project.encode()
    out = {}
    for key in client.scan_iter(match=b"*" + suffix, count=1000):
        if client.type(key) != b"hash":
            continue
        fields: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
        if any(name.startswith(b"_ts:") for name in fields):  # Feast's entity hashes only
            out[key[: -len(suffix)]] = fields
    client.close()
    return out


def online(repo: Path, ids: list[str]) -> dict[str, list[Any]]:
    store = FeatureStore(repo_path=str(repo))
    return store.get_online_features(
        features=REFS, entity_rows=[{"customer_id": c} for c in ids]
    ).to_dict()


def assert_same_online(local: Path, on_ray: Path, ids: list[str]) -> None:
    local_project = FeatureStore(repo_path=str(local)).project
    ray_project = FeatureStore(repo_path=str(on_ray)).project
    expected, got = hashes(local_project), hashes(ray_project)
    assert len(expected) > 100
    assert got.keys() == expected.keys()
    for key, fields in expected.items():
        assert got[key] == fields, key
    assert online(on_ray, ids) == online(local, ids)


def all_ids(env: FeastEnv) -> list[str]:
    return sorted({*env.dwh.customer_ids, *env.sim.customer_ids()})


# --------------------------------------------------------------------------------------------
# feast materialize


@pytest.mark.parametrize("mode", ["dwh", "auto"])
def test_feast_materialize_on_ray_writes_what_the_local_engine_writes(
    local_ray: str, feast_env: FeastEnv, feast_repo: Path, second_repo: Path, mode: str
) -> None:
    feast_env.set_mode(mode)
    use_ray(second_repo)
    start = END - timedelta(days=3650 * 3)
    FeatureStore(repo_path=str(feast_repo)).materialize(start, END, VIEWS)
    FeatureStore(repo_path=str(second_repo)).materialize(start, END, VIEWS)
    assert_same_online(feast_repo, second_repo, all_ids(feast_env))


def test_feast_cli_materialize_on_a_ray_address(
    local_ray: str, feast_env: FeastEnv, feast_repo: Path, second_repo: Path
) -> None:
    """``feast materialize`` in another process, connected to the running Ray by its address
    (as a deployment names its cluster with ``ray_address``, e.g. ``ray://head:10001``)."""
    feast_env.set_mode("dwh")
    use_ray(second_repo, address=local_ray)
    start = END - timedelta(days=3650 * 3)
    FeatureStore(repo_path=str(feast_repo)).materialize(start, END, VIEWS)
    feast = Path(sys.executable).parent / "feast"
    stamp = "%Y-%m-%dT%H:%M:%S"
    run = subprocess.run(
        [
            str(feast),
            "-c",
            str(second_repo),
            "materialize",
            start.strftime(stamp),
            END.strftime(stamp),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert_same_online(feast_repo, second_repo, all_ids(feast_env))


def test_the_job_carries_on_after_feast_materialize_on_ray(
    local_ray: str, feast_env: FeastEnv, feast_repo: Path, second_repo: Path
) -> None:
    """Each Ray read task records its part of the pull; the job then carries on from Feast's end
    (no reload) and the online values are a local job's."""
    feast_env.set_mode("dwh")  # DWH pulls: cut into parts, each recorded by its own task
    use_ray(second_repo)
    FeatureStore(repo_path=str(second_repo)).materialize_incremental(END)
    project = FeatureStore(repo_path=str(second_repo)).project
    client = redis.Redis.from_url(REDIS_URL)
    recorded: list[bytes] = client.hkeys(f"xiva_source:materialize:state:{project}")  # type: ignore[assignment]
    client.close()
    assert len([k for k in recorded if k.startswith(b"feast:customer_features:")]) == 3

    after = run_materialization(second_repo, end_date=END + timedelta(seconds=1), progress=False)

    assert after.status == "ok" and after.reload == "no", after.line()
    assert {v.name: v.starts for v in after.views} == {
        "customer_dwh_features": {"dwh": END},
        "customer_features": {"dwh": END},
    }
    local = run_materialization(feast_repo, end_date=END, progress=False)
    assert local.status == "ok"
    assert_same_online(feast_repo, second_repo, all_ids(feast_env))


# --------------------------------------------------------------------------------------------
# the cron job


@pytest.mark.parametrize("mode", ["dwh", "auto"])
def test_cron_job_on_ray_writes_what_the_local_job_writes(
    local_ray: str, feast_env: FeastEnv, feast_repo: Path, second_repo: Path, mode: str
) -> None:
    feast_env.set_mode(mode)
    use_ray(second_repo)
    local = run_materialization(feast_repo, end_date=END, progress=False)
    on_ray = run_materialization(second_repo, end_date=END, progress=False)
    assert " engine=local " in local.line()
    assert " engine=ray " in on_ray.line(), on_ray.line()
    assert on_ray.status == local.status == "ok"
    assert on_ray.exit_code == local.exit_code
    assert on_ray.report.rows_by_source == local.report.rows_by_source
    assert [(v.name, v.rows, v.marks) for v in on_ray.views] == [
        (v.name, v.rows, v.marks) for v in local.views
    ]
    assert_same_online(feast_repo, second_repo, all_ids(feast_env))
    # The next run is incremental from the watermarks the Ray run stored.
    again = run_materialization(second_repo, end_date=END + timedelta(seconds=1), progress=False)
    assert again.status == "ok" and again.reload == "no" and " engine=ray " in again.line()


def test_cron_job_on_ray_keeps_the_fallback_semantics(
    local_ray: str, feast_env: FeastEnv, feast_repo: Path, second_repo: Path
) -> None:
    """auto mode with the DWH down: the same degraded outcome, kept view and line as local."""
    feast_env.set_mode("auto")
    use_ray(second_repo)
    bad = "postgresql+psycopg://root@127.0.0.1:1/nowhere"
    feast_env.monkeypatch.setenv("DWH_URL", bad)
    settings = load_settings(repo_path=feast_repo)
    local = run_materialization(feast_repo, end_date=END, progress=False, settings=settings)
    on_ray = run_materialization(second_repo, end_date=END, progress=False, settings=settings)
    assert local.exit_code == on_ray.exit_code == 3
    assert on_ray.kept_views == local.kept_views == ["customer_dwh_features"]
    assert on_ray.report.fallbacks == local.report.fallbacks
    assert on_ray.report.rows_by_source == local.report.rows_by_source
    assert_same_online(feast_repo, second_repo, all_ids(feast_env))


# --------------------------------------------------------------------------------------------
# split reads


def test_ranges_cover_every_row_exactly_once(pg_url: str) -> None:
    engine = dwh.get_engine(pg_url)
    ids: list[str | None] = [f"00000000-0000-4000-8000-{i:012d}" for i in range(40)]
    ids += [None, None, ids[5], ids[5], ids[39]]  # rows without an id; customers with 3 rows
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (customer_id uuid, v int, updated_at timestamp)"))
        conn.execute(
            sa.text("INSERT INTO t VALUES (:c, :v, :at)"),
            [
                {"c": c, "v": i, "at": datetime(2026, 1, 1) + timedelta(minutes=i)}
                for i, c in enumerate(ids)
            ],
        )
    spec = dwh.TableSpec(table="t")

    def read(customer_range: tuple[str | None, str | None] | None) -> list[tuple[Any, ...]]:
        table = pa.concat_tables(
            [
                pa.table({"customer_id": pa.array([], pa.string()), "v": pa.array([], pa.int64())}),
                *(
                    t.select(["customer_id", "v"])
                    for t in dwh.stream_rows(
                        pg_url,
                        spec,
                        columns=["customer_id", "v"],
                        timestamp_field="updated_at",
                        start_date=None,
                        end_date=None,
                        chunk_size=4,
                        customer_range=customer_range,
                    )
                ),
            ]
        )
        return sorted(zip(*table.to_pydict().values(), strict=True), key=repr)

    everything = read(None)
    assert len(everything) == len(ids)
    for parts in (1, 2, 4, 7, 60):  # 60: more parts than customers
        bounds = customer_boundaries(
            pg_url, spec, "updated_at", start_date=None, end_date=None, parts=parts
        )
        assert bounds == sorted(set(bounds)) and len(bounds) <= min(parts - 1, 40)
        edges: list[str | None] = [None, *bounds, None]
        pieces = [read((edges[i], edges[i + 1])) for i in range(len(edges) - 1)]
        assert sorted((row for piece in pieces for row in piece), key=repr) == everything
        for piece in pieces:  # a customer's rows stay in one range
            for other in pieces:
                if other is not piece:
                    assert not {r[0] for r in piece} & {r[0] for r in other}
        if bounds:  # a boundary id is in the range it opens, not the one it closes
            first = [r[0] for r in pieces[1]]
            assert bounds[0] in first and bounds[0] not in [r[0] for r in pieces[0]]
    assert read(("zzzz", None)) == []  # an empty range reads nothing
    assert [r for r in read((None, "0")) if r[0] is None] == [r for r in everything if r[0] is None]
    assert (
        customer_boundaries(
            pg_url, spec, "updated_at", start_date=datetime(2030, 1, 1), end_date=None, parts=4
        )
        == []
    )  # an empty window: one range


def test_parts_of_a_dwh_pull_are_the_in_process_pull(feast_env: FeastEnv, feast_repo: Path) -> None:
    feast_env.set_mode("dwh")
    store = FeatureStore(repo_path=str(feast_repo))
    settings = load_settings(repo_path=feast_repo)
    for view in VIEWS:
        fv = store.get_feature_view(view)
        names = tuple(f.name for f in fv.features)
        spec = PullSpec(
            source=fv.batch_source,
            settings=settings,
            feature_names=names,
            start=None,
            end=END,
            options=PullOptions.from_repo_config(store.config),
            chunk_size=50,
        )
        parts = plan_parts(spec, 5)
        assert len(parts) == 5 and not any(p.whole for p in parts)
        merged = PullReport()
        tables: list[pa.Table] = []
        for part in parts:
            report = PullReport()
            tables.extend(read_part(spec, part, report))
            merged.merge(report)
        expected_report = PullReport()
        expected = pa.concat_tables(
            pull_batches(
                fv.batch_source,  # type: ignore[arg-type]
                settings=settings,
                feature_names=names,
                start_date=None,
                end_date=END,
                chunk_size=50,
                report=expected_report,
            )
        )
        got = pa.concat_tables(tables)
        assert got.schema == expected.schema
        order = [("customer_id", "ascending"), ("event_timestamp", "ascending")]
        assert got.sort_by(order).equals(expected.sort_by(order))
        assert merged.rows_by_source == expected_report.rows_by_source
        assert merged.mode == expected_report.mode == "dwh"
    # pull_latest's spec: each range keeps its customers' latest rows, as pull_latest in-process.
    from xiva_source.feast_plugin.offline_store import LoyaltyOfflineStore

    fv = store.get_feature_view("customer_dwh_features")
    names = tuple(f.name for f in fv.features)
    # No created-timestamp column, no start (everything), as Feast's first run after a reload.
    args: tuple[Any, ...] = (store.config, fv.batch_source, ["customer_id"], list(names))
    args += ("updated_at", None, None, END)
    job = LoyaltyOfflineStore.pull_latest_from_table_or_query(*args)
    assert isinstance(job, LoyaltyRetrievalJob) and job._pull_spec is not None
    latest_spec = dataclasses.replace(job._pull_spec(), chunk_size=7)
    assert latest_spec.latest and latest_spec.for_feast
    parts = plan_parts(latest_spec, 3)
    assert len(parts) == 3
    got = pa.concat_tables(
        [t for part in parts for t in read_part(latest_spec, part, PullReport())]
    )
    expected = job.to_arrow()
    order = [("customer_id", "ascending")]
    assert got.select(expected.column_names).sort_by(order).equals(expected.sort_by(order))
    # A pull with a Xiva side is one part: the whole pull.
    feast_env.set_mode("auto")
    auto = PullSpec(
        source=store.get_feature_view("customer_features").batch_source,
        settings=load_settings(repo_path=feast_repo),
        feature_names=("city",),
        start=None,
        end=END,
        options=PullOptions(),
    )
    assert plan_parts(auto, 5) == [ReadPart(whole=True)]


@pytest.mark.usefixtures("subprocesses")
def test_the_package_imports_without_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import xiva_source.feast_plugin.offline_store, xiva_source.feast_plugin.ray_support\n"
        "import xiva_source.jobs.materialize\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
