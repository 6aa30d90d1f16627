"""Benchmark: segments over Feast online features, stock path vs the segmentation package.

Writes ``--customers`` customers to Redis through Feast (a temporary repo and project), then in the
same run measures:

* (a) the stock path: ``FeatureStore.get_online_features`` in batches, rows as dicts, per-row
  ``json_logic.jsonLogic`` for every rule of every segment;
* (b) this project: ``SegmentEngine`` (SCAN + pipelined HMGET + column decoding, vectorized rules).

It asserts both paths find the same members, and prints evaluation alone, end to end (read +
evaluate) and one customer's segments (p50/p99), with ratios. Not a test: run it by hand::

    python bench/segmentation.py --customers 100000 --segments 10
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
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segmentation import Segment, SegmentEngine, evaluate_frame

CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Nantes", "Nice", None]
STATUSES = ["active", "inactive", "churned", None]
TIERS = ["bronze", "silver", "gold", "platinum", None]

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


def build(path: Path, project: str, n: int, redis: str) -> Any:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    (path / "data").mkdir(parents=True)
    (path / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: {path / 'data' / 'registry.db'}\n"
        f'online_store:\n  type: redis\n  connection_string: "{redis}"\n'
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    rnd = random.Random(42)
    now = dt.datetime.now(dt.UTC)

    def maybe(v: Any) -> Any:
        return None if rnd.random() < 0.05 else v

    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "customer_status": [rnd.choice(STATUSES) for _ in range(n)],
            "total_revenue": [maybe(round(rnd.uniform(0, 3000), 2)) for _ in range(n)],
            "transaction_count": pd.array([maybe(rnd.randint(0, 40)) for _ in range(n)], "Int64"),
            "last_purchase_days_ago": pd.array(
                [maybe(rnd.randint(0, 365)) for _ in range(n)], "Int64"
            ),
            "customer_tier": [rnd.choice(TIERS) for _ in range(n)],
            "city": [rnd.choice(CITIES) for _ in range(n)],
            "age": pd.array([maybe(rnd.randint(16, 90)) for _ in range(n)], "Int64"),
            "event_timestamp": [now] * n,
        }
    )
    df.to_parquet(path / "data" / "c.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    fv = FeatureView(
        name="customer_features",
        entities=[customer],
        ttl=dt.timedelta(days=2),
        schema=[
            Field(name="customer_status", dtype=String),
            Field(name="total_revenue", dtype=Float64),
            Field(name="transaction_count", dtype=Int64),
            Field(name="last_purchase_days_ago", dtype=Int64),
            Field(name="customer_tier", dtype=String),
            Field(name="city", dtype=String),
            Field(name="age", dtype=Int64),
        ],
        source=FileSource(path=str(path / "data" / "c.parquet"), timestamp_field="event_timestamp"),
    )
    store = FeatureStore(repo_path=str(path))
    store.apply([customer, fv])
    for i in range(0, n, 20_000):
        store.write_to_online_store("customer_features", df.iloc[i : i + 20_000])
    return store, list(df["customer_id"])


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--segments", type=int, default=10)
    p.add_argument("--redis", default="127.0.0.1:6379", help="Feast connection_string")
    p.add_argument("--stock-batch", type=int, default=10_000, help="rows per get_online_features")
    p.add_argument("--one", type=int, default=500, help="customers timed one at a time")
    args = p.parse_args()

    import json_logic

    project = f"segbench_{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    store, ids = build(tmp / "repo", project, args.customers, args.redis)
    print(f"wrote {len(ids):,} customers via Feast in {time.perf_counter() - t0:.1f}s")
    chosen = [RULES[i % len(RULES)] for i in range(args.segments)]
    segments = [Segment(f"{name}_{i}", rules) for i, (name, rules) in enumerate(chosen)]
    engine = SegmentEngine(store, segments, max_age=None)
    refs = [f"customer_features:{f}" for f in engine.features]
    try:
        # (a) stock: get_online_features in batches -> rows as dicts -> per-row jsonLogic
        t0 = time.perf_counter()
        rows: list[dict[str, Any]] = []
        for i in range(0, len(ids), args.stock_batch):
            batch = ids[i : i + args.stock_batch]
            resp = store.get_online_features(
                features=refs, entity_rows=[{"customer_id": c} for c in batch]
            ).to_dict()
            keys = list(resp)
            rows.extend(
                dict(zip(keys, vals, strict=True)) for vals in zip(*resp.values(), strict=True)
            )
        stock_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        stock_members = {
            s.name: {
                r["customer_id"]
                for r in rows
                if all(json_logic.jsonLogic(rule.rule, r) for rule in s.rules)
            }
            for s in segments
        }
        stock_eval = time.perf_counter() - t0

        # (b) ours: SCAN + HMGET + column decoding, then vectorized masks
        t0 = time.perf_counter()
        frame = pd.concat(list(engine.frames()))
        our_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        masks = evaluate_frame(segments, frame)
        our_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = engine.evaluate()
        our_e2e = time.perf_counter() - t0
        for s in segments:
            ours = set(frame.index[masks[s.name].to_numpy()])
            assert ours == stock_members[s.name], s.name
            assert set(table.index[table[s.name].to_numpy()]) == ours, s.name
        assert all(not s.fallbacks for s in segments)

        sample = random.Random(7).sample(ids, min(args.one, len(ids)))
        stock_one: list[float] = []
        ours_one: list[float] = []
        for cid in sample:
            t0 = time.perf_counter()
            resp = store.get_online_features(features=refs, entity_rows=[{"customer_id": cid}])
            row = {k: v[0] for k, v in resp.to_dict().items()}
            got = [
                s.name for s in segments if all(json_logic.jsonLogic(r.rule, row) for r in s.rules)
            ]
            stock_one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mine = engine.segments_of(cid)
            ours_one.append(time.perf_counter() - t0)
            assert got == mine, cid
    finally:
        client = engine.reader.client
        doomed: list[bytes] = []
        for key in client.scan_iter(match=f"*{project}", count=10_000):
            doomed.append(key)
            if len(doomed) >= 10_000:
                client.delete(*doomed)
                doomed = []
        if doomed:
            client.delete(*doomed)
        shutil.rmtree(tmp, ignore_errors=True)

    n = len(ids)
    sizes = {k: len(v) for k, v in stock_members.items()}
    print(f"{n:,} customers x {len(segments)} segments; same members in both paths; sizes {sizes}")
    line = "{:<34}{:>14}{:>14}{:>10}"
    print(line.format("", "stock", "segmentation", "ratio"))
    print(
        line.format(
            "read (s)", f"{stock_read:.2f}", f"{our_read:.2f}", f"{stock_read / our_read:.1f}x"
        )
    )
    print(
        line.format(
            "evaluation alone (s)",
            f"{stock_eval:.3f}",
            f"{our_eval:.3f}",
            f"{stock_eval / our_eval:.0f}x",
        )
    )
    s_e2e = stock_read + stock_eval
    print(
        line.format(
            "end to end, read + evaluate (s)",
            f"{s_e2e:.2f}",
            f"{our_e2e:.2f}",
            f"{s_e2e / our_e2e:.1f}x",
        )
    )
    print(line.format("rows/s end to end", f"{n / s_e2e:,.0f}", f"{n / our_e2e:,.0f}", ""))
    for q in (50, 99):
        a, b = pct(stock_one, q) * 1e3, pct(ours_one, q) * 1e3
        print(
            line.format(
                f"one customer's segments p{q} (ms)", f"{a:.3f}", f"{b:.3f}", f"{a / b:.1f}x"
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
