"""Xiva pull benchmark: peak memory of a full streamed pull, 20,000 vs 2,000 customers.

Usage::

    .venv/bin/python bench/xiva_pull.py                       # 2,000 and 20,000 customers
    .venv/bin/python bench/xiva_pull.py --small 1000 --large 10000

For each size, a simulator with that many customers runs in its own process on loopback (its
memory is not measured), and a fresh process pulls every customer through ``pull_batches`` (no
client-side rate limit, chunks of ``--chunk`` customers, each appended to a snapshot table in a
temporary SQLite file) and reports:

- ``tracemalloc`` peak: the Python heap the pull needed at its highest (the figure that grows with
  the number of customers if anything is held for the whole pull);
- ``ru_maxrss``: the process's peak resident memory (interpreter, libraries and the pull).

It prints both and their ratio, large / small. Streaming keeps the ratio near 1: what grows with
the customers is only the set of ids the list cursor has seen (about 100 bytes per customer).
Not a timed test: timings are printed for information only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-Pa55word!"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the simulator did not listen on port {port} within {timeout} s")


def measure(port: int, chunk: int, workdir: str) -> dict[str, float]:
    """One full pull against the simulator on ``port``; run in a fresh process."""
    from xiva_source.feast_plugin.sources import XivaSource
    from xiva_source.pipeline import PullReport, pull_batches
    from xiva_source.pipeline.context import PullOptions
    from xiva_source.settings import load_settings
    from xiva_source.timeutil import utc_now

    settings = load_settings(
        env_file=None,
        xiva_api_base_url=f"http://127.0.0.1:{port}/api",
        xiva_api_username=USER,
        xiva_api_password=PASSWORD,
        xiva_requests_per_second=0,
        dwh_url=f"sqlite:///{workdir}/snapshots.sqlite",
    )
    report = PullReport()
    rows = 0
    tracemalloc.start()
    started = time.monotonic()
    for table in pull_batches(
        XivaSource("xiva_customers"),
        settings=settings,
        feature_names=[],
        start_date=None,
        end_date=utc_now(),
        options=PullOptions(),
        chunk_size=chunk,
        report=report,
    ):
        rows += table.num_rows
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "rows": rows,
        "xiva_calls": report.xiva_calls,
        "seconds": round(elapsed, 1),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_size(customers: int, chunk: int) -> dict[str, float]:
    """Start a simulator of ``customers`` and measure a full pull in a fresh process."""
    port = _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "xiva_source.simulator", "--port", str(port),
         "--customers", str(customers), "--user", f"{USER}:{PASSWORD}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port)
        with tempfile.TemporaryDirectory() as workdir:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(port), "--chunk", str(chunk),
                 "--workdir", workdir],
                cwd=ROOT, check=True, capture_output=True, text=True,
                env={**os.environ, "FEATURE_STORE_ENV_FILE": "none"},
            )  # fmt: skip
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        sim.terminate()
        sim.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2_000, help="customers of the small pull")
    parser.add_argument("--large", type=int, default=20_000, help="customers of the large pull")
    parser.add_argument("--chunk", type=int, default=1_000, help="customers per chunk")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.chunk, args.workdir)))
        return
    small = run_size(args.small, args.chunk)
    large = run_size(args.large, args.chunk)
    for name, result in (("small", small), ("large", large)):
        print(f"{name}: {json.dumps(result)}")
    print(
        f"peak Python heap ratio {args.large}/{args.small} customers: "
        f"{large['tracemalloc_peak_mb'] / small['tracemalloc_peak_mb']:.2f}; "
        f"peak RSS ratio: {large['maxrss_mb'] / small['maxrss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
