"""Overlap counts and Jaccard (one pass, streamed) against a plain Python reference."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from segmentation import Segment, SegmentationError, SegmentEngine
from segmentation.overlap import (
    Overlap,
    jaccard_matrix,
    overlap,
    overlap_counts,
    population_sizes,
)
from segmentation.pairs import MAX_LISTED_PAIRS, check_pair_listing, pair_count
from tests.support.segmentation import look
from tests.support.segmentation.repo import FeastRepo

SEGMENTS = [
    Segment("ov_rich", [{">": [{"var": "total_revenue"}, 1000]}]),
    Segment("ov_paris", [{"==": [{"var": "city"}, "Paris"]}]),
    Segment("ov_young", [{"<": [{"var": "age"}, 40]}]),
    Segment("ov_nobody", [{"<": [{"var": "total_revenue"}, -1]}]),
]


def _reference(repo: FeastRepo) -> dict[str, set[str]]:
    table = look.rows(repo)
    return {
        "ov_rich": look.members(table, look.greater("total_revenue", 1000)),
        "ov_paris": look.members(table, look.equals("city", "Paris")),
        "ov_young": look.members(table, look.less("age", 40)),
        "ov_nobody": set(),
    }


def test_overlap_counts_equal_python_sets_whatever_the_chunks() -> None:
    rng = random.Random(7)
    n_rows, n_seg = 1000, 5
    rows = [[rng.random() < p for p in (0.1, 0.5, 0.9, 0.0, 0.3)] for _ in range(n_rows)]
    sets = [{i for i, row in enumerate(rows) if row[j]} for j in range(n_seg)]
    matrix = np.array(rows, dtype=bool)
    for size in (1000, 333, 1):
        chunks = (matrix[i : i + size] for i in range(0, n_rows, size))
        counts, seen = overlap_counts(chunks, n_seg)
        assert seen == n_rows and counts.dtype == np.int64
        for a, b in itertools.product(range(n_seg), repeat=2):
            assert counts[a, b] == len(sets[a] & sets[b])
    jac = jaccard_matrix(counts)
    for a, b in itertools.product(range(n_seg), repeat=2):
        union = len(sets[a] | sets[b])
        if union:
            assert jac[a, b] == pytest.approx(len(sets[a] & sets[b]) / union)
        else:
            assert np.isnan(jac[a, b])  # both empty: undefined


@pytest.mark.parametrize("n", [1, 2, 3, 7, 60])
@pytest.mark.parametrize("density", [0.02, 0.5])
def test_top_pairs_equal_a_full_sort_of_every_pair(n: int, density: float) -> None:
    rng = np.random.default_rng(n)
    matrix = rng.random((400, n)) < rng.random(n) * density  # sparse: many ties at 0
    counts, rows = overlap_counts([matrix], n)
    result = Overlap(tuple(f"s{i}" for i in range(n)), rows, counts)
    assert result.pair_count == pair_count(n) == len(list(result.pairs()))
    ranked = sorted(
        result.pairs(),
        key=lambda p: (-(p[3] if p[3] is not None else -1.0), -p[2], result.segments.index(p[0]),
                       result.segments.index(p[1])),
    )  # fmt: skip
    for k in (0, 1, 5, 10**6):
        top = result.top_pairs(k)
        assert [(p.a, p.b, p.both, p.jaccard) for p in top] == ranked[:k]
        for p in top:
            assert (p.size_a, p.size_b) == (result.sizes[p.a], result.sizes[p.b])


def test_a_listing_of_pairs_is_bounded() -> None:
    check_pair_listing(447, None)  # 99,681 pairs: every one may be listed
    with pytest.raises(SegmentationError) as caught:
        check_pair_listing(448, None)
    assert caught.value.problem == (
        "448 segments make 100,128 pairs, more than the 100,000 that one listing holds"
    )
    assert "--top K" in caught.value.fix
    check_pair_listing(10_000, MAX_LISTED_PAIRS)  # the top K of any number of segments
    with pytest.raises(SegmentationError, match="outside 0 to 100,000"):
        check_pair_listing(3, MAX_LISTED_PAIRS + 1)


def test_no_rows_gives_zero_counts() -> None:
    counts, seen = overlap_counts(iter([np.zeros((0, 3), dtype=bool)]), 3)
    assert seen == 0 and counts.tolist() == [[0] * 3] * 3


def test_overlap_on_redis_equals_the_python_reference(seg_repo: FeastRepo) -> None:
    engine = SegmentEngine(seg_repo.store, SEGMENTS, chunk=97)  # several chunks
    ref = _reference(seg_repo)
    result = overlap(engine)
    assert result.population == len(seg_repo.frame) == 603
    assert result.segments == tuple(ref)
    assert result.sizes == {n: len(s) for n, s in ref.items()}
    assert all(result.sizes[n] > 0 for n in ("ov_rich", "ov_paris", "ov_young"))
    for a, b in itertools.product(ref, repeat=2):
        both = len(ref[a] & ref[b])
        union = len(ref[a] | ref[b])
        assert result.both(a, b) == both, (a, b)
        assert result.jaccard(a, b) == (pytest.approx(both / union) if union else None)
    pairs = {(a, b): (both, jac) for a, b, both, jac in result.pairs()}
    assert len(pairs) == 6 and ("ov_paris", "ov_rich") not in pairs
    assert pairs["ov_rich", "ov_paris"][0] == len(ref["ov_rich"] & ref["ov_paris"])
    doc = result.to_dict()
    assert doc["matrix"][0][1] == doc["matrix"][1][0] == result.both("ov_rich", "ov_paris")
    assert {p["a"] for p in doc["pairs"]} <= set(ref)


def test_overlap_of_chosen_segments_and_customers(seg_repo: FeastRepo) -> None:
    engine = SegmentEngine(seg_repo.store, SEGMENTS)
    ids = sorted(seg_repo.frame.index)[:150]
    ref = _reference(seg_repo)
    result = overlap(engine, ["ov_young", "ov_rich"], customer_ids=ids)
    assert result.population == 150 and result.segments == ("ov_young", "ov_rich")
    chosen = set(ids)
    assert result.both("ov_young", "ov_rich") == len(ref["ov_young"] & ref["ov_rich"] & chosen)


def test_population_sizes_and_percentages(seg_repo: FeastRepo) -> None:
    engine = SegmentEngine(seg_repo.store, SEGMENTS, chunk=200)
    ref = _reference(seg_repo)
    table = population_sizes(engine)
    assert table.population == 603
    assert table.sizes == {n: len(s) for n, s in ref.items()}
    assert table.sizes == engine.sizes()
    assert table.percent("ov_paris") == pytest.approx(100 * len(ref["ov_paris"]) / 603)
    doc = table.to_dict()
    assert doc["population"] == 603
    assert [s["name"] for s in doc["segments"]] == list(ref)
    assert doc["segments"][0]["percent"] == pytest.approx(100 * len(ref["ov_rich"]) / 603, 1e-3)
