"""``make demo``: the whole pipeline end to end, with nothing running and nothing to configure.

1. Starts the bundled Xiva simulator in this process (1,000 customers by default).
2. Fills an embedded SQLite DWH with :func:`~xiva_source.demo.data.create_demo_dwh` (the same
   customers, minus every tenth, plus some DWH-only ones).
3. Copies the feature repository to a temporary directory whose ``feature_store.yaml`` uses
   Feast's embedded ``sqlite`` online store and a local registry, and applies it.
4. Runs the cron job's :func:`~xiva_source.jobs.materialize.run_materialization` in ``auto`` mode,
   shows a few customers' online features and the size of each segment.
5. Changes 10 customers in the simulator and runs again: the incremental run fetches only them.

Neither Redis nor PostgreSQL is needed; everything lives in a temporary directory that is deleted
at the end (``--keep`` keeps it), and the simulator is stopped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from xiva_source.jobs.materialize import RunSummary
    from xiva_source.simulator import XivaSimulator

__all__ = ["DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-pass"  # the simulator's throwaway account, not a real secret
CHANGED_CUSTOMERS = 10
SHOWN_FEATURES = (
    "customer_status",
    "customer_tier",
    "city",
    "age",
    "total_revenue",
    "transaction_count",
    "churn_score",
)


@dataclass
class DemoResult:
    """What the demo did (the tests read it; the CLI prints it)."""

    first: RunSummary
    """The first (full) run."""
    second: RunSummary
    """The incremental run after changing customers."""
    customers: int
    """Customers served online (Xiva and DWH together)."""
    sample: list[dict[str, Any]] = field(default_factory=list)
    """A few customers' online features."""
    segment_sizes: dict[str, int] = field(default_factory=dict)
    """Segment name -> members among the demo customers (the segments of ``SEGMENTS_DIR``, by
    default the shipped examples)."""
    second_run_360_calls: int = 0
    """360-view calls the second run made (= the customers that changed)."""


def run_demo(
    customers: int = 1000,
    *,
    repo_path: str | os.PathLike[str] = "feature_repo",
    workdir: str | os.PathLike[str] | None = None,
    out: Any = None,
) -> DemoResult:
    """Run the demo; prints as it goes to ``out`` (default stdout).

    Args:
        customers: Customers in the simulator.
        repo_path: The feature repository to copy.
        workdir: Where the DWH, registry and online store go; default a temp dir, deleted after.
        out: A text stream for the narration.

    Returns:
        The :class:`DemoResult`.

    Raises:
        FileNotFoundError: ``repo_path`` has no ``feature_store.yaml``.
        MaterializationError: A run failed.
    """
    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.dwh import dispose_engines
    from xiva_source.jobs.materialize import run_materialization
    from xiva_source.simulator import SimulatorConfig, XivaSimulator

    out = out or sys.stdout
    source_repo = Path(repo_path).resolve()
    if not (source_repo / "feature_store.yaml").is_file():
        raise FileNotFoundError(
            f"No feature_store.yaml in {str(source_repo)!r}: run the demo from the project root "
            "or pass --repo with the feature repository."
        )

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    with contextlib.ExitStack() as stack:
        if workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xiva-demo-")))
        else:
            work = Path(workdir)
            work.mkdir(parents=True, exist_ok=True)
        config = SimulatorConfig(customers=customers, seed=42, users={DEMO_USER: DEMO_PASSWORD})
        sim = stack.enter_context(XivaSimulator(config))
        say(f"Xiva simulator: {customers:,} customers at {sim.base_url}")

        dwh_url = f"sqlite:///{work / 'dwh.sqlite'}"
        stack.callback(dispose_engines)
        dwh = create_demo_dwh(dwh_url, sim, seed=42)
        say(
            f"DWH (SQLite {work / 'dwh.sqlite'}): {len(dwh.customer_ids):,} customers "
            f"({len(dwh.shared_ids):,} also in Xiva, {len(dwh.dwh_only_ids):,} DWH-only; "
            f"{len(dwh.xiva_only_ids):,} are only in Xiva)"
        )
        stack.enter_context(_demo_env(sim, dwh_url))
        repo = _demo_repo(source_repo, work / "feature_repo")
        store = _apply(repo)
        say(f"Feature repo: {repo} (online store: embedded sqlite), applied")

        say("\n== Run 1: first materialization (everything, however old) ==")
        sim.reset_counters()
        first = run_materialization(repo, progress=False)
        say(first.line())

        ids = sorted(set(dwh.customer_ids) | set(sim.customer_ids()))
        frame = _online_frame(store, ids)
        served = int(frame.drop(columns=["customer_id"]).notna().any(axis=1).sum())
        say(f"\nOnline: {served:,} of {len(ids):,} customers have features. A few of them:")
        sample = _sample(
            frame,
            {
                "xiva+dwh": dwh.shared_ids[:2],
                "xiva only": dwh.xiva_only_ids[:1],
                "dwh only": dwh.dwh_only_ids[:1],
            },
        )
        say(_table(sample))

        sizes = _segment_sizes(frame)
        say(f"\nSegments over {len(ids):,} customers:")
        for name, size in sizes.items():
            say(f"  {name:<28} {size:>6,}")

        say(f"\n== Run 2: {CHANGED_CUSTOMERS} customers change in Xiva, incremental run ==")
        sim.update_customers(count=CHANGED_CUSTOMERS)
        sim.reset_counters()
        second = run_materialization(repo, progress=False)
        calls_360 = _calls(sim.counters(), "customer_360")
        say(second.line())
        say(f"Xiva 360-view calls in run 2: {calls_360} (one per changed customer)")
        result = DemoResult(
            first=first,
            second=second,
            customers=served,
            sample=sample,
            segment_sizes=sizes,
            second_run_360_calls=calls_360,
        )
    return result


@contextlib.contextmanager
def _demo_env(sim: XivaSimulator, dwh_url: str) -> Iterator[None]:
    """The settings of the demo, as a deployment would set them, restored afterwards."""
    values = {
        "XIVA_API_BASE_URL": sim.base_url,
        "XIVA_API_USERNAME": DEMO_USER,
        "XIVA_API_PASSWORD": DEMO_PASSWORD,
        # The simulator does not throttle; the client may go as fast as it can.
        "XIVA_REQUESTS_PER_SECOND": "2000",
        "DWH_URL": dwh_url,
        "FEATURE_STORE_DATA_SOURCE": "auto",
        "FEATURE_STORE_MERGE_STRATEGY": "xiva_first",
    }
    saved = {name: os.environ.get(name) for name in [*values, "REDIS_URL"]}
    os.environ.update(values)
    os.environ.pop("REDIS_URL", None)  # nothing may need a running Redis
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _demo_repo(source: Path, target: Path) -> Path:
    """Copy the repository, pointing registry and online store at embedded files in ``target``."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("data", "__pycache__", "*.db"))
    config_path = target / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text()) or {}
    config["registry"] = {"registry_type": "file", "path": str(target / "data" / "registry.db")}
    config["online_store"] = {"type": "sqlite", "path": str(target / "data" / "online.db")}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    (target / "data").mkdir(exist_ok=True)
    return target


def _apply(repo: Path) -> FeatureStore:
    """``feast apply`` in-process (its output is kept out of the demo's narration).

    Like the ``feast`` CLI, the repository is put on ``sys.path`` so its files can import each
    other (``from entities import customer``); the path and the modules are removed afterwards so
    a later apply of another copy imports its own files.
    """
    from feast import FeatureStore
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    cwd = Path.cwd()
    modules = {path.stem for path in repo.glob("*.py")}
    buffer = io.StringIO()
    sys.path.insert(0, str(repo))
    try:
        with contextlib.redirect_stdout(buffer):
            config = load_repo_config(repo, repo / "feature_store.yaml")
            apply_total(config, repo, skip_source_validation=True)
    except SystemExit as e:  # apply_total exits on a bad repository
        raise RuntimeError(f"feast apply failed: {buffer.getvalue().strip()}") from e
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))
        for name in modules:
            sys.modules.pop(name, None)
    return FeatureStore(repo_path=str(repo))


def _online_frame(store: FeatureStore, ids: Sequence[str]) -> pd.DataFrame:
    """Every customer's online features (all views, the derived ones too) as one frame."""
    refs = [
        f"{fv.name}:{feature.name}"
        for fv in store.list_feature_views()
        for feature in fv.features
        if any(column.name == "customer_id" for column in fv.entity_columns)
    ]
    # age and last_purchase_days_ago: derived as of now by the on-demand view.
    refs += [f"{v.name}:{f.name}" for v in store.list_on_demand_feature_views() for f in v.features]
    return store.get_online_features(
        features=refs, entity_rows=[{"customer_id": cid} for cid in ids]
    ).to_df()


def _sample(frame: pd.DataFrame, groups: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """A few customers' features; ``groups`` maps a label (where they live) to customer ids."""
    columns = ["customer_id", *[c for c in SHOWN_FEATURES if c in frame.columns]]
    typed = frame[columns].convert_dtypes()  # nullable ints stay ints next to nulls
    by_id = typed.set_index("customer_id", drop=False)
    rows = []
    for label, ids in groups.items():
        for cid in ids:
            if cid in by_id.index:
                rows.append({"in": label, **{str(k): v for k, v in by_id.loc[cid].items()}})
    return rows


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    import pandas as pd

    if not rows:
        return "  (none)"
    columns = list(rows[0])

    def cell(value: Any, column: str) -> str:
        if value is None or pd.isna(value):
            return "-"
        if column == "customer_id":
            return str(value)  # whole: it is pasted into `segmentation evaluate`, `refresh`
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    cells = [[cell(row[c], c) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _segment_sizes(frame: pd.DataFrame) -> dict[str, int]:
    """Members per segment among ``frame``'s customers (segmentation's vectorized engine)."""
    from segmentation import evaluate_frame, load_segments

    masks = evaluate_frame(load_segments(), frame)
    return {name: int(masks[name].sum()) for name in masks.columns}


def _calls(counters: Mapping[str, Any], endpoint: str) -> int:
    by_status = counters.get("by_endpoint", {}).get(endpoint, {})
    return int(sum(by_status.values()))
