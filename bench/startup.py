"""Benchmark: how long the registry-reading commands take to start, beside ``import feast``.

Applies a copy of ``feature_repo/`` under a project of its own (``feast apply``; nothing is
materialized, so the commands do their whole work on an empty store and what is measured is their
start-up), then runs, in the same rounds and in a rotating order so that they share the machine's
load:

* ``python -c "import feast"``: the reference (what every command cost when it opened Feast's
  ``FeatureStore``);
* ``python -c pass``: the interpreter alone;
* ``xiva-source status``, ``segmentation validate``, ``segmentation sizes`` (as
  ``python -m ...``), against the copy.

Each is a fresh subprocess. Prints, per command, the median wall time and the median CPU time
(user + system of the child: steadier than wall time on a shared machine) and both as a ratio of
``import feast``'s; the target of ``status`` and ``validate`` is a ratio of at most 0.5. Redis
from ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``: read only), the DWH an empty SQLite
file. Not a test: run it by hand::

    python bench/startup.py --runs 7
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.5
TARGETED = ("xiva-source status", "segmentation validate")


def _apply(target: Path, env: dict[str, str]) -> Path:
    shutil.copytree(
        ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    path = target / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = f"startup_{uuid.uuid4().hex[:8]}"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    feast = Path(sys.executable).parent / "feast"
    subprocess.run(
        [str(feast), "-c", str(target), "apply"], env=env, check=True, capture_output=True
    )
    return target


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    """Run the benchmark; exit 1 when a targeted command misses the target (by CPU time)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "DWH_URL": f"sqlite:///{Path(tmp) / 'dwh.db'}",
            "FEATURE_STORE_ENV_FILE": "none",
        }
        repo = str(_apply(Path(tmp) / "repo", env))
        commands = {
            "import feast": [py, "-c", "import feast"],
            "python (nothing)": [py, "-c", "pass"],
            "xiva-source status": [py, "-m", "xiva_source", "--repo", repo, "status"],
            "segmentation validate": [py, "-m", "segmentation", "--repo", repo, "validate"],
            "segmentation sizes": [py, "-m", "segmentation", "--repo", repo, "sizes"],
        }
        names = list(commands)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for _ in range(2):  # warm the file cache; not counted
            for name in names:
                _run(commands[name], env)
        for round_ in range(args.runs):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_run(commands[name], env))
    wall = {n: statistics.median(w for w, _ in times[n]) for n in names}
    cpu = {n: statistics.median(c for _, c in times[n]) for n in names}
    print(f"start-up, median of {args.runs} runs (load average {os.getloadavg()[0]:.1f})")
    print(f"{'command':<24}{'wall s':>8}{'ratio':>7}{'cpu s':>8}{'ratio':>7}")
    missed = []
    for name in names:
        ratio_wall, ratio_cpu = wall[name] / wall["import feast"], cpu[name] / cpu["import feast"]
        mark = ""
        if name in TARGETED:
            mark = "  ok (<= 0.5)" if ratio_cpu <= TARGET else "  MISSED (> 0.5)"
            if ratio_cpu > TARGET:
                missed.append(name)
        print(
            f"{name:<24}{wall[name]:>8.2f}{ratio_wall:>7.2f}{cpu[name]:>8.2f}{ratio_cpu:>7.2f}"
            + mark
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
