"""Benchmark: the real-time sync worker beside the cron path (the job every 5 min), in one run.

Usage::

    .venv/bin/python bench/sync.py                     # 10,000 customers, 5 minutes (short)
    .venv/bin/python bench/sync.py --minutes 60        # RSS after 5 minutes and after an hour
    .venv/bin/python bench/sync.py --customers 2000 --minutes 2 --cron-minutes 1   # a smoke run

The bundled simulator runs in its own process with ``--customers`` customers, a per-user rate
limit (``--rate-limit`` requests/s) and two users, one per path. A driver changes one random
customer at a time (``--changes-per-minute``; the simulator's change moves ``lastUpdate`` and
the 360 numbers, and sets the last payment to now, so the shipped segments see it). Two workers
follow the same changes, each in its own process, each into a project of its own (copies of
``feature_repo`` in ``xiva`` mode, a ``redis-server`` of the run's own (``--shared-redis``:
127.0.0.1:6379 or ``BENCH_REDIS_URL``), the snapshot table in a SQLite file of its own), with
the client's own rate set to the limit:

- ``sync``: ``xiva-source sync`` as shipped (a poll every ``--interval`` s, 50 changes a batch),
  in a child process;
- ``cron``: the real cron path, every ``--cron-minutes`` (default 5): ``xiva-source materialize``
  (incremental from its watermark: the list from the last position, one 360 view per changed
  customer, the newer-wins write, the pull recorded), then ``segmentation refresh`` (incremental:
  the changed customers re-evaluated, the events published), each its own process as cron runs
  them. Its first run (the full load of the population and the segments' baseline) runs before
  the changes start, with the simulator's rate limit lifted, as a deployment's initial load would
  have; it is not measured.

For each change: change-to-online (the driver's change -> the features written) and
change-to-event (-> the segments updated and events published), p50 / p99 / max. The worker
reports both per customer (a hook); for the cron path a change is online when the first job
that wrote its customer after it ends (the customers a job wrote are the marks it left in the
changed-customers journal, read between the job and the refresh) and evented when the refresh
after that job ends. Xiva calls per change (the simulator's count per user, logins and list pages
included, over the customers written; the worker's counted when the changes end plus 5 s, the
cron path's after its last run: idle polls after the run are not charged to the changes); RSS of
the worker process after 5, 10, 20, 30, ... 60, 90 and 120 minutes (as long as it runs) and at
the end, and the peak RSS of the cron path's processes. The run lasts ``--minutes`` plus one
cron interval (the last changes reach the cron path). Everything written (Redis keys, the
repositories) is removed at the end. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from materialize import REDIS_URL, _apply, _delete_project_keys, _project_repo, private_redis

PASSWORD = "bench-pass"  # the simulator's throwaway accounts
PATHS = ("sync", "cron")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _sim_call(root: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{root}/_sim/{path}",
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


# -- the worker (child process) -----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """One worker in this process; hook records and RSS lines appended to ``--out``."""
    from feast import FeatureStore

    from xiva_source.settings import load_settings
    from xiva_source.sync.worker import SyncOptions, SyncWorker

    out = Path(args.out)
    lock = threading.Lock()

    def write(record: dict[str, Any]) -> None:
        with lock, out.open("a") as file:
            file.write(json.dumps(record) + "\n")

    def hook(cid: str, last_update: Any, online_at: Any, segments_at: Any, events: int) -> None:
        write(
            {
                "id": cid,
                "online": online_at.timestamp(),
                "event": segments_at.timestamp(),
                "events": events,
            }
        )

    repo = Path(args.repo)
    worker = SyncWorker(
        FeatureStore(repo_path=str(repo)),
        load_settings(repo_path=repo),
        options=SyncOptions(
            interval=args.interval,
            dwh_interval=86400,
            batch_size=args.batch_size,
            summary_every=60,
        ),
        hook=hook,
        on_summary=lambda line: print(line, file=sys.stderr, flush=True),
    )
    started = time.monotonic()

    def rss_marks() -> None:
        for minutes in (5, 10, 20, 30, 40, 50, 60, 90, 120):
            while time.monotonic() < started + minutes * 60:
                if worker.stopping:
                    return
                time.sleep(0.5)
            write({"rss_minutes": minutes, "rss_mb": _rss_mb()})

    threading.Thread(target=rss_marks, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.run()
    write({"rss_minutes": (time.monotonic() - started) / 60, "rss_mb": _rss_mb(), "end": True})


# -- the driver ----------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _latencies(
    changes: list[tuple[str, float]], records: list[dict[str, Any]], key: str
) -> list[float]:
    """Per change: seconds to the first follow of that customer after it (missing: not yet)."""
    follows: dict[str, list[float]] = {}
    for r in records:
        if "id" in r:
            follows.setdefault(r["id"], []).append(r[key])
    out = []
    for cid, at in changes:
        later = [t for t in follows.get(cid, []) if t >= at]
        if later:
            out.append(min(later) - at)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rate-limit", type=float, default=20.0, help="requests/s per user")
    parser.add_argument("--changes-per-minute", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long changes are made")
    parser.add_argument("--interval", type=float, default=1.0, help="the worker's poll (s)")
    parser.add_argument("--cron-minutes", type=float, default=5.0)
    parser.add_argument(
        "--shared-redis",
        action="store_true",
        help="use BENCH_REDIS_URL (default 127.0.0.1:6379) instead of a redis-server of its own",
    )
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    # A redis-server of the run's own unless asked: another client's long script on a shared
    # Redis stalls every client, which is not what this measures.
    own_redis = ExitStack()
    redis_url = REDIS_URL if args.shared_redis else own_redis.enter_context(private_redis(work))
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xiva_source.simulator",
            "--port",
            str(port),
            "--customers",
            str(args.customers),
            "--seed",
            "5",
            "--rate-limit",
            str(args.rate_limit),
            *[a for p in PATHS for a in ("--user", f"{p}:{PASSWORD}")],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: dict[str, subprocess.Popen[bytes]] = {}
    projects = {p: f"bench_sync_{p}_{run_id}" for p in PATHS}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ids: list[str] = _sim_call(root, "customers")["ids"]
                break
            except OSError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.2)
        envs: dict[str, dict[str, str]] = {}
        repos: dict[str, Path] = {}
        for path in PATHS:
            repos[path] = _project_repo(work, projects[path])
            _apply(repos[path])
            envs[path] = {
                **os.environ,
                "XIVA_API_BASE_URL": f"{root}/api",
                "XIVA_API_USERNAME": path,
                "XIVA_API_PASSWORD": PASSWORD,
                "XIVA_REQUESTS_PER_SECOND": str(args.rate_limit),
                "XIVA_REDIS_PREFIX": f"bench_sync_{run_id}_{path}",
                "REDIS_URL": redis_url,
                # One SQLite file per path: two writers of one file wait on its lock.
                "DWH_URL": f"sqlite:///{work / f'snapshots-{path}.db'}",
                "FEATURE_STORE_DATA_SOURCE": "xiva",
                "FEATURE_STORE_ENV_FILE": "none",
            }
        for path in PATHS:  # the DWH's tables (empty): the repository's DWH view reads them
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "xiva_source",
                    "dwh",
                    "init",
                    "--dwh-url",
                    envs[path]["DWH_URL"],
                ],
                env=envs[path],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        workers["sync"] = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                "sync",
                "--repo",
                str(repos["sync"]),
                "--out",
                str(work / "sync.jsonl"),
                "--interval",
                str(args.interval),
                "--batch-size",
                "50",
            ],
            env=envs["sync"],
            stderr=(work / "sync.log").open("wb"),
        )
        cron = CronPath(repos["cron"], envs["cron"], projects["cron"], redis_url, work)
        # The initial load (every customer, then the segments' baseline) is a deployment's
        # first day, not what is measured: run it with the simulator's limit lifted.
        _sim_call(root, "rate-limit", {"per_second": None, "burst": None})
        cron.run_once(initial=True)
        _sim_call(root, "rate-limit", {"per_second": args.rate_limit, "burst": None})
        _wait_started({"sync": projects["sync"]}, redis_url)
        _sim_call(root, "reset-counters", {})
        print(
            f"{args.customers} customers, rate limit {args.rate_limit}/s per path, "
            f"{args.changes_per_minute} changes/min for {args.minutes} min; worker poll "
            f"{args.interval}s, cron path (materialize + refresh) every {args.cron_minutes} min",
            flush=True,
        )
        loop = threading.Thread(target=cron.loop, args=(args.cron_minutes * 60,), daemon=True)
        loop.start()
        changes = _drive(root, ids, args)
        cron.changes_ended = time.time()
        time.sleep(5)  # the worker's last follows
        counters = {"sync": _sim_call(root, "counters")}
        loop.join()  # its next run after the changes ended covers the last ones
        counters["cron"] = _sim_call(root, "counters")
    finally:
        for process in workers.values():
            process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        sim.terminate()
        sim.wait(10)
    (work / "changes.json").write_text(json.dumps({"changes": changes, "counters": counters}))
    _report(changes, counters, work, args)
    for failure in cron.failures:
        print(f"cron path: {failure}")
    print("cron path, the job's summary lines (the first: the initial load, not measured):")
    for line in cron.summaries:
        print(f"  {line}")
    if args.shared_redis:
        for project in projects.values():
            _delete_project_keys(project)
    own_redis.close()
    shutil.rmtree(work, ignore_errors=True)


class CronPath:
    """The cron path: ``xiva-source materialize`` then ``segmentation refresh``, as cron runs them.

    Each run appends to ``cron.jsonl`` one record per customer the job wrote (the journal's marks
    after the job's first mark number) with the job's end (``online``) and the refresh's end
    (``event``), and the peak RSS of both processes.
    """

    def __init__(
        self, repo: Path, env: dict[str, str], project: str, redis_url: str, work: Path
    ) -> None:
        self.repo, self.env, self.project, self.redis_url, self.work = (
            repo,
            env,
            project,
            redis_url,
            work,
        )
        self.out = work / "cron.jsonl"
        self.changes_ended: float | None = None
        self.failures: list[str] = []
        self.summaries: list[str] = []

    def _run(self, argv: list[str], name: str) -> float:
        """Run one command; its peak RSS (MB). A failure is kept for the report."""
        log = self.work / f"cron-{name}.log"
        with log.open("ab") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", *argv, "--repo", str(self.repo)],
                env=self.env,
                stdout=err,
                stderr=err,
            )
            _, status, usage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):  # 3: completed but degraded (reported, still written)
            tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            self.failures.append(f"{' '.join(argv)} exited {code}: {tail}")
        return usage.ru_maxrss / 1024

    def run_once(self, *, initial: bool = False) -> float:
        """One cron tick; returns when it started."""
        import redis

        from xiva_source.feast_plugin.changed import journal_keys

        journal, sequence, _ = journal_keys(self.project)
        client = redis.Redis.from_url(self.redis_url)
        try:
            started = time.time()
            raw: Any = client.get(sequence)
            before = int(raw or 0)
            env = self.env
            if initial:  # the first day's load at the simulator's lifted limit
                self.env = {**env, "XIVA_REQUESTS_PER_SECOND": "1000"}
            job_rss = self._run(["xiva_source", "materialize", "--no-progress"], "materialize")
            self.env = env
            online_at = time.time()
            marks: Any = client.zrangebyscore(journal, f"({before}", "+inf")
            written = [m.decode() for m in marks]
            refresh_rss = self._run(["segmentation", "refresh"], "refresh")
            event_at = time.time()
        finally:
            client.close()
        log = self.work / "cron-materialize.log"
        lines = log.read_text(errors="replace").strip().splitlines()
        self.summaries.append(lines[-1] if lines else "")
        if not initial:
            with self.out.open("a") as file:
                for cid in written:
                    record = {"id": cid, "online": online_at, "event": event_at, "events": 0}
                    file.write(json.dumps(record) + "\n")
                file.write(json.dumps({"job_rss_mb": job_rss, "refresh_rss_mb": refresh_rss}))
                file.write("\n")
        return started

    def loop(self, every: float) -> None:
        """A tick every ``every`` seconds until one starts after the changes ended."""
        next_at = time.monotonic() + every
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += every
            started = self.run_once()
            if self.changes_ended is not None and started > self.changes_ended + 1:
                return


def _wait_started(projects: dict[str, str], redis_url: str) -> None:
    import redis

    from xiva_source.sync.checkpoint import checkpoint_key

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 300
    while not all(client.exists(checkpoint_key(p)) for p in projects.values()):
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)
    client.close()
    time.sleep(2)  # their start-up (the segments' baseline) done


def _drive(root: str, ids: list[str], args: argparse.Namespace) -> list[tuple[str, float]]:
    """Change one random customer every 60/rate seconds; (id, change time) each."""
    picker = random.Random(7)
    gap = 60.0 / args.changes_per_minute
    end = time.monotonic() + args.minutes * 60
    changes: list[tuple[str, float]] = []
    next_at = time.monotonic()
    while time.monotonic() < end:
        cid = picker.choice(ids)
        at = time.time()
        _sim_call(root, "update", {"ids": [cid]})
        changes.append((cid, at))
        next_at += gap
        time.sleep(max(0.0, next_at - time.monotonic()))
    return changes


def _report(
    changes: list[tuple[str, float]],
    counters: dict[str, dict[str, Any]],
    work: Path,
    args: argparse.Namespace,
) -> None:
    results: dict[str, dict[str, Any]] = {}
    for path in PATHS:
        file = work / f"{path}.jsonl"
        records = [json.loads(x) for x in file.read_text().splitlines()] if file.exists() else []
        online = _latencies(changes, records, "online")
        event = _latencies(changes, records, "event")
        followed = sum(1 for r in records if "id" in r)
        calls = int(counters[path].get("by_user", {}).get(path, 0))
        # Per change followed (a customer written twice, e.g. at a run's window boundary, is
        # one change): the same denominator for both paths.
        rss = {round(r["rss_minutes"], 1): r["rss_mb"] for r in records if "rss_mb" in r}
        for kind in ("job", "refresh"):  # the cron path: its processes' peaks
            peaks = [r[f"{kind}_rss_mb"] for r in records if f"{kind}_rss_mb" in r]
            if peaks:
                rss[f"{kind} peak"] = max(peaks)
        results[path] = {
            "online": online,
            "event": event,
            "followed": followed,
            "calls_per_change": calls / len(online) if online else float("nan"),
            "calls": calls,
            "rss": rss,
        }
    print(f"changes made: {len(changes)}")
    cron = f"cron ({args.cron_minutes:g} min)"  # materialize + refresh
    print(f"{'':28}{'sync':>12}{cron:>16}{'cron/sync':>11}")
    for key, label in (("online", "change-to-online"), ("event", "change-to-event")):
        for q, name in ((0.5, "p50"), (0.99, "p99"), (1.0, "max")):
            a = _percentile(results["sync"][key], q)
            b = _percentile(results["cron"][key], q)
            print(f"{label + ' ' + name + ' (s)':28}{a:12.2f}{b:16.2f}{b / a:11.1f}")
    a, b = results["sync"]["calls_per_change"], results["cron"]["calls_per_change"]
    print(f"{'Xiva calls per change':28}{a:12.2f}{b:16.2f}{b / a:11.2f}")
    for path in PATHS:
        r = results[path]
        missing = len(changes) - len(r["online"])
        print(
            f"{path}: {r['followed']} follows, {r['calls']} Xiva calls, "
            f"{missing} changes not followed, RSS MB by minute {r['rss']}"
        )
    slow = [x for x in results["sync"]["online"] if x > 5]
    print(
        f"sync: {len(slow)} of {len(results['sync']['online'])} changes online after more than "
        f"5 s; median {statistics.median(results['sync']['online'] or [0]):.2f} s"
    )


if __name__ == "__main__":
    main()
