"""Materialization benchmark: the job against stock Feast and the Redis write ceiling; Xiva budget.

Usage::

    .venv/bin/python bench/materialize.py --rows 100000,1000000 --xiva-customers 0   # the issue's
    .venv/bin/python bench/materialize.py --rows 20000 --xiva-customers 500          # a quick run

Part 1 (DWH -> Redis), at each size of ``--rows`` (comma-separated), each measurement in its own
subprocess so its peak memory (``VmHWM``) is its own:

- job: ``run_materialization`` in ``dwh`` mode, ``customer_features`` streamed from a fresh
  PostgreSQL schema (filled with ``create_demo_dwh``) into Redis; its rows/s are taken from its
  own summary line (``rows dwh=N ... duration=Ss``), as an operator would read them;
- stock: the same rows exported to parquet, a separate temporary Feast repo with a ``FileSource``
  and the same feature schema, ``store.materialize(...)`` (what ``feast materialize`` runs) with
  the default (local) engine into the same Redis under a different project;
- ceiling: the hashes the job wrote, read back (untimed) and written again under a third project
  with pipelined ``HSET`` + ``EXPIRE`` from Python (redis-py + hiredis, 10,000 rows per
  pipeline): what Redis takes from one Python process for ready-made hashes.

Each size prints rows/s of the three and the ratios job/ceiling and job/stock, and the job's peak
RSS (the issue's bound: 300 MB at 1,000,000 rows). The machine is shared: run it twice.

Redis memory (``--redis-memory N``, for docs/sizing.md): a throwaway ``redis-server`` on a free
port, N customers of both views written by the bulk writer (demo-like values: about 5% nulls,
statuses, tiers and cities from short lists, UUID customer ids), ``INFO memory`` before and after
and ``MEMORY USAGE`` of a sample of keys: bytes per customer.

Part 2 (Xiva): a simulator throttled per user (``--xiva-rate`` requests/s) and the client
configured at the same rate; a full pull of ``--xiva-customers`` customers reports the share of the
allowed rate it used, then 1% of the customers change and an incremental run reports its calls.

Needs PostgreSQL (db ``test``, user ``root`` on 127.0.0.1) and Redis on 127.0.0.1:6379. Schemas,
Redis keys and temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PG_BASE_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
VIEW = "customer_features"
SIM_USER = "bench"
SIM_PASSWORD = "bench-pass"  # the simulator's throwaway account


def _warm_imports() -> None:
    """Import what a run imports lazily, so the clock and the memory baseline exclude it."""
    import importlib

    for module in (
        "feast",
        "feast.infra.online_stores.redis",
        "xiva_source.xiva_api.client",
        "xiva_source.feast_plugin.offline_store",
        "xiva_source.feast_plugin.online_store",
        "xiva_source.pipeline.pull",
        "xiva_source.features.extractor",
    ):
        importlib.import_module(module)


def _peak_rss_mb() -> float:
    """This process's peak resident size (MB) since it started.

    ``/proc/self/status`` VmHWM, not ``getrusage``: Linux carries ``ru_maxrss`` over ``execve``,
    so a worker would report its parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _project_repo(work: Path, project: str, online_store: dict[str, Any] | None = None) -> Path:
    """A copy of feature_repo with its own project name and a local registry."""
    repo = work / f"repo-{project}"
    shutil.copytree(
        ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__", "*.db")
    )
    config_path = repo / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["project"] = project
    config["registry"] = {"registry_type": "file", "path": str(repo / "registry.db")}
    if online_store is not None:
        config["online_store"] = online_store
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def _apply(repo: Path) -> None:
    subprocess.run(
        [str(ROOT / ".venv/bin/feast"), "-c", str(repo), "apply"],
        check=True,
        capture_output=True,
    )


# --------------------------------------------------------------------------------------------
# Workers (each runs in its own process and prints one JSON line)


def worker_project(args: argparse.Namespace) -> dict[str, Any]:
    """This project's job, dwh mode, one view, into Redis; rows/s from its summary line."""
    os.environ.update(
        {
            "DWH_URL": args.dwh_url,
            "REDIS_URL": REDIS_URL,
            "FEATURE_STORE_DATA_SOURCE": "dwh",
        }
    )
    from xiva_source.jobs.materialize import run_materialization

    _warm_imports()
    repo = Path(args.repo)
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    summary = run_materialization(repo, views=[VIEW], progress=False)
    elapsed = time.perf_counter() - started
    line = summary.line()
    return {
        "rows": summary.rows,
        "seconds": elapsed,
        "line_rows": _line_rows(line),
        "line_seconds": _line_seconds(line),
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "line": line,
    }


def _line_rows(line: str) -> int:
    """``rows dwh=N xiva=M`` of a summary line, summed."""
    import re

    match = re.search(r" rows ((?:\w+=\d+ ?)+) views=", line)
    if not match:
        raise ValueError(f"no rows in the summary line: {line}")
    return sum(int(part.split("=")[1]) for part in match.group(1).split())


def _line_seconds(line: str) -> float:
    """``duration=S.Ss`` of a summary line."""
    import re

    match = re.search(r" duration=([\d.]+)s", line)
    if not match:
        raise ValueError(f"no duration in the summary line: {line}")
    return float(match.group(1))


def worker_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Pipelined HSET + EXPIRE of the job's own hashes (read back untimed) under another project."""
    import redis

    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.feast_plugin.redis_scan import scan_entity_keys

    client = redis.Redis.from_url(REDIS_URL)
    source = RedisLayout(args.source_project, ("customer_id",))
    suffix, target = args.source_project.encode(), args.target_project.encode()
    batch_size, ttl = 10_000, 86400
    rows, seconds = 0, 0.0

    def write(keys: list[bytes]) -> float:
        read = client.pipeline(transaction=False)
        for key in keys:
            read.hgetall(key)  # type: ignore[arg-type]  # bytes keys work
        hashes = read.execute()
        started = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for key, mapping in zip(keys, hashes, strict=True):
            new_key = key[: -len(suffix)] + target
            pipe.hset(new_key, mapping=mapping)
            pipe.expire(new_key, ttl)
        pipe.execute()
        return time.perf_counter() - started

    keys: list[bytes] = []
    for key in scan_entity_keys(client, source, count=batch_size, unique=False):
        keys.append(key)
        if len(keys) >= batch_size:
            seconds += write(keys)
            rows += len(keys)
            keys = []
    if keys:
        seconds += write(keys)
        rows += len(keys)
    client.close()
    return {"rows": rows, "seconds": seconds}


def worker_stock(args: argparse.Namespace) -> dict[str, Any]:
    """Stock Feast: FileSource (parquet) -> store.materialize -> Redis, default engine."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    store.materialize(
        start_date=datetime(2000, 1, 1, tzinfo=UTC),
        end_date=datetime.now(UTC),
        feature_views=[VIEW],
    )
    elapsed = time.perf_counter() - started
    return {
        "rows": int(args.rows),
        "seconds": elapsed,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_xiva(args: argparse.Namespace) -> dict[str, Any]:
    """Full and 1%-incremental Xiva pulls against a throttled simulator."""
    from xiva_source.simulator import SimulatorConfig, XivaSimulator

    config = SimulatorConfig(
        customers=args.customers,
        seed=11,
        users={SIM_USER: SIM_PASSWORD},
        rate_limit_per_second=args.rate,
        access_token_lifetime=3600,
    )
    with XivaSimulator(config) as sim:
        os.environ.update(
            {
                "XIVA_API_BASE_URL": sim.base_url,
                "XIVA_API_USERNAME": SIM_USER,
                "XIVA_API_PASSWORD": SIM_PASSWORD,
                "XIVA_REQUESTS_PER_SECOND": str(args.rate),
                "REDIS_URL": REDIS_URL,
                "DWH_URL": f"sqlite:///{Path(args.repo).parent / 'xiva-snapshots.sqlite'}",
                "FEATURE_STORE_DATA_SOURCE": "xiva",
            }
        )
        from xiva_source.jobs.materialize import run_materialization

        _warm_imports()
        sim.reset_counters()
        started = time.perf_counter()
        full = run_materialization(args.repo, views=[VIEW], progress=False)
        full_seconds = time.perf_counter() - started
        full_counters = sim.counters()

        changed = max(1, args.customers // 100)
        sim.update_customers(count=changed)
        sim.reset_counters()
        started = time.perf_counter()
        incremental = run_materialization(args.repo, views=[VIEW], progress=False)
        incremental_seconds = time.perf_counter() - started
        incremental_counters = sim.counters()

    def n360(counters: dict[str, Any]) -> int:
        return int(sum(counters["by_endpoint"].get("customer_360", {}).values()))

    def n429(counters: dict[str, Any]) -> int:
        return int(sum(by.get("429", 0) for by in counters["by_endpoint"].values()))

    return {
        "customers": args.customers,
        "rate": args.rate,
        "full_calls": full_counters["total"],
        "full_429": n429(full_counters),
        "full_seconds": full_seconds,
        "full_rows": full.rows,
        "full_line": full.line(),
        "changed": changed,
        "incremental_calls": incremental_counters["total"],
        "incremental_360": n360(incremental_counters),
        "incremental_seconds": incremental_seconds,
        "incremental_rows": incremental.rows,
        "incremental_line": incremental.line(),
    }


# --------------------------------------------------------------------------------------------
# Orchestration


def _run_worker(kind: str, *extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *extra],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _stock_repo(work: Path, project: str, parquet: Path, project_repo: Path) -> Path:
    """A stock Feast repo whose view has the project's customer_features schema."""
    from feast import FeatureStore

    fv = FeatureStore(repo_path=str(project_repo)).get_feature_view(VIEW)
    repo = work / f"repo-{project}"
    repo.mkdir()
    fields = ",\n        ".join(f"Field(name={f.name!r}, dtype={f.dtype})" for f in fv.features)
    (repo / "definitions.py").write_text(
        f"""from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
source = FileSource(path={str(parquet)!r}, timestamp_field="updated_at")
{VIEW} = FeatureView(
    name={VIEW!r},
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        {fields}
    ],
    source=source,
)
"""
    )
    host, port = REDIS_URL.split("//", 1)[1].split("/")[0].split(":")
    config = {
        "project": project,
        "provider": "local",
        "registry": str(repo / "registry.db"),
        # The same store settings as the project's: entity expiry ONLINE_TTL_SECONDS (86400).
        "online_store": {
            "type": "redis",
            "connection_string": f"{host}:{port},db=0",
            "key_ttl_seconds": 86400,
        },
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return repo


def _export_parquet(dwh_url: str, path: Path, project_repo: Path) -> None:
    """The DWH table as parquet, with every column of the project's view (absent ones null)."""
    import pandas as pd
    import pyarrow as pa
    import sqlalchemy as sa
    from feast import FeatureStore
    from feast.types import from_feast_to_pyarrow_type

    fv = FeatureStore(repo_path=str(project_repo)).get_feature_view(VIEW)
    engine = sa.create_engine(dwh_url)
    frame = pd.read_sql("SELECT * FROM customer_features_view", engine)
    engine.dispose()
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    table = pa.Table.from_pandas(frame[["customer_id", "updated_at"]], preserve_index=False)
    for feature in fv.features:
        dtype = from_feast_to_pyarrow_type(feature.dtype)
        if feature.name in frame.columns:
            column = pa.array(frame[feature.name].astype(object).where(frame[feature.name].notna()))
            table = table.append_column(feature.name, column.cast(dtype))
        else:
            table = table.append_column(feature.name, pa.nulls(len(frame), dtype))
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def _delete_project_keys(project: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"*{project}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += int(client.delete(*batch))  # type: ignore[arg-type]
            batch = []
    if batch:
        deleted += int(client.delete(*batch))  # type: ignore[arg-type]
    client.close()
    return deleted


def bench_redis(rows: int, work: Path) -> dict[str, Any]:
    """Job vs stock vs the write ceiling at ``rows`` customers; returns the measurements."""
    import sqlalchemy as sa

    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.dwh import dispose_engines

    ns = uuid.uuid4().hex[:8]
    schema = f"bench_{ns}"
    engine = sa.create_engine(PG_BASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    dwh_url = f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    project, stock_project = f"bench_proj_{ns}", f"bench_stock_{ns}"
    ceiling_project = f"bench_ceil_{ns}"
    try:
        ids = [str(uuid.UUID(int=(i + 1) * 7919 + rows, version=4)) for i in range(rows)]
        t0 = time.perf_counter()
        create_demo_dwh(dwh_url, ids, seed=1, xiva_only_every=0, dwh_only_fraction=0.0)
        dispose_engines()
        print(f"  filled {rows:,} customers in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        os.environ["REDIS_URL"] = REDIS_URL
        os.environ["DWH_URL"] = dwh_url
        project_repo = _project_repo(work, project)
        _apply(project_repo)
        parquet = work / f"customers-{ns}.parquet"
        _export_parquet(dwh_url, parquet, project_repo)
        stock_repo = _stock_repo(work, stock_project, parquet, project_repo)
        _apply(stock_repo)

        print(f"  job ({rows:,}) ...", file=sys.stderr)
        mine = _run_worker("project", "--repo", str(project_repo), "--dwh-url", dwh_url)
        print(f"  ceiling ({rows:,}) ...", file=sys.stderr)
        ceiling = _run_worker(
            "ceiling", "--source-project", project, "--target-project", ceiling_project
        )
        print(f"  stock Feast ({rows:,}) ...", file=sys.stderr)
        stock = _run_worker("stock", "--repo", str(stock_repo), "--rows", str(rows))
        return {"rows": rows, "project": mine, "stock": stock, "ceiling": ceiling}
    finally:
        for name in (project, stock_project, ceiling_project):
            _delete_project_keys(name)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def bench_xiva(customers: int, rate: float, work: Path) -> dict[str, Any]:
    ns = uuid.uuid4().hex[:8]
    project = f"bench_xiva_{ns}"
    repo = _project_repo(work, project)
    try:
        os.environ["REDIS_URL"] = REDIS_URL
        _apply(repo)
        return _run_worker(
            "xiva", "--repo", str(repo), "--customers", str(customers), "--rate", str(rate)
        )
    finally:
        _delete_project_keys(project)


def _memory_tables(rng: Any, n: int, now: Any, types: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Demo-like feature columns of both views for ``n`` customers (about 5% nulls)."""
    import pyarrow as pa

    def col(name: str, values: Any) -> pa.Array:
        return pa.array(values, types[name], mask=rng.random(n) < 0.05)

    def choice(options: tuple[str, ...]) -> list[str]:
        return [options[i] for i in rng.integers(0, len(options), n)]

    def days(low: int, high: int) -> Any:
        ago = rng.integers(low, high, n).astype("timedelta64[D]")
        return (now - ago).astype("datetime64[D]").astype("datetime64[us]")

    return {
        VIEW: {
            "customer_status": col("customer_status", choice(("active", "inactive"))),
            "total_revenue": col("total_revenue", rng.uniform(0, 20_000, n).round(2)),
            "transaction_count": col("transaction_count", rng.integers(0, 120, n)),
            "last_payment_date": col("last_payment_date", days(0, 400)),
            "customer_tier": col("customer_tier", choice(("bronze", "silver", "gold", "platinum"))),
            "city": col("city", choice(("Toronto", "Montreal", "Vancouver", "Ottawa"))),
            "birth_date": col("birth_date", days(18 * 365, 90 * 365)),
            "outstanding_amount": col("outstanding_amount", rng.uniform(0, 500, n).round(2)),
        },
        "customer_dwh_features": {
            "avg_transaction_value": col("avg_transaction_value", rng.uniform(5, 150, n).round(2)),
            "lifetime_value": col("lifetime_value", rng.uniform(0, 60_000, n).round(2)),
            "churn_score": col("churn_score", rng.random(n).round(4)),
        },
    }


@contextmanager
def private_redis(work: Path) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free port (no persistence, its files in ``work``); its
    URL. The benchmarks' one way to start a Redis of their own."""
    import socket

    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=30)


def redis_memory(customers: int, work: Path) -> dict[str, Any]:
    """Bytes per customer in Redis: both views written by the bulk writer into a private Redis."""
    import numpy as np
    import pyarrow as pa
    import redis
    from feast import FeatureStore
    from feast.value_type import ValueType

    from xiva_source.feast_plugin.bulk_writer import BulkWriter
    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.pipeline.context import feature_arrow_types

    with private_redis(work) as url:
        client: Any = redis.Redis.from_url(url)
        project = f"mem_{uuid.uuid4().hex[:8]}"
        repo = _project_repo(work, project)
        _apply(repo)
        store = FeatureStore(repo_path=str(repo))
        views = {name: store.get_feature_view(name) for name in (VIEW, "customer_dwh_features")}
        types = feature_arrow_types()
        rng = np.random.default_rng(1)
        writer = BulkWriter(client, store.config, ttl_seconds=86400)
        before = int(client.info("memory")["used_memory"])
        now = np.datetime64("2026-01-01T00:00:00", "us")
        chunk = 10_000
        for start in range(0, customers, chunk):
            n = min(chunk, customers - start)
            ids = [str(uuid.UUID(int=start + i + 1, version=4)) for i in range(n)]
            stamps = now - rng.integers(60, 3 * 365 * 86400, n).astype("timedelta64[s]")

            tables = _memory_tables(rng, n, now, types)
            for name, columns in tables.items():
                table = pa.table(
                    {
                        "customer_id": ids,
                        **columns,
                        "event_timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                    }
                )
                writer.write(views[name], table, {"customer_id": ValueType.STRING})
        after = int(client.info("memory")["used_memory"])
        layout = RedisLayout(project, ("customer_id",))
        sample = [
            layout.key(str(uuid.UUID(int=int(i) + 1, version=4)))
            for i in np.linspace(0, customers - 1, min(customers, 2000)).astype(int)
        ]
        usage = [int(client.memory_usage(key, samples=0) or 0) for key in sample]
        fields = int(client.hlen(sample[0]))
        encoding = client.object("encoding", sample[0])
        client.close()
        return {
            "customers": customers,
            "used_memory_delta": after - before,
            "bytes_per_customer": (after - before) / customers,
            "memory_usage_avg": sum(usage) / len(usage),
            "fields": fields,
            "encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding),
        }


def _print_report(redis_results: list[dict[str, Any]], xiva: dict[str, Any] | None) -> None:
    print("\nDWH (PostgreSQL) -> Redis, customer_features, one process each")
    header = (
        f"{'rows':>9} | {'path':<8} | {'seconds':>7} | {'rows/s':>8} | "
        f"{'peak RSS MB':>11} | {'RSS growth MB':>13}"
    )
    print(header)
    print("-" * len(header))
    for result in redis_results:
        rows = result["rows"]
        job, stock, ceiling = result["project"], result["stock"], result["ceiling"]
        rates = {
            # the job's own summary line: rows it wrote / its duration (lock to last write)
            "job": job["line_rows"] / job["line_seconds"],
            "stock": rows / stock["seconds"],
            "ceiling": ceiling["rows"] / ceiling["seconds"],
        }
        for path, m in (("job", job), ("stock", stock)):
            growth = m["peak_rss_mb"] - m["rss_before_mb"]
            seconds = m["line_seconds"] if path == "job" else m["seconds"]
            print(
                f"{rows:>9,} | {path:<8} | {seconds:>7.1f} | {rates[path]:>8,.0f} | "
                f"{m['peak_rss_mb']:>11,.0f} | {growth:>13,.0f}"
            )
        print(
            f"{rows:>9,} | {'ceiling':<8} | {ceiling['seconds']:>7.1f} | "
            f"{rates['ceiling']:>8,.0f} | {'':>11} | {'':>13}"
        )
        print(
            f"{'':>9} | ratios   | job/ceiling = {rates['job'] / rates['ceiling']:.2f}, "
            f"job/stock = {rates['job'] / rates['stock']:.2f}x, "
            f"stock/ceiling = {rates['stock'] / rates['ceiling']:.2f}; "
            f"job peak RSS {job['peak_rss_mb']:,.0f} MB"
        )
        print(f"{'':>9} | job line | {job['line']}")
    if xiva:
        used = xiva["full_calls"] / xiva["full_seconds"]
        print(
            f"\nXiva (simulator throttled at {xiva['rate']:g} req/s per user, client at the same)"
        )
        print(
            f"  full pull: {xiva['customers']:,} customers, {xiva['full_calls']:,} calls in "
            f"{xiva['full_seconds']:.1f}s = {used:.1f} req/s = {used / xiva['rate']:.0%} of the "
            f"allowed rate; 429s: {xiva['full_429']}"
        )
        print(
            f"  incremental after {xiva['changed']} customers (1%) changed: "
            f"{xiva['incremental_calls']} calls ({xiva['incremental_360']} 360 views), "
            f"{xiva['incremental_rows']} rows, {xiva['incremental_seconds']:.1f}s"
        )
        print(f"  full run:        {xiva['full_line']}")
        print(f"  incremental run: {xiva['incremental_line']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        default="100000,1000000",
        help="Sizes, comma-separated (default 100000,1000000).",
    )
    parser.add_argument("--xiva-customers", type=int, default=2000, help="0 skips part 2.")
    parser.add_argument("--xiva-rate", type=float, default=50.0, help="Requests per second.")
    parser.add_argument(
        "--worker", choices=["project", "stock", "xiva", "ceiling"], help=argparse.SUPPRESS
    )
    parser.add_argument("--source-project", help=argparse.SUPPRESS)
    parser.add_argument("--target-project", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--dwh-url", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--redis-memory",
        default="",
        help="Only measure Redis bytes per customer at these sizes (comma-separated), e.g. "
        "100000,1000000 (docs/sizing.md).",
    )
    args = parser.parse_args(argv)

    if args.worker:
        workers = {
            "project": worker_project,
            "stock": worker_stock,
            "xiva": worker_xiva,
            "ceiling": worker_ceiling,
        }
        print(json.dumps(workers[args.worker](args)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-materialize-"))
    if args.redis_memory:
        try:
            for size in [int(x) for x in args.redis_memory.split(",") if x.strip()]:
                m = redis_memory(size, work)
                print(
                    f"{m['customers']:>10,} customers, both views ({m['fields']} fields, "
                    f"{m['encoding']}): used_memory +{m['used_memory_delta'] / 2**20:,.1f} MiB = "
                    f"{m['bytes_per_customer']:,.0f} B/customer; MEMORY USAGE of a key "
                    f"{m['memory_usage_avg']:,.0f} B on average"
                )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        results = []
        for rows in [int(size) for size in str(args.rows).split(",") if size.strip()]:
            print(f"DWH -> Redis at {rows:,} rows ...", file=sys.stderr)
            results.append(bench_redis(rows, work))
        xiva = None
        if args.xiva_customers:
            print(f"Xiva at {args.xiva_customers:,} customers ...", file=sys.stderr)
            xiva = bench_xiva(args.xiva_customers, args.xiva_rate, work)
        _print_report(results, xiva)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
