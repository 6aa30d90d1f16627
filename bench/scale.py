"""Telecom-size benchmark: full load, incremental run, segment refreshes and sizes at N customers.

Usage (one command; docs/sizing.md shows its output)::

    .venv/bin/python bench/scale.py --customers 10000000 --compare 1000000
    .venv/bin/python bench/scale.py --customers 100000                 # a quick check (~2 min)
    .venv/bin/python bench/scale.py --customers 1000000 --compare 100000 --changed 1000

At each size (the ``--compare`` size first, so its figures are printed before the long run), on a
PRIVATE ``redis-server`` started on a free port (``--save "" --appendonly no``, no maxmemory) and
a PRIVATE PostgreSQL schema on the shared server (``BENCH_PG_URL``, default
``postgresql+psycopg://root@127.0.0.1:5432/test``), both removed at the end:

1. the DWH population: the contract's tables created by ``xiva-source dwh init`` (docs/dwh.md),
   ``customer_features_view`` filled by one ``INSERT ... SELECT ... generate_series`` per million
   rows inside PostgreSQL (demo-like values: the demo's statuses, tiers and cities, about 12%
   NULL cells, ``updated_at`` spread over the three years before now; UUID customer ids);
2. ``full load``: ``xiva-source materialize`` (dwh mode, both views) into the empty Redis;
3. ``refresh, first``: ``segmentation refresh`` of the shipped segments (no memberships yet);
4. ``--changed`` customers (default 0.1% of the population) get a new row in the DWH (a purchase:
   count + 1, revenue + 25.00, status ``active``, ``updated_at`` now);
5. ``incremental run``: ``xiva-source materialize`` again (from its watermark);
6. ``refresh after it``: ``segmentation refresh`` (the changes since the first refresh);
7. ``sizes``: ``segmentation sizes`` (every segment over the whole online population).

Each step runs as its own child process (``python -m xiva_source`` / ``python -m segmentation``):
its wall time, its peak resident memory (``ru_maxrss`` of the child from ``wait4``; this parent
stays small so the figure is the child's) and Redis ``used_memory`` after it. The job's summary
line and each segmentation command's totals are printed as they finish (``--logs DIR`` keeps
every child's stdout and stderr, e.g. the job's ``--log-level INFO`` lines). With
``--compare`` the same steps at the smaller size come first and the ratios (large / small) end
the report.

Before anything is written, the free memory (``/proc/meminfo`` MemAvailable) is checked against
an estimate (about 450 B per customer in Redis, plus memberships and fragmentation, plus the
children's peak) and the run is refused with a clear message when it cannot fit. Not a test: the
machine is shared, so read ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from materialize import _apply, _project_repo  # bench/materialize.py: a repo copy, feast apply

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30
PG_BASE_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
# Memory, measured with this benchmark at 100,000 and 1,000,000 customers (docs/sizing.md):
FEATURES_BYTES = 460  # Redis per customer after the full load (both views)
SEGMENTS_BYTES = 1_300  # what the shipped segments add (two generations, served lists, events)
CHILD_BASE = 300 * 2**20  # a child's peak RSS with no population (imports, one chunk)
CHILD_PER_CUSTOMER = 450  # the segment refresh's growth per customer (692 MB at 1,000,000)
FILL_BATCH = 1_000_000

# The demo's values (xiva_source/demo/data.py), generated inside PostgreSQL.
_FILL_SQL = """
INSERT INTO customer_features_view (
    customer_id, customer_status, total_revenue, transaction_count, last_purchase_days_ago,
    avg_transaction_value, lifetime_value, churn_score, customer_tier, city, age, updated_at)
SELECT
    id,
    CASE WHEN random() < 0.12 THEN NULL
         ELSE (ARRAY['active', 'inactive', 'suspended'])[1 + floor(random() * 3)::int] END,
    CASE WHEN random() < 0.12 THEN NULL ELSE round(avg_value * n, 2) END,
    CASE WHEN random() < 0.12 THEN NULL ELSE n END,
    CASE WHEN random() < 0.12 THEN NULL ELSE floor(random() * 401)::int END,
    CASE WHEN random() < 0.12 THEN NULL ELSE avg_value END,
    CASE WHEN random() < 0.12 THEN NULL
         ELSE round(avg_value * n * (1 + 2 * random())::numeric, 2) END,
    CASE WHEN random() < 0.12 THEN NULL ELSE round(random()::numeric, 4) END,
    CASE WHEN random() < 0.12 THEN NULL
         ELSE (ARRAY['bronze', 'silver', 'gold', 'platinum'])[1 + floor(random() * 4)::int] END,
    CASE WHEN random() < 0.12 THEN NULL
         ELSE (ARRAY['Toronto', 'Montreal', 'Vancouver', 'Calgary', 'Ottawa', 'Halifax'])
              [1 + floor(random() * 6)::int] END,
    CASE WHEN random() < 0.12 THEN NULL ELSE 18 + floor(random() * 73)::int END,
    (now() AT TIME ZONE 'UTC') - make_interval(secs => 60 + floor(random() * 94608000))
FROM (
    SELECT md5('scale-' || i)::uuid AS id,
           floor(random() * 121)::int AS n,
           round((5 + random() * 145)::numeric, 2) AS avg_value
    FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS i
) AS customers
"""

# One purchase for every ``step``-th customer: new values and a new updated_at.
_CHANGE_SQL = """
UPDATE customer_features_view AS v SET
    transaction_count = coalesce(v.transaction_count, 0) + 1,
    total_revenue = coalesce(v.total_revenue, 0) + 25.00,
    last_purchase_days_ago = 0,
    customer_status = 'active',
    updated_at = now() AT TIME ZONE 'UTC'
WHERE v.customer_id IN (
    SELECT md5('scale-' || i)::uuid FROM generate_series(%(step)s::bigint, %(n)s::bigint,
                                                          %(step)s::bigint) AS i
    LIMIT %(changed)s)
"""


# --------------------------------------------------------------------------------------------
# Memory


def mem_available() -> int:
    """``MemAvailable`` of ``/proc/meminfo``, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


@dataclass(frozen=True)
class MemoryModel:
    """What one size needs: Redis per customer (features, then segments) and the largest child."""

    features: float
    segments: float
    child_per_customer: float
    basis: str

    def child(self, customers: int) -> int:
        return int(CHILD_BASE + customers * self.child_per_customer)

    def need(self, customers: int, *, segments: bool = True) -> int:
        per_customer = self.features + (self.segments if segments else 0)
        return int(customers * per_customer) + self.child(customers)

    def segments_need(self, customers: int) -> int:
        """What the segment refreshes add on top of a loaded Redis."""
        return int(customers * self.segments) + self.child(customers)


DEFAULT_MODEL = MemoryModel(
    FEATURES_BYTES,
    SEGMENTS_BYTES,
    CHILD_PER_CUSTOMER,
    f"Redis ~{FEATURES_BYTES} B/customer for the features + ~{SEGMENTS_BYTES} for the shipped "
    f"segments, the largest child ~{CHILD_BASE // 2**20} MB + {CHILD_PER_CUSTOMER} B/customer",
)


def measured_model(result: SizeResult) -> MemoryModel:
    """The model from a size already run (x1.05): its Redis growth per step and largest child."""
    n = result.customers
    loaded = result.steps[0].used_memory - result.empty_redis
    peak = max(s.redis_peak for s in result.steps) - result.empty_redis
    child = max(s.peak_rss_mb for s in result.steps) * 2**20
    return MemoryModel(
        features=loaded / n * 1.05,
        segments=max(0.0, peak - loaded) / n * 1.05,
        child_per_customer=max(0.0, child - CHILD_BASE) / n * 1.05,
        basis=f"measured at {n:,} customers, x1.05",
    )


def check_memory(customers: int, model: MemoryModel, reserve: int) -> None:
    """Refuse (exit 2) when the features of ``customers`` cannot fit, ``reserve`` kept free."""
    need = model.need(customers, segments=False)
    available = mem_available()
    print(
        f"memory: {customers:,} customers need about {need / GIB:.1f} GiB loaded and "
        f"{model.need(customers) / GIB:.1f} GiB with the segments ({model.basis}); "
        f"MemAvailable {available / GIB:.1f} GiB, {reserve / GIB:g} GiB kept for the machine",
        flush=True,
    )
    if need + reserve > available:
        raise SystemExit(
            f"error: {customers:,} customers need about {need / GIB:.1f} GiB of memory "
            f"({model.basis}) and only {available / GIB:.1f} GiB is available (/proc/meminfo "
            f"MemAvailable) with {reserve / GIB:g} GiB kept for the rest of the machine. Run a "
            "smaller --customers, or free memory (other Redis servers, benchmarks) and run it "
            "again."
        )
    if model.need(customers) + reserve > available:
        print(
            "memory: the segment refreshes may not fit; they are checked again before they "
            "start and skipped if they cannot",
            flush=True,
        )


def segments_fit(customers: int, model: MemoryModel, reserve: int) -> bool:
    """Whether the segment refreshes fit now (Redis already holds the features); says why not."""
    need, available = model.segments_need(customers), mem_available()
    if need + reserve <= available:
        return True
    print(
        f"  segment refreshes SKIPPED: they need about {need / GIB:.1f} GiB more (Redis ~"
        f"{model.segments:,.0f} B/customer, the refresh ~{model.child(customers) / GIB:.1f} GiB; "
        f"{model.basis}) and MemAvailable is {available / GIB:.1f} GiB with "
        f"{reserve / GIB:g} GiB kept for the machine",
        flush=True,
    )
    return False


# --------------------------------------------------------------------------------------------
# Private services


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A throwaway ``redis-server`` on a free port: no persistence, no maxmemory."""

    def __init__(self, work: Path, extra: list[str]) -> None:
        import redis

        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(work), *extra],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.client: Any = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def peak_memory(self) -> int:
        """``used_memory_peak``: the most Redis held since it started (during a step too)."""
        return int(self.client.info("memory")["used_memory_peak"])

    def keys(self) -> int:
        return int(self.client.dbsize())

    def breakdown(self, sample: int = 2000) -> dict[str, tuple[int, int]]:
        """Bytes and keys per kind: customer hashes (sampled), then every other key by type."""
        client = self.client
        kinds: dict[str, tuple[int, int]] = {}
        hashes = 0
        for kind in ("hash", "set", "zset", "stream", "string", "list"):
            total, count = 0, 0
            for key in client.scan_iter(count=10_000, _type=kind):
                count += 1
                if kind != "hash":
                    total += int(client.memory_usage(key, samples=0) or 0)
            if kind == "hash":
                hashes = count
            elif count:
                kinds[kind] = (total, count)
        if hashes:
            keys = [client.randomkey() for _ in range(sample)]
            sizes = [
                int(client.memory_usage(k, samples=0) or 0)
                for k in keys
                if k and client.type(k) == b"hash"
            ]
            kinds = {"hash": (int(sum(sizes) / max(1, len(sizes)) * hashes), hashes), **kinds}
        return kinds

    def stop(self) -> None:
        self.client.close()
        self.process.kill()
        self.process.wait(timeout=30)


class PrivateSchema:
    """A schema of its own on the shared PostgreSQL, dropped by :meth:`drop`."""

    def __init__(self) -> None:
        import psycopg

        self.name = f"bench_scale_{uuid.uuid4().hex[:8]}"
        self.conninfo = PG_BASE_URL.replace("postgresql+psycopg://", "postgresql://", 1)
        self.conn = psycopg.connect(self.conninfo, autocommit=True)
        self.conn.execute(f'CREATE SCHEMA "{self.name}"')
        self.conn.execute(f'SET search_path TO "{self.name}"')
        self.url = f"{PG_BASE_URL}?options={quote(f'-csearch_path={self.name}')}"

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        cursor = self.conn.execute(sql, params)  # type: ignore[arg-type]  # our own SQL
        return int(cursor.rowcount)

    def drop(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        self.conn.close()


# --------------------------------------------------------------------------------------------
# Steps


@dataclass
class Step:
    """One measured child process."""

    name: str
    seconds: float
    peak_rss_mb: float
    used_memory: int
    keys: int
    redis_peak: int
    line: str = ""

    @property
    def failed(self) -> bool:
        return self.line.startswith("FAILED")


@dataclass
class SizeResult:
    customers: int
    changed: int
    fill_seconds: float
    empty_redis: int
    steps: list[Step] = field(default_factory=list)
    breakdown: dict[str, tuple[int, int]] = field(default_factory=dict)


class StepFailed(RuntimeError):
    """A child exited with a status other than 0 or 3; the message is its stderr's tail."""

    def __init__(self, message: str, seconds: float, peak_rss_mb: float) -> None:
        super().__init__(message)
        self.seconds = seconds
        self.peak_rss_mb = peak_rss_mb


def run_child(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, str]:
    """Run ``argv``; its wall time, peak RSS (MB, from ``wait4``) and last output line.

    Exit status 0 and 3 (the job's "completed but degraded") pass; anything else raises
    :class:`StepFailed` with the tail of the child's stderr.
    """
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out_path.read_text().splitlines() if line.strip()]
    if process.returncode not in (0, 3):
        tail = err_path.read_text()[-3000:] or "\n".join(lines[-20:])
        raise StepFailed(
            f"{' '.join(argv[1:4])} exited {process.returncode}:\n{tail}",
            seconds,
            usage.ru_maxrss / 1024,
        )
    return seconds, usage.ru_maxrss / 1024, _summary(lines)


def _summary(lines: list[str]) -> str:
    """The line to print: the job's summary line, or refresh's totals, or the last line."""
    counts = [
        dict(part.split("=", 1) for part in line.split()[1:] if "=" in part) for line in lines
    ]
    refreshed = [c for c in counts if {"size", "joined", "left"} <= c.keys()]
    if refreshed:
        total = {k: sum(int(c[k]) for c in refreshed) for k in ("size", "joined", "left")}
        return (
            f"{len(refreshed)} segments refreshed: members={total['size']:,} "
            f"joined={total['joined']:,} left={total['left']:,}"
        )
    return lines[-1] if lines else ""


def bench_size(
    customers: int,
    changed: int,
    work: Path,
    log_dir: Path,
    redis_args: list[str],
    model: MemoryModel,
    reserve: int,
) -> SizeResult:
    """Every step at one size, on a private Redis and schema; prints each step as it ends."""
    print(f"\n== {customers:,} customers ({changed:,} changed) ==", flush=True)
    redis_server = PrivateRedis(work, redis_args)
    schema = PrivateSchema()
    project = f"scale_{uuid.uuid4().hex[:8]}"
    logs = log_dir / f"{customers}"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_server.url,
            "DWH_URL": schema.url,
            "FEATURE_STORE_DATA_SOURCE": "dwh",
            "FEATURE_STORE_ENV_FILE": "none",  # no .env: only what is set here
        }
        os.environ.update({k: env[k] for k in ("PYTHONPATH", "REDIS_URL", "DWH_URL")})
        python = sys.executable
        job = [python, "-m", "xiva_source"]
        seg = [python, "-m", "segmentation"]

        started = time.perf_counter()
        run_child([*job, "dwh", "init", "--dwh-url", schema.url], env, logs / "dwh-init")
        schema.execute("ALTER TABLE customer_features_view SET UNLOGGED")  # throwaway data
        schema.execute("SELECT setseed(0.17)")
        for low in range(1, customers + 1, FILL_BATCH):
            high = min(customers, low + FILL_BATCH - 1)
            schema.execute(_FILL_SQL, {"low": low, "high": high})
        schema.execute("ANALYZE customer_features_view")
        result = SizeResult(
            customers, changed, time.perf_counter() - started, redis_server.used_memory()
        )
        print(f"  DWH filled: {customers:,} rows in {result.fill_seconds:.0f}s", flush=True)

        repo = _project_repo(work, project)
        _apply(repo)
        common = ["--repo", str(repo)]

        def step(name: str, argv: list[str]) -> None:
            """Run and record one step; a failed one is recorded (and printed) as FAILED."""
            try:
                seconds, peak, line = run_child(argv, env, logs / name.replace(" ", "-"))
            except StepFailed as e:
                seconds, peak = e.seconds, e.peak_rss_mb
                line = "FAILED: " + " / ".join(str(e).strip().splitlines()[-3:])
            measured = Step(
                name,
                seconds,
                peak,
                redis_server.used_memory(),
                redis_server.keys(),
                redis_server.peak_memory(),
                line,
            )
            result.steps.append(measured)
            print(
                f"  {name:<18} {seconds:>8.1f} s  peak RSS {peak:>7,.0f} MB  Redis used_memory "
                f"{measured.used_memory / 2**20:>8,.0f} MiB (peak so far "
                f"{measured.redis_peak / 2**20:,.0f} MiB, {measured.keys:,} keys)\n"
                f"  {'':<18} {line}",
                flush=True,
            )

        materialize = [*job, "materialize", *common, "--no-progress", "--log-level", "INFO"]
        step("full load", materialize)
        refresh = segments_fit(customers, model, reserve)
        if refresh:
            step("refresh, first", [*seg, "refresh", *common])
        time.sleep(1.0)  # the changes' updated_at strictly after the full load's watermark
        n = schema.execute(
            _CHANGE_SQL, {"step": max(1, customers // changed), "n": customers, "changed": changed}
        )
        print(f"  changed {n:,} customers in the DWH", flush=True)
        time.sleep(1.0)
        step("incremental run", materialize)
        if refresh:
            step("refresh after it", [*seg, "refresh", *common])
        step("sizes", [*seg, "sizes", *common])
        result.breakdown = redis_server.breakdown()
        print(
            "  Redis by key type (MEMORY USAGE; hashes from a sample): "
            + ", ".join(
                f"{kind} {count:,} keys {size / 2**20:,.0f} MiB"
                for kind, (size, count) in result.breakdown.items()
            ),
            flush=True,
        )
        return result
    finally:
        redis_server.stop()
        schema.drop()


# --------------------------------------------------------------------------------------------
# Report


def print_report(results: list[SizeResult]) -> None:
    print(
        "\n== report (wall time, the child's peak RSS, Redis used_memory after the step; "
        "B/customer: used_memory above the empty server's; Redis peak: used_memory_peak so far) =="
    )
    header = f"{'customers':>11} | {'step':<18} | {'seconds':>8} | {'peak RSS MB':>11} | "
    header += f"{'Redis MiB':>9} | {'B/customer':>10} | {'Redis peak MiB':>14}"
    print(header)
    print("-" * len(header))
    for result in results:
        for s in result.steps:
            print(
                f"{result.customers:>11,} | {s.name + (' FAILED' if s.failed else ''):<18} | "
                f"{s.seconds:>8.1f} | "
                f"{s.peak_rss_mb:>11,.0f} | {s.used_memory / 2**20:>9,.0f} | "
                f"{(s.used_memory - result.empty_redis) / result.customers:>10,.0f} | "
                f"{s.redis_peak / 2**20:>14,.0f}"
            )
    if len(results) < 2:
        return
    small, large = sorted(results, key=lambda r: r.customers)[:2]
    print(
        f"\nratios {large.customers:,} / {small.customers:,} customers "
        f"(x{large.customers / small.customers:g} population, "
        f"{large.changed:,} / {small.changed:,} changed)"
    )
    print(f"{'step':<18} | {'time':>6} | {'peak RSS':>8} | {'Redis':>6}")
    measured = {s.name: s for s in large.steps}
    for a in small.steps:
        b = measured.get(a.name)
        if b is None:
            print(f"{a.name:<18} | skipped at {large.customers:,}")
            continue
        if a.failed or b.failed:
            where = large.customers if b.failed else small.customers
            print(f"{a.name:<18} | failed at {where:,}")
            continue
        print(
            f"{a.name:<18} | {b.seconds / a.seconds:>6.2f} | {b.peak_rss_mb / a.peak_rss_mb:>8.2f} "
            f"| {b.used_memory / a.used_memory:>6.2f}"
        )


def parse_changed(text: str, customers: int) -> int:
    """``0.1%`` (of the population) or a count."""
    if text.endswith("%"):
        return max(1, round(customers * float(text[:-1]) / 100))
    return max(1, min(customers, int(text)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, required=True, help="The population.")
    parser.add_argument(
        "--compare", type=int, default=0, help="A second (smaller) population, run first."
    )
    parser.add_argument(
        "--changed",
        default="0.1%",
        help="Customers changed before the incremental run: a percentage of each population "
        "(default 0.1%%) or a count (the same at both sizes), e.g. 1000.",
    )
    parser.add_argument(
        "--logs", type=Path, help="Keep every child's stdout and stderr here (default: removed)."
    )
    parser.add_argument(
        "--reserve-gib",
        type=float,
        default=2.0,
        help="Memory to leave free for the rest of the machine (default 2 GiB).",
    )
    parser.add_argument(
        "--redis-arg",
        action="append",
        default=[],
        metavar="'NAME VALUE'",
        help="A redis-server setting for the private server (repeatable), e.g. "
        "'hash-max-listpack-value 256'.",
    )
    args = parser.parse_args(argv)
    redis_args: list[str] = []
    for setting in args.redis_arg:  # 'name value' -> --name value
        name, *values = setting.split()
        redis_args += [f"--{name}", *values]
    sizes = sorted({args.customers, *([args.compare] if args.compare else [])})
    reserve = int(args.reserve_gib * GIB)
    check_memory(max(sizes), DEFAULT_MODEL, reserve)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"python {sys.version.split()[0]}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        logs = args.logs or work / "logs"
        results: list[SizeResult] = []
        model = DEFAULT_MODEL
        for n in sizes:
            if results:  # the smaller size measured what the larger one will need
                model = measured_model(results[-1])
                check_memory(n, model, reserve)
            changed = parse_changed(args.changed, n)
            results.append(bench_size(n, changed, work, logs, redis_args, model, reserve))
        print_report(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
