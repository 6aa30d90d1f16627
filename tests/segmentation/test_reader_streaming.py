"""The population streamed in chunks: results across chunk boundaries equal the unchunked ones.

A Feast repository of this module's own (3,000 customers written with Feast's own
``write_to_online_store``) on the real Redis; small ``chunk`` / ``batch_size`` / ``scan_count``
so that every chunk boundary and SCAN step is crossed many times.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from segmentation import OnlineReader, Segment, SegmentEngine
from segmentation.errors import SegmentationError
from tests.support.segmentation.repo import FeastRepo, build_repo, delete_project_keys

N = 3000

SEGMENTS = [
    Segment("paris_adults", [{">=": [{"var": "age"}, 30]}, {"==": [{"var": "city"}, "Paris"]}]),
    Segment("big_spenders", [{">": [{"var": "total_revenue"}, 1500]}]),
    Segment("likely_churn", [{">=": [{"var": "churn_score"}, 0.7]}]),
    Segment("no_status", [{"missing": ["customer_status"]}]),
    Segment("gold_few_tx", [{"in": [{"var": "customer_tier"}, ["gold", "platinum"]]},
                            {"<": [{"var": "transaction_count"}, 10]}]),
]  # fmt: skip

# (chunk, batch_size, scan_count): boundaries everywhere, then one chunk for everything.
SMALL = [(37, 3, 5), (250, 64, 100), (1000, 1000, 10_000)]
WHOLE = (10**7, 10_000, 10_000)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[FeastRepo]:
    project = f"segstream_{uuid.uuid4().hex[:10]}"
    built = build_repo(tmp_path_factory.mktemp("seg_stream"), project, N, redis_url)
    yield built
    delete_project_keys(project, redis_url)


def _engine(repo: FeastRepo, chunk: int, batch: int, scan: int) -> SegmentEngine:
    engine = SegmentEngine(repo.store, SEGMENTS, chunk=chunk, batch_size=batch)
    engine.reader.scan_count = scan
    return engine


@pytest.fixture(scope="module")
def whole(repo: FeastRepo) -> SegmentEngine:
    return _engine(repo, *WHOLE)


def test_population_chunks_cover_every_customer_once(repo: FeastRepo) -> None:
    reader = OnlineReader(repo.store, batch_size=4)
    reader.scan_count = 9
    chunks = list(reader.iter_population(["city", "age"], chunk=100, now=repo.now))
    sizes = [len(c) for c in chunks]
    assert all(s == 100 for s in sizes[:-1]) and 0 < sizes[-1] <= 100
    ids = [cid for c in chunks for cid in c.index]
    assert len(ids) == len(set(ids)) == N + len(repo.stale_ids)
    assert sorted(ids) == sorted(repo.frame.index) == reader.customer_ids()
    streamed = pd.concat(chunks).sort_index()
    direct = reader.read(sorted(ids), ["city", "age"], now=repo.now)
    pd.testing.assert_frame_equal(streamed, direct)


@pytest.mark.parametrize(("chunk", "batch", "scan"), SMALL)
def test_sizes_members_and_evaluate_equal_the_unchunked(
    repo: FeastRepo, whole: SegmentEngine, chunk: int, batch: int, scan: int
) -> None:
    engine = _engine(repo, chunk, batch, scan)
    expected_sizes = whole.sizes(now=repo.now)
    assert engine.sizes(now=repo.now) == expected_sizes
    assert all(0 < size < N for size in expected_sizes.values())
    pd.testing.assert_frame_equal(engine.evaluate(now=repo.now), whole.evaluate(now=repo.now))
    for seg in SEGMENTS[:2]:
        members = engine.members(seg.name, now=repo.now)
        assert members == whole.members(seg.name, now=repo.now) == sorted(members)
        assert len(members) == expected_sizes[seg.name]
    some = sorted(repo.frame.index)[::7]
    assert engine.sizes(some, now=repo.now) == whole.sizes(some, now=repo.now)


def test_streamed_members_equal_the_rules_row_by_row(repo: FeastRepo) -> None:
    engine = _engine(repo, 41, 16, 30)
    rows = engine.reader.read(sorted(repo.frame.index), engine.features, now=repo.now)
    plain = [(cid, _plain(row.to_dict())) for cid, row in rows.iterrows()]
    for seg in SEGMENTS:
        by_row = [cid for cid, row in plain if seg.matches(row)]
        assert engine.members(seg.name, now=repo.now) == by_row, seg.name


def _plain(row: dict[Any, object]) -> dict[str, object]:
    return {str(k): None if v is None or v is pd.NA or v != v else v for k, v in row.items()}


def test_chunk_masks_stream_one_chunk_at_a_time(repo: FeastRepo) -> None:
    engine = _engine(repo, 500, 100, 200)
    parts = list(engine.chunk_masks(now=repo.now))
    assert [len(p) for p in parts[:-1]] == [500] * (len(parts) - 1)
    assert list(parts[0].columns) == [s.name for s in SEGMENTS]
    table = pd.concat(parts).sort_index()
    pd.testing.assert_frame_equal(table, engine.evaluate(now=repo.now))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_streamed_in_chunks_equals_the_unchunked(
    repo: FeastRepo, whole: SegmentEngine, tmp_path: Path, suffix: str
) -> None:
    engine = _engine(repo, 97, 5, 50)
    for seg in ("paris_adults", "no_status"):  # no_status: a chunk of only-null statuses
        small, big = tmp_path / f"small{suffix}", tmp_path / f"big{suffix}"
        n = engine.export(seg, small, with_features=True, now=repo.now)
        assert n == whole.export(seg, big, with_features=True, now=repo.now) > 97
        read = pd.read_csv if suffix == ".csv" else pd.read_parquet
        pd.testing.assert_frame_equal(read(small), read(big))
        assert read(small)["customer_id"].tolist() == whole.members(seg, now=repo.now)
    ids_only = tmp_path / f"ids{suffix}"
    assert engine.export("big_spenders", ids_only, now=repo.now) > 0
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    columns = list(read(ids_only).columns)  # the id (and the group): no feature
    assert columns[0] == "customer_id" and not set(columns) & set(whole.features)


def test_parquet_export_keeps_types_when_a_chunk_is_all_null(
    repo: FeastRepo, tmp_path: Path
) -> None:
    engine = _engine(repo, 50, 7, 50)  # every no_status member's status is null
    engine.export("no_status", tmp_path / "o.parquet", with_features=True, now=repo.now)
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "o.parquet")
    assert str(schema.field("customer_status").type) == "string"
    assert pd.read_parquet(tmp_path / "o.parquet")["customer_status"].isna().all()


def test_keys_of_other_projects_and_entities_are_ignored(repo: FeastRepo) -> None:
    reader = OnlineReader(repo.store)
    client = reader.client
    foreign = [
        reader.layout.entity_key("X1")
        + b"my"
        + repo.project.encode(),  # a project ending like ours
        reader.layout.entity_key("X2") + b"other",
        reader.key("X3") + b"_tail",
        reader.layout.prefix + b"garbage" + repo.project.encode(),  # matches SCAN, not a key
    ]
    for key in foreign:
        client.hset(key, "f", "v")
    try:
        engine = _engine(repo, 11, 7, 20)
        ids = [cid for c in engine.reader.iter_population(["city"], chunk=11) for cid in c.index]
        assert sorted(ids) == sorted(repo.frame.index)
        assert engine.sizes(now=repo.now) == _engine(repo, *WHOLE).sizes(now=repo.now)
    finally:
        client.delete(*foreign)


def test_empty_population(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, redis_url: str
) -> None:
    project = f"segempty_{uuid.uuid4().hex[:10]}"
    built = build_repo(tmp_path_factory.mktemp("seg_empty"), project, 1, redis_url)
    delete_project_keys(project, redis_url)  # applied, nothing online
    engine = SegmentEngine(built.store, SEGMENTS, chunk=5)
    try:
        assert list(engine.reader.iter_population(["city"], chunk=5)) == []
        assert engine.sizes() == dict.fromkeys((s.name for s in SEGMENTS), 0)
        assert engine.members("paris_adults") == []
        assert engine.evaluate().empty and list(engine.evaluate().columns) == [
            s.name for s in SEGMENTS
        ]
        assert engine.export("paris_adults", tmp_path / "e.csv", with_features=True) == 0
        columns = list(pd.read_csv(tmp_path / "e.csv").columns)
        assert columns[0] == "customer_id" and columns[-2:] == ["age", "city"]
        assert engine.export("paris_adults", tmp_path / "e.parquet") == 0
        assert pd.read_parquet(tmp_path / "e.parquet").empty
        results = engine.refresh(now=built.now)
        assert {n: r.size for n, r in results.items()} == dict.fromkeys(results, 0)
    finally:
        delete_project_keys(project, redis_url)


def test_chunk_below_one_is_refused(whole: SegmentEngine) -> None:
    with pytest.raises(SegmentationError, match="chunk 0"):
        next(whole.reader.iter_population(["city"], chunk=0))


def test_a_single_redis_is_read_without_threads(repo: FeastRepo) -> None:
    reader = OnlineReader(repo.store)
    assert not reader.is_cluster and reader.node_clients() == [reader.client]
    population = reader.iter_population(["city"], chunk=10)
    assert len(next(population)) == 10
    assert not any(t.name.startswith("segmentation-scan") for t in threading.enumerate())
    population.close()
