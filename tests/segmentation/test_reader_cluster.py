"""Segmentation on the real 3-primary Redis Cluster equals segmentation on single-node Redis.

The same rows are written by Feast's own ``write_to_online_store`` to the single Redis (the
module's repository) and to the cluster (a copy of the repository with ``redis_type:
redis_cluster``, the same registry and project); every primary is then scanned and read in
parallel, one thread per primary.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from segmentation import OnlineReader, Segment, SegmentEngine
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.segmentation.repo import (
    FeastRepo,
    build_repo,
    delete_project_keys,
    stored_rows,
)

N = 2000

SEGMENTS = [
    Segment("paris_adults", [{">=": [{"var": "age"}, 30]}, {"==": [{"var": "city"}, "Paris"]}]),
    Segment("big_spenders", [{">": [{"var": "total_revenue"}, 1500]}]),
    Segment("likely_churn", [{">=": [{"var": "churn_score"}, 0.7]}]),
    Segment("no_status", [{"missing": ["customer_status"]}]),
]


@dataclass
class TwinRepos:
    single: FeastRepo  # on the single Redis
    cluster_store: Any  # feast.FeatureStore on the cluster, same registry and project
    nodes: RedisClusterNodes


@pytest.fixture(scope="module")
def twins(
    tmp_path_factory: pytest.TempPathFactory, redis_cluster: RedisClusterNodes, redis_url: str
) -> Iterator[TwinRepos]:
    from feast import FeatureStore

    project = f"segcluster_{uuid.uuid4().hex[:10]}"
    single = build_repo(tmp_path_factory.mktemp("seg_single"), project, N, redis_url)
    path = tmp_path_factory.mktemp("seg_cluster") / "repo"
    shutil.copytree(single.path, path)
    nodes = ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports)
    yaml = (path / "feature_store.yaml").read_text()
    conn = next(line for line in yaml.splitlines() if "connection_string" in line)
    yaml = yaml.replace(conn, f'  redis_type: redis_cluster\n  connection_string: "{nodes}"')
    (path / "feature_store.yaml").write_text(yaml)
    store = FeatureStore(repo_path=str(path))
    store.write_to_online_store("customer_features", stored_rows(single.frame))
    store.write_to_online_store("customer_dwh_features", single.dwh.reset_index())
    try:
        yield TwinRepos(single, store, redis_cluster)
    finally:
        delete_project_keys(project, redis_url)
        redis_cluster.delete_matching(f"*{project}")


def _primary_counts(twins: TwinRepos) -> list[int]:
    import redis

    counts = []
    for port in twins.nodes.ports:
        r = redis.Redis(host="127.0.0.1", port=port)
        try:
            counts.append(sum(1 for _ in r.scan_iter(match=f"*{twins.single.project}")))
        finally:
            r.close()
    return counts


def test_the_cluster_reader_scans_every_primary(twins: TwinRepos) -> None:
    reader = OnlineReader(twins.cluster_store)  # the online store's own client: a RedisCluster
    assert reader.is_cluster and len(reader.node_clients()) == 3
    counts = _primary_counts(twins)
    assert sum(counts) == N + len(twins.single.stale_ids) and min(counts) > 100
    assert reader.customer_ids() == sorted(twins.single.frame.index)


def test_cluster_chunks_equal_single_node_reads(twins: TwinRepos) -> None:
    repo = twins.single
    cluster = OnlineReader(twins.cluster_store, batch_size=17)
    cluster.scan_count = 40
    single = OnlineReader(repo.store)
    features = sorted(single.features)
    chunks = list(cluster.iter_population(features, chunk=150, now=repo.now))
    assert all(len(c) <= 150 for c in chunks) and len(chunks) >= 3 * 4
    streamed = pd.concat(chunks).sort_index()
    assert streamed.index.is_unique
    ids = sorted(repo.frame.index)
    pd.testing.assert_frame_equal(streamed, single.read(ids, features, now=repo.now))
    one_by_one = list(cluster.iter_population(features, chunk=150, now=repo.now, parallel=False))
    pd.testing.assert_frame_equal(pd.concat(one_by_one).sort_index(), streamed)
    # Ids given (not scanned): each key read on its own primary, in the order asked.
    shuffled = [*ids[::-3], "NOPE"]
    pd.testing.assert_frame_equal(
        cluster.read(shuffled, features, now=repo.now),
        single.read(shuffled, features, now=repo.now),
    )
    assert cluster.read_one("C00042", features, now=repo.now) == single.read_one(
        "C00042", features, now=repo.now
    )


def test_cluster_members_and_sizes_equal_single_node(twins: TwinRepos) -> None:
    repo = twins.single
    on_single = SegmentEngine(repo.store, SEGMENTS)
    on_cluster = SegmentEngine(twins.cluster_store, SEGMENTS, chunk=97, batch_size=31)
    sizes = on_single.sizes(now=repo.now)
    assert all(size > 0 for size in sizes.values())
    assert on_cluster.sizes(now=repo.now) == sizes
    for seg in SEGMENTS:
        assert on_cluster.members(seg.name, now=repo.now) == on_single.members(
            seg.name, now=repo.now
        )
    pd.testing.assert_frame_equal(
        on_cluster.evaluate(now=repo.now), on_single.evaluate(now=repo.now)
    )


def test_cluster_export_equals_single_node(twins: TwinRepos, tmp_path: Path) -> None:
    repo = twins.single
    on_single = SegmentEngine(repo.store, SEGMENTS)
    on_cluster = SegmentEngine(twins.cluster_store, SEGMENTS, chunk=53)
    a, b = tmp_path / "single.parquet", tmp_path / "cluster.parquet"
    n = on_single.export("paris_adults", a, with_features=True, now=repo.now)
    assert n == on_cluster.export("paris_adults", b, with_features=True, now=repo.now) > 53
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))


def _scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("segmentation-scan")]


def test_primaries_are_read_by_one_thread_each_and_stopped_when_the_reader_stops(
    twins: TwinRepos,
) -> None:
    reader = OnlineReader(twins.cluster_store)
    population = reader.iter_population(["city"], chunk=10, now=twins.single.now)
    first = next(population)
    assert len(first) == 10
    assert len(_scan_threads()) == 3  # one per primary, each waiting for room to hand its chunk
    population.close()  # the consumer stops early: the threads stop too
    assert _scan_threads() == []


def test_a_failure_on_a_primary_reaches_the_caller(twins: TwinRepos) -> None:
    from segmentation.errors import OnlineStoreError

    reader = OnlineReader(twins.cluster_store)
    with pytest.raises(OnlineStoreError, match="not served"):
        for _ in reader.iter_population(["no_such_feature"], chunk=10):
            pass
    assert _scan_threads() == []
