"""Merge precedence (``auto`` mode): the rule, and that every entry point applies the same one.

Issue 7 asked for a Hypothesis test that the Arrow and pandas merges agree "until only one
exists". Only one exists now (historical retrieval calls :func:`merge_aligned`), so the properties
below check every entry point of the Arrow merge against a plain-Python reference of the rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xiva_source.pipeline.merge import (
    merge_aligned,
    merge_tables,
    merge_values,
    preferred_first,
)
from xiva_source.settings import MergeStrategy

XIVA_FIRST, DWH_FIRST = MergeStrategy.XIVA_FIRST, MergeStrategy.DWH_FIRST
TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = {"city": pa.string(), "age": pa.int64(), "total_revenue": pa.float64()}
FEATURES = list(TYPES)


def _table(rows: dict[str, dict[str, Any]], features: list[str] = FEATURES) -> pa.Table:
    """``customer_id``, ``features``, ``event_timestamp`` from ``{id: {feature: value}}``."""
    return pa.table(
        {
            "customer_id": pa.array(list(rows), pa.string()),
            **{f: pa.array([r.get(f) for r in rows.values()], TYPES[f]) for f in features},
            "event_timestamp": pa.array([r["event_timestamp"] for r in rows.values()], TS),
        }
    )


def _by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r.pop("customer_id"): r for r in table.to_pylist()}


def _rule(preferred: Any, other: Any) -> Any:
    """The precedence rule, in plain Python: the reference every implementation must match."""
    return preferred if preferred is not None else other


# --------------------------------------------------------------------------------------------
# the rule


def test_preferred_first_orders_the_sides_by_strategy() -> None:
    assert preferred_first(XIVA_FIRST, "x", "d") == ("x", "d")
    assert preferred_first(DWH_FIRST, "x", "d") == ("d", "x")


@pytest.mark.parametrize(
    ("strategy", "xiva", "dwh", "expected"),
    [
        (XIVA_FIRST, "Oslo", "Bergen", "Oslo"),
        (XIVA_FIRST, None, "Bergen", "Bergen"),
        (XIVA_FIRST, "Oslo", None, "Oslo"),
        (DWH_FIRST, "Oslo", "Bergen", "Bergen"),
        (DWH_FIRST, "Oslo", None, "Oslo"),
        (DWH_FIRST, None, "Bergen", "Bergen"),
        (DWH_FIRST, None, None, None),
    ],
)
def test_the_preferred_value_wins_unless_it_is_null(
    strategy: MergeStrategy, xiva: str | None, dwh: str | None, expected: str | None
) -> None:
    assert merge_values({"city": xiva}, {"city": dwh}, ["city"], strategy) == {"city": expected}
    aligned = merge_aligned(
        pa.table({"city": pa.array([xiva], pa.string())}),
        pa.table({"city": pa.array([dwh], pa.string())}),
        ["city"],
        strategy,
    )
    assert aligned.column("city").to_pylist() == [expected]


def test_merge_tables_merges_per_feature_and_keeps_customers_of_either_side() -> None:
    xiva = _table(
        {
            "both": {"city": "Oslo", "age": None, "total_revenue": 1.5, "event_timestamp": T0},
            "xiva_only": {"city": "Moss", "age": 30, "event_timestamp": T0},
        }
    )
    later = T0 + timedelta(hours=1)
    dwh = _table(
        {
            "both": {"city": "Bergen", "age": 41, "total_revenue": None, "event_timestamp": later},
            "dwh_only": {"city": "Bodø", "age": 50, "event_timestamp": T0},
        }
    )
    merged = _by_id(merge_tables(xiva, dwh, FEATURES, XIVA_FIRST, TYPES))
    assert merged["both"] == {
        "city": "Oslo",
        "age": 41,
        "total_revenue": 1.5,
        "event_timestamp": later,  # the later of the two
    }
    assert merged["xiva_only"]["city"] == "Moss"
    assert merged["dwh_only"]["city"] == "Bodø"
    assert _by_id(merge_tables(xiva, dwh, FEATURES, DWH_FIRST, TYPES))["both"]["city"] == "Bergen"


def test_merge_tables_output_shape_is_fixed_whatever_the_sides_hold() -> None:
    xiva = _table({"a": {"city": "Oslo", "event_timestamp": T0}}, ["city"])  # no age column
    merged = merge_tables(xiva, None, ["city", "age", "unknown"], XIVA_FIRST, TYPES)
    assert merged.column_names == ["customer_id", "city", "age", "unknown", "event_timestamp"]
    assert merged.schema.field("age").type == pa.int64()
    assert merged.to_pylist()[0]["age"] is None
    empty = merge_tables(None, None, ["city"], DWH_FIRST, TYPES)
    assert empty.num_rows == 0 and empty.schema.field("event_timestamp").type == TS


def test_merge_tables_aligns_the_sources_types() -> None:
    xiva = pa.table(
        {
            "customer_id": ["a"],
            "total_revenue": pa.array([None], pa.float64()),
            "event_timestamp": pa.array([T0], TS),
        }
    )
    dwh = pa.table(
        {
            "customer_id": ["a"],
            "total_revenue": pa.array([7], pa.int64()),  # e.g. an integer column in the DWH
            "event_timestamp": pa.array([T0.replace(tzinfo=None)], pa.timestamp("us")),
        }
    )
    merged = merge_tables(xiva, dwh, ["total_revenue"], XIVA_FIRST, TYPES)
    assert merged.schema.field("total_revenue").type == pa.float64()
    assert merged.to_pylist()[0]["total_revenue"] == 7.0


def test_merge_aligned_needs_aligned_tables_and_fills_missing_columns() -> None:
    with pytest.raises(ValueError, match="row-aligned"):
        merge_aligned(pa.table({"age": [1]}), pa.table({"age": [1, 2]}), ["age"], XIVA_FIRST)
    # pandas' all-missing column arrives null-typed: it takes the other side's type.
    merged = merge_aligned(
        pa.table({"age": pa.nulls(2)}),
        pa.table({"age": pa.array([3, None], pa.int64())}),
        ["age", "city"],
        XIVA_FIRST,
    )
    assert merged.schema == pa.schema([("age", pa.int64()), ("city", pa.null())])
    assert merged.to_pylist() == [{"age": 3, "city": None}, {"age": None, "city": None}]


def test_merge_values_takes_missing_dicts_and_features_as_null() -> None:
    assert merge_values(None, {"age": 40}, ["age", "city"], XIVA_FIRST) == {"age": 40, "city": None}
    assert merge_values({"age": 1}, None, ["age"], DWH_FIRST) == {"age": 1}
    assert merge_values({}, {}, [], DWH_FIRST) == {}
    assert merge_values({"age": 1}, {"age": 2.5}, ["age"], DWH_FIRST) == {"age": 2.5}
    typed = merge_values({"age": None}, {"age": 2}, ["age"], XIVA_FIRST, {"age": pa.float64()})
    assert typed == {"age": 2.0} and isinstance(typed["age"], float)
    with pytest.raises(TypeError, match="'age'"):
        merge_values({"age": "old"}, {"age": 2}, ["age"], XIVA_FIRST)


# --------------------------------------------------------------------------------------------
# properties: one rule, whatever the entry point

_VALUES = {
    "city": st.one_of(st.none(), st.text(max_size=4)),
    "age": st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    "total_revenue": st.one_of(
        st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)
    ),
}
_ROW = st.fixed_dictionaries(_VALUES)
_STRATEGY = st.sampled_from(list(MergeStrategy))


@st.composite
def _aligned_sides(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = draw(st.integers(0, 12))
    rows = st.lists(_ROW, min_size=n, max_size=n)
    return draw(rows), draw(rows)


def _columns(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({f: pa.array([r[f] for r in rows], TYPES[f]) for f in FEATURES})


@settings(max_examples=200, deadline=None)
@given(sides=_aligned_sides(), strategy=_STRATEGY)
def test_aligned_merge_follows_the_reference_rule(
    sides: tuple[list[dict[str, Any]], list[dict[str, Any]]], strategy: MergeStrategy
) -> None:
    xiva, dwh = sides
    merged = merge_aligned(_columns(xiva), _columns(dwh), FEATURES, strategy, TYPES).to_pylist()
    for x, d, out in zip(xiva, dwh, merged, strict=True):
        first, second = (x, d) if strategy == XIVA_FIRST else (d, x)
        assert out == {f: _rule(first[f], second[f]) for f in FEATURES}
        assert merge_values(x, d, FEATURES, strategy, TYPES) == out


_IDS = st.sampled_from([f"c{i}" for i in range(8)])
_TIMES = st.integers(0, 10_000).map(lambda s: T0 + timedelta(seconds=s))
_KEYED = st.dictionaries(_IDS, st.tuples(_ROW, _TIMES), max_size=8)


@settings(max_examples=200, deadline=None)
@given(xiva=_KEYED, dwh=_KEYED, strategy=_STRATEGY)
def test_keyed_merge_follows_the_reference_rule(
    xiva: dict[str, tuple[dict[str, Any], datetime]],
    dwh: dict[str, tuple[dict[str, Any], datetime]],
    strategy: MergeStrategy,
) -> None:
    def table(side: dict[str, tuple[dict[str, Any], datetime]]) -> pa.Table:
        return _table({cid: {**row, "event_timestamp": ts} for cid, (row, ts) in side.items()})

    merged = _by_id(merge_tables(table(xiva), table(dwh), FEATURES, strategy, TYPES))
    assert set(merged) == set(xiva) | set(dwh)
    empty: dict[str, Any] = dict.fromkeys(FEATURES)
    for cid, out in merged.items():
        x, d = xiva.get(cid, (empty, None)), dwh.get(cid, (empty, None))
        first, second = (x, d) if strategy == XIVA_FIRST else (d, x)
        expected = {f: _rule(first[0][f], second[0][f]) for f in FEATURES}
        expected["event_timestamp"] = max(t for t in (x[1], d[1]) if t is not None)
        assert out == expected
