"""Incremental runs cost the changes: the job at 100,000 and 1,000,000 customers (issue 17).

Usage::

    .venv/bin/python bench/incremental.py                       # 100000,1000000 (the issue's)
    .venv/bin/python bench/incremental.py --sizes 20000,200000  # a quick run

At each size, in ``dwh`` mode with both views of the repository: a private ``redis-server`` on a
free port and a private PostgreSQL schema filled by ``create_demo_dwh``; 1.7% of the customers
stamped within the last 6 hours (a day of a telecom's changes, as the issue measured: what the
old 6-hour lookback re-read every run). Then, each run a ``xiva-source materialize`` process
(``--log-level INFO``: the line's per-step costs):

1. the full load;
2. ``--changes`` (1,000) customers changed (``updated_at`` now), and an incremental run;
3. the same again with the expiry sweep's last run moved 15 minutes back: the slice a run every
   15 minutes gets in steady state (the interval sizes it, ``jobs/expiry.py``).

Each run prints its wall time (the process: start-up included), the job's own duration, rows
read, DWH rows read again from before the watermark (``dwh_lookback_rows``), keys touched (rows
written + keys whose expiry the sweep reset) and the process's peak RSS; then the ratio of the
largest size to the smallest for the incremental runs (the issue's bound: 1.5x at 1M/100k).

``--startup N``: the start-up alone. At N customers (same setup), after the full load, a no-op
``xiva-source materialize`` (nothing changed) and ``python -c "import feast"``, alternated three
times each: the job's wall time beside the import it cannot avoid.

Needs PostgreSQL (db ``test``, user ``root`` on 127.0.0.1) and ``redis-server`` on PATH. The
schema, the Redis server and the temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from materialize import private_redis

ROOT = Path(__file__).resolve().parent.parent
PG_BASE_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
RECENT_SHARE = 0.017
"""Customers stamped within the last 6 hours before the full load (the issue's 17,000 at 1M)."""


def _repo(work: Path, project: str) -> Path:
    repo = work / f"repo-{project}"
    shutil.copytree(
        ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__", "*.db")
    )
    path = repo / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = project
    config["registry"] = {"registry_type": "file", "path": str(repo / "registry.db")}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def _touch(dwh_url: str, ids: list[str], stamps: list[datetime]) -> None:
    """Change ``ids``' rows (revenue + 1) and stamp each with its time (one joined UPDATE)."""
    import sqlalchemy as sa

    from xiva_source.dwh import get_engine

    with get_engine(dwh_url).begin() as conn:
        conn.execute(
            sa.text("CREATE TEMP TABLE bench_touch (id TEXT, at TIMESTAMP) ON COMMIT DROP")
        )
        conn.execute(
            sa.text("INSERT INTO bench_touch VALUES (:id, :at)"),
            [{"id": c, "at": at.replace(tzinfo=None)} for c, at in zip(ids, stamps, strict=True)],
        )
        conn.execute(
            sa.text(
                "UPDATE customer_features_view AS t SET total_revenue = "
                "COALESCE(t.total_revenue, 0) + 1, updated_at = b.at FROM bench_touch AS b "
                "WHERE CAST(t.customer_id AS TEXT) = b.id"
            )
        )


def _run(repo: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """One ``xiva-source materialize`` process: wall time, its line, the costs, peak RSS."""
    command = [
        str(ROOT / ".venv/bin/python"), "-m", "xiva_source", "--log-level", "INFO",
        "materialize", "--repo", str(repo), "--no-progress", *extra,
    ]  # fmt: skip
    wrapped = ["/usr/bin/time", "-f", "PEAK_RSS_KB=%M", *command]
    started = time.perf_counter()
    proc = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"materialize failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    rss = re.search(r"PEAK_RSS_KB=(\d+)", proc.stderr)

    def number(pattern: str) -> float:
        match = re.search(pattern, line)
        return float(match.group(1)) if match else 0.0

    return {
        "wall": wall,
        "duration": number(r" duration=([\d.]+)s"),
        "rows_read": int(number(r" rows dwh=(\d+)")),
        "lookback_rows": int(number(r"dwh_lookback_rows=(\d+)")),
        "written": int(number(r" writes=[\d.]+s/(\d+)rows")),
        "expiry_keys": int(number(r" expiry=[\d.]+s/(\d+)keys")),
        "expiry_s": number(r" expiry=([\d.]+)s"),
        "load_s": number(r" load=([\d.]+)s"),
        "plan_s": number(r" plan=([\d.]+)s"),
        "pulls_s": number(r" pulls=([\d.]+)s"),
        "writes_s": number(r" writes=([\d.]+)s"),
        "state_s": number(r" state=([\d.]+)s"),
        "peak_rss_mb": int(rss.group(1)) / 1024 if rss else 0.0,
        "line": line,
    }


def _rewind_sweep(redis_url: str, project: str, seconds: float) -> None:
    """Move the expiry sweep's last run back: the next slice is that of a run ``seconds`` later."""
    import redis

    from xiva_source.feast_plugin.run_state import ExpirySweep, redis_state_names
    from xiva_source.timeutil import to_iso

    client = redis.Redis.from_url(redis_url)
    state, _ = redis_state_names(project)
    for field, raw in client.hgetall(state).items():  # type: ignore[union-attr]
        if field.startswith(b"sweep:"):
            sweep = ExpirySweep.parse(raw.decode())
            assert sweep.swept_at is not None
            moved = json.loads(sweep.to_json())
            moved["swept_at"] = to_iso(sweep.swept_at - timedelta(seconds=seconds))
            client.hset(state, field, json.dumps(moved, sort_keys=True))
    client.close()


def _import_feast_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/python"), "-c", "import feast"], check=True)
    return time.perf_counter() - started


def bench_size(
    customers: int, changes: int, work: Path, *, startup_only: bool = False
) -> dict[str, Any]:
    """Full load, then incremental runs with ``changes`` changed customers, at one size."""
    import random

    import sqlalchemy as sa

    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.dwh import dispose_engines

    ns = uuid.uuid4().hex[:8]
    schema, project = f"bench_inc_{ns}", f"bench_inc_{ns}"
    engine = sa.create_engine(PG_BASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    dwh_url = f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    try:
        with private_redis(work) as redis_url:
            ids = [
                str(uuid.UUID(int=(i + 1) * 7919 + customers, version=4)) for i in range(customers)
            ]
            t0 = time.perf_counter()
            create_demo_dwh(dwh_url, ids, seed=1, xiva_only_every=0, dwh_only_fraction=0.0)
            rng = random.Random(17)
            now = datetime.now(UTC)
            recent = rng.sample(ids, int(customers * RECENT_SHARE))
            _touch(
                dwh_url,
                recent,
                [now - timedelta(seconds=rng.uniform(60, 6 * 3600)) for _ in recent],
            )
            with engine.begin() as conn:  # as a DWH would have it (docs/dwh.md)
                conn.execute(
                    sa.text(
                        "CREATE INDEX IF NOT EXISTS cfv_updated_at "
                        f'ON "{schema}".customer_features_view (updated_at)'
                    )
                )
            dispose_engines()
            print(
                f"  filled {customers:,} customers in {time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
            )
            env = {
                **os.environ,
                "DWH_URL": dwh_url,
                "REDIS_URL": redis_url,
                "FEATURE_STORE_DATA_SOURCE": "dwh",
                "PYTHONPATH": str(ROOT),
            }
            repo = _repo(work, project)
            subprocess.run(
                [str(ROOT / ".venv/bin/feast"), "-c", str(repo), "apply"],
                check=True, capture_output=True, env=env,
            )  # fmt: skip
            print(f"  full load ({customers:,}) ...", file=sys.stderr)
            full = _run(repo, env)
            if startup_only:
                noop, imports = [], []
                for _ in range(3):
                    noop.append(_run(repo, env))
                    imports.append(_import_feast_seconds())
                return {"customers": customers, "noop": noop, "import_feast": imports}
            _touch(dwh_url, rng.sample(ids, changes), [datetime.now(UTC)] * changes)
            print(f"  incremental ({changes:,} changed) ...", file=sys.stderr)
            incremental = _run(repo, env)
            _touch(dwh_url, rng.sample(ids, changes), [datetime.now(UTC)] * changes)
            _rewind_sweep(redis_url, project, 15 * 60)
            print("  incremental, as 15 minutes later ...", file=sys.stderr)
            steady = _run(repo, env)
            return {
                "customers": customers,
                "full": full,
                "incremental": incremental,
                "steady": steady,
            }
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"  {name:<24} wall {r['wall']:6.1f}s  job {r['duration']:6.1f}s  "
        f"rows read {r['rows_read']:>9,}  re-read {r['lookback_rows']:>7,}  "
        f"keys touched {r['written'] + r['expiry_keys']:>9,} "
        f"(written {r['written']:,}, expiry {r['expiry_keys']:,} in {r['expiry_s']:.2f}s)  "
        f"peak RSS {r['peak_rss_mb']:5.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Customers, comma-separated.")
    parser.add_argument("--changes", type=int, default=1000, help="Changed customers per run.")
    parser.add_argument("--startup", type=int, default=0, help="Only the start-up, at N.")
    args = parser.parse_args(argv)
    if args.startup:
        work = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
        try:
            got = bench_size(args.startup, 0, work, startup_only=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"Start-up, no-op run at {args.startup:,} customers (nothing changed)")
        for run, imported in zip(got["noop"], got["import_feast"], strict=True):
            print(
                f"  materialize wall {run['wall']:5.1f}s (job {run['duration']:.1f}s, "
                f"load {run['load_s']:.2f}s)   python -c 'import feast' {imported:5.1f}s   "
                f"ratio {run['wall'] / imported:.2f}x"
            )
        return 0
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    results = []
    try:
        for size in sizes:
            print(f"{size:,} customers ...", file=sys.stderr)
            results.append(bench_size(size, args.changes, work))
            for kind in ("full", "incremental", "steady"):  # as it goes, in case of a stop
                print(_row(kind, results[-1][kind]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Incremental runs, dwh mode, both views, {args.changes:,} changed customers per run")
    for r in results:
        print(f"{r['customers']:,} customers")
        print(_row("full load", r["full"]))
        print(_row("incremental", r["incremental"]))
        print(_row("incremental, 15 min later", r["steady"]))
        costs = r["incremental"]["line"].split("; costs: ")[-1]
        print(f"    incremental's steps: {costs}")
    if len(results) > 1:
        small, large = results[0], results[-1]
        scale = large["customers"] / small["customers"]
        print(f"{large['customers']:,} / {small['customers']:,} customers ({scale:.0f}x):")
        for kind in ("incremental", "steady"):
            a, b = small[kind], large[kind]
            job = b["duration"] / max(a["duration"], 0.05)
            print(
                f"  {kind:<12} wall {b['wall'] / a['wall']:.2f}x  job {job:.2f}x  "
                f"peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x  (target <= 1.5x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
