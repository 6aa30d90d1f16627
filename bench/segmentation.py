"""Benchmark: segments over the whole population, streamed, beside the stock path.

Fills Redis with ``--customers`` customers in Feast's exact online layout (keys and fields from
:mod:`xiva_source.feast_plugin.redis_format`, values as Feast serializes them; pipelined ``HSET``)
for a temporary repository and project of its own, in its own Redis database, then measures in
the same run:

* this project, over the whole population, streamed in chunks (``SegmentEngine``: SCAN +
  pipelined HMGET + column decoding + vectorized rules, chunk by chunk): ``sizes`` of every
  segment, ``members`` of one, ``export`` of one with its features (parquet), ``refresh`` of every
  segment (memberships stored in Redis); time, rows/s and the peak resident memory (VmHWM, reset
  before each step) of each;
* the stock path on a random sample (``--sample``): ``FeatureStore.get_online_features`` in
  batches, rows as dicts, per-row ``json_logic.jsonLogic`` for every rule of every segment;
  extrapolated to the whole population (it is linear in the customers);

and checks that both paths find the same members on the sample (and that stock Feast reads what
was written). With ``--cluster`` the same runs on a 3-primary Redis Cluster the benchmark starts
on loopback (``redis-server --cluster-enabled yes``), read in parallel, one thread per primary.
Everything written is deleted at the end. Not a test: run it by hand::

    python bench/segmentation.py --customers 1000000 --segments 10 --sample 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segmentation import Segment, SegmentEngine, evaluate_frame
from xiva_source.feast_plugin.redis_format import (
    RedisLayout,
    encode_column,
    encode_timestamp,
    field_name,
    timestamp_field,
)
from xiva_source.feast_plugin.redis_scan import primary_clients

CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Nantes", "Nice", None]
STATUSES = ["active", "inactive", "churned", None]
TIERS = ["bronze", "silver", "gold", "platinum", None]
VIEW = "customer_features"
FEATURES = {  # name -> Feast value type of the view's schema
    "customer_status": "string",
    "total_revenue": "double",
    "transaction_count": "int64",
    "last_purchase_days_ago": "int64",
    "customer_tier": "string",
    "city": "string",
    "age": "int64",
}

# Rules whose null behaviour is the same in plain json-logic-qubit and in the segment null policy,
# so the two paths must agree exactly.
RULES: list[tuple[str, list[dict[str, Any]]]] = [
    ("active_frequent", [{"==": [{"var": "customer_status"}, "active"]},
                         {">=": [{"var": "transaction_count"}, 10]},
                         {"<=": [{"var": "last_purchase_days_ago"}, 30]}]),
    ("lapsed_high_value", [{">=": [{"var": "total_revenue"}, 1000]},
                           {">": [{"var": "last_purchase_days_ago"}, 90]}]),
    ("young_urban", [{"<=": [18, {"var": "age"}, 29]},
                     {"in": [{"var": "city"}, ["Paris", "Lyon", "Marseille"]]}]),
    ("gold_plus", [{"in": [{"var": "customer_tier"}, ["gold", "platinum"]]}]),
    ("seniors", [{">=": [{"var": "age"}, 65]}]),
    ("rich_young", [{">": [{"var": "total_revenue"}, 2000]}, {"<": [{"var": "age"}, 40]}]),
    ("paris_active", [{"and": [{"==": [{"var": "city"}, "Paris"]},
                               {"==": [{"var": "customer_status"}, "active"]}]}]),
    ("dormant", [{"or": [{"==": [{"var": "customer_status"}, "inactive"]},
                         {">": [{"var": "last_purchase_days_ago"}, 150]}]}]),
    ("mid_revenue", [{"<": [500, {"var": "total_revenue"}, 1500]}]),
    ("few_tx_rich", [{"<": [{"var": "transaction_count"}, 5]},
                     {">=": [{"var": "total_revenue"}, 800]}]),
]  # fmt: skip


# --- memory ---------------------------------------------------------------------------------------
def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    return _status_mb("VmHWM")


# --- the repository and the data ----------------------------------------------------------------
def build_repo(path: Path, project: str, connection: str, cluster: bool) -> Any:
    """A Feast repository of the benchmark's own (one view, applied; nothing materialized)."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    (path / "data").mkdir(parents=True)
    kind = "  redis_type: redis_cluster\n" if cluster else ""
    (path / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: {path / 'data' / 'registry.db'}\n"
        f'online_store:\n  type: redis\n{kind}  connection_string: "{connection}"\n'
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    types = {"string": String, "double": Float64, "int64": Int64}
    empty = pd.DataFrame(
        {
            "customer_id": pd.Series([], dtype=object),
            **{n: pd.Series([], dtype=object) for n in FEATURES},
            "event_timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )
    empty.to_parquet(path / "data" / "c.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    fv = FeatureView(
        name=VIEW,
        entities=[customer],
        ttl=dt.timedelta(days=2),
        schema=[Field(name=n, dtype=types[t]) for n, t in FEATURES.items()],
        source=FileSource(path=str(path / "data" / "c.parquet"), timestamp_field="event_timestamp"),
    )
    store = FeatureStore(repo_path=str(path))
    store.apply([customer, fv])
    return store


def customer_id(i: int) -> str:
    return f"C{i:07d}"


def generate(start: int, n: int, seed: int = 42) -> dict[str, list[Any]]:
    """Customers ``start`` .. ``start + n - 1``: the same values whatever the chunking."""
    rng = np.random.default_rng([seed, start])

    def maybe(values: np.ndarray) -> list[Any]:
        out: list[Any] = values.tolist()
        for i in np.flatnonzero(rng.random(n) < 0.05):
            out[i] = None
        return out

    def pick(choices: list[Any]) -> list[Any]:
        return [choices[i] for i in rng.integers(0, len(choices), n)]

    return {
        "customer_status": pick(STATUSES),
        "total_revenue": maybe(np.round(rng.uniform(0, 3000, n), 2)),
        "transaction_count": maybe(rng.integers(0, 41, n)),
        "last_purchase_days_ago": maybe(rng.integers(0, 366, n)),
        "customer_tier": pick(TIERS),
        "city": pick(CITIES),
        "age": maybe(rng.integers(16, 91, n)),
    }


def populate(client: Any, layout: RedisLayout, n: int, chunk: int = 20_000) -> float:
    """Write ``n`` customers in Feast's layout with pipelined HSET; returns the seconds taken."""
    import pyarrow as pa
    from feast.value_type import ValueType

    arrow = {"string": pa.string(), "double": pa.float64(), "int64": pa.int64()}
    value_types = {"string": ValueType.STRING, "double": ValueType.DOUBLE, "int64": ValueType.INT64}
    fields = {name: field_name(VIEW, name) for name in FEATURES}
    ts = encode_timestamp(int(time.time()))
    ts_field = timestamp_field(VIEW)
    cluster = _is_cluster(client)
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        columns = generate(start, size)
        cells: dict[bytes, list[bytes]] = {}
        for name, kind in FEATURES.items():
            column = pa.array(columns[name], arrow[kind])
            cells[fields[name]] = encode_column(column, value_types[kind])[0].tolist()
        keys = [layout.key(customer_id(start + i)) for i in range(size)]
        by_node: dict[str, tuple[Any, list[int]]] = {}
        if cluster:
            for i, key in enumerate(keys):
                node = client.get_node_from_key(key)
                by_node.setdefault(node.name, (node, []))[1].append(i)
            targets = [(client.get_redis_connection(nd), idx) for nd, idx in by_node.values()]
        else:
            targets = [(client, list(range(size)))]
        for node_client, rows in targets:
            with node_client.pipeline(transaction=False) as pipe:
                for i in rows:
                    mapping = {f: col[i] for f, col in cells.items()}
                    mapping[ts_field] = ts
                    pipe.hset(keys[i], mapping=mapping)
                pipe.execute()
    return time.perf_counter() - t0


def _is_cluster(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def bytes_per_customer(client: Any, layout: RedisLayout, n: int, sample: int = 2_000) -> float:
    """Mean ``MEMORY USAGE`` of a sample of the customers' hashes (the key and its fields)."""
    picked = random.Random(3).sample(range(n), min(sample, n))
    sizes = [int(client.memory_usage(layout.key(customer_id(i)), samples=0)) for i in picked]
    return statistics.fmean(sizes) if sizes else 0.0


def cleanup(client: Any, project: str) -> None:
    """Delete every key of the benchmark's project (Feast hashes and memberships)."""
    for node in primary_clients(client):
        batch: list[bytes] = []
        for key in node.scan_iter(match=f"*{project}*", count=10_000):
            batch.append(key)
            if len(batch) >= 5_000:
                _unlink(node, batch)
                batch = []
        _unlink(node, batch)


def _unlink(node: Any, keys: list[bytes]) -> None:
    """One UNLINK per key, pipelined (a cluster node refuses keys of several slots at once)."""
    with node.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.unlink(key)
        pipe.execute()


# --- measuring -----------------------------------------------------------------------------------
@dataclass
class Step:
    """One measured step: customers, seconds, RSS before and peak RSS during (MB)."""

    name: str
    rows: int
    seconds: float
    cpu: float  # this process's CPU seconds (on a shared machine, what the step itself costs)
    before: float
    peak: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def measure(name: str, rows: int, fn: Callable[[], Any]) -> tuple[Step, Any]:
    before = rss_mb()
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Step(name, rows, seconds, cpu, before, peak_mb()), result


def read_all(engine: SegmentEngine, parallel: bool) -> int:
    """Read the whole population's features (no evaluation); returns the customers read."""
    chunks = engine.reader.iter_population(engine.features, chunk=engine.chunk, parallel=parallel)
    return sum(len(frame) for frame in chunks)


def all_members(engine: SegmentEngine) -> dict[str, list[str]]:
    """Every segment's member ids in one streamed pass (:meth:`SegmentEngine.chunk_masks`)."""
    found: dict[str, list[str]] = {name: [] for name in engine.segments}
    for masks in engine.chunk_masks():
        for name, ids in found.items():
            ids.extend(masks.index[masks[name].to_numpy(dtype=bool)].tolist())
    for ids in found.values():
        ids.sort()
    return found


def stock_rows(store: Any, ids: list[str], batch: int) -> Iterator[dict[str, Any]]:
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    for i in range(0, len(ids), batch):
        part = ids[i : i + batch]
        resp = store.get_online_features(
            features=refs, entity_rows=[{"customer_id": c} for c in part]
        ).to_dict()
        keys = list(resp)
        for values in zip(*resp.values(), strict=True):
            yield dict(zip(keys, values, strict=True))


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def start_cluster(workdir: Path) -> Any:
    from tests.support.redis_cluster import start_cluster as start

    return start(workdir)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--segments", type=int, default=10)
    p.add_argument("--sample", type=int, default=20_000, help="customers read the stock way")
    p.add_argument("--redis", default="127.0.0.1:6379,db=11", help="Feast connection_string")
    p.add_argument("--cluster", action="store_true", help="start a 3-primary Redis Cluster")
    p.add_argument("--chunk", type=int, default=100_000, help="customers per streamed chunk")
    p.add_argument("--stock-batch", type=int, default=1_000, help="rows per get_online_features")
    p.add_argument("--one", type=int, default=300, help="customers timed one at a time")
    p.add_argument("--no-refresh", action="store_true", help="skip the refresh step")
    args = p.parse_args()

    import json_logic

    project = f"segbench_{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp())
    nodes = start_cluster(tmp / "cluster") if args.cluster else None
    connection = ",".join(f"127.0.0.1:{q}" for q in nodes.ports) if nodes else args.redis
    n = args.customers
    try:
        store = build_repo(tmp / "repo", project, connection, cluster=nodes is not None)
        chosen = [RULES[i % len(RULES)] for i in range(args.segments)]
        segments = [Segment(f"{name}_{i}", rules) for i, (name, rules) in enumerate(chosen)]
        engine = SegmentEngine(store, segments, max_age=None, chunk=args.chunk)
        client = engine.reader.client
        try:
            seconds = populate(client, engine.reader.layout, n)
            per_customer = bytes_per_customer(client, engine.reader.layout, n)
            print(
                f"wrote {n:,} customers in Feast's layout (pipelined HSET) in {seconds:.1f}s "
                f"({n / seconds:,.0f} rows/s); MEMORY USAGE {per_customer:.0f} bytes/customer"
            )
            where = f"{len(engine.reader.node_clients())}-primary cluster" if nodes else "Redis"
            print(f"{n:,} customers x {len(segments)} segments; chunk {args.chunk:,}; {where}")
            return run(args, store, engine, segments, json_logic)
        finally:
            cleanup(client, project)
    finally:
        if nodes is not None:
            from tests.support.redis_cluster import stop_cluster

            stop_cluster(nodes)
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, store: Any, engine: SegmentEngine, segments: list[Segment],
        json_logic: Any) -> int:  # fmt: skip
    n = args.customers
    ids = [customer_id(i) for i in sorted(random.Random(7).sample(range(n), min(args.sample, n)))]
    steps: list[Step] = []
    baseline = rss_mb()

    # (b) ours, whole population, streamed
    step, sizes = measure(f"sizes ({len(segments)} segments)", n, engine.sizes)
    steps.append(step)
    first = segments[0].name
    step, members = measure(f"members ({first})", n, lambda: engine.members(first))
    steps.append(step)
    out = Path(tempfile.mkdtemp()) / "export.parquet"
    step, exported = measure(
        "export with features (parquet)",
        n,
        lambda: engine.export(first, out, with_features=True),
    )
    steps.append(step)
    assert exported == len(members) == sizes[first]
    shutil.rmtree(out.parent, ignore_errors=True)
    if engine.reader.is_cluster:  # the read alone, primaries at once vs one after another
        for parallel in (True, False):
            step, count = measure(
                f"read only, primaries {'in parallel' if parallel else 'in turn'}",
                n,
                lambda parallel=parallel: read_all(engine, parallel),  # type: ignore[misc]
            )
            steps.append(step)
            assert count == n
    step, every = measure(
        f"members of all {len(segments)} (one pass, as refresh)", n, lambda: all_members(engine)
    )
    steps.append(step)
    assert {k: len(v) for k, v in every.items()} == sizes and every[first] == members
    del every
    if not args.no_refresh:
        step, results = measure(f"refresh ({len(segments)} segments)", n, engine.refresh)
        steps.append(step)
        assert {k: r.size for k, r in results.items()} == sizes
        del results

    # (a) stock on the sample: get_online_features -> dict rows -> per-row jsonLogic
    t0, c0 = time.perf_counter(), time.process_time()
    rows = list(stock_rows(store, ids, args.stock_batch))
    stock_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    stock_members = {
        s.name: {
            r["customer_id"] for r in rows if all(json_logic.jsonLogic(x.rule, r) for x in s.rules)
        }
        for s in segments
    }
    stock_eval = time.perf_counter() - t0
    stock_cpu = time.process_time() - c0
    del rows

    # the same sample, our way: the members must be the same
    frame = engine.reader.read(ids, engine.features)
    t0 = time.perf_counter()
    masks = evaluate_frame(segments, frame)
    our_eval = time.perf_counter() - t0
    for s in segments:
        ours = set(frame.index[masks[s.name].to_numpy(dtype=bool)])
        assert ours == stock_members[s.name], s.name
    sample = set(ids)
    assert {c for c in members if c in sample} == stock_members[first]
    assert all(not s.fallbacks for s in segments)

    one = ids[: args.one]
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    stock_one: list[float] = []
    ours_one: list[float] = []
    for cid in one:
        t0 = time.perf_counter()
        resp = store.get_online_features(features=refs, entity_rows=[{"customer_id": cid}])
        row = {k: v[0] for k, v in resp.to_dict().items()}
        got = [s.name for s in segments if all(json_logic.jsonLogic(r.rule, row) for r in s.rules)]
        stock_one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mine = engine.segments_of(cid)
        ours_one.append(time.perf_counter() - t0)
        assert got == mine, cid

    m = len(ids)
    stock_total = (stock_read + stock_eval) * n / m
    print(f"same members in both paths on the {m:,}-customer sample; sizes {sizes}")
    print(f"RSS after setup (Feast, registry, interpreter): {baseline:.0f} MB")
    line = "{:<44}{:>9}{:>9}{:>10}{:>10}{:>10}{:>9}"
    print(line.format("", "time (s)", "cpu (s)", "rows/s", "RSS (MB)", "peak (MB)", "vs stock"))
    print(
        line.format(
            f"stock, {m:,} sampled, extrapolated to {n:,}",
            f"{stock_total:.1f}",
            f"{stock_cpu * n / m:.1f}",
            f"{m / (stock_read + stock_eval):,.0f}",
            "",
            "",
            "1.0x",
        )
    )
    for s in steps:
        print(
            line.format(
                s.name,
                f"{s.seconds:.1f}",
                f"{s.cpu:.1f}",
                f"{s.rate:,.0f}",
                f"{s.before:.0f}",
                f"{s.peak:.0f}",
                f"{stock_total / s.seconds:.1f}x",
            )
        )
    print(f"ratios in CPU seconds: {', '.join(f'{stock_cpu * n / m / s.cpu:.1f}x' for s in steps)}")
    print(
        f"evaluation alone on the sample: stock {stock_eval:.3f}s, vectorized {our_eval:.3f}s "
        f"({stock_eval / our_eval:.0f}x); stock read {stock_read:.2f}s "
        f"({m / stock_read:,.0f} rows/s)"
    )
    for q in (50, 99):
        a, b = pct(stock_one, q) * 1e3, pct(ours_one, q) * 1e3
        print(f"one customer's segments p{q}: stock {a:.3f} ms, ours {b:.3f} ms ({a / b:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
