"""The fast chunk converter builds exactly the rows Feast's own converter builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String
from feast.utils import _convert_arrow_to_proto
from feast.value_type import ValueType

from xiva_source.feast_plugin.online_rows import to_online_rows

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _view(created: str = "") -> FeatureView:
    return FeatureView(
        name="mixed",
        entities=[Entity(name="customer", join_keys=["customer_id"])],
        schema=[
            Field(name="status", dtype=String),
            Field(name="revenue", dtype=Float64),
            Field(name="score", dtype=Float32),
            Field(name="count", dtype=Int64),
            Field(name="age", dtype=Int32),
            Field(name="vip", dtype=Bool),
            Field(name="tags", dtype=Array(Int64)),  # not a scalar: Feast's converter
        ],
        source=FileSource(
            path="unused.parquet",
            timestamp_field="updated_at",
            created_timestamp_column=created,
        ),
    )


def _table(rows: int) -> pa.Table:
    statuses = ["active", None, "Active", "suspended", ""]
    return pa.table(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "status": [statuses[i % 5] for i in range(rows)],
            "revenue": [
                None if i % 7 == 0 else (float("nan") if i % 11 == 0 else i * 1.25)
                for i in range(rows)
            ],
            "score": pa.array([None if i % 3 == 0 else i / 8 for i in range(rows)], pa.float32()),
            "count": pa.array([None if i % 4 == 0 else i * 10**9 for i in range(rows)], pa.int64()),
            "age": pa.array([None if i % 6 == 0 else i % 90 for i in range(rows)], pa.int32()),
            "vip": [None if i % 5 == 0 else i % 2 == 0 for i in range(rows)],
            "tags": [None if i % 8 == 0 else [i, i + 1] for i in range(rows)],
            "event_timestamp": pa.array(
                [T0 + timedelta(seconds=i) for i in range(rows)], pa.timestamp("us", tz="UTC")
            ),
            "created": pa.array(
                [T0 - timedelta(days=i) for i in range(rows)], pa.timestamp("us", tz="UTC")
            ),
        }
    )


def _serialized(rows: list) -> list:  # type: ignore[type-arg]
    return [
        (
            key.SerializeToString(),
            {name: value.SerializeToString() for name, value in features.items()},
            event,
            created,
        )
        for key, features, event, created in rows
    ]


def test_rows_equal_feasts_cell_for_cell() -> None:
    fv = _view(created="created")
    table = _table(300)
    join_keys = {"customer_id": ValueType.STRING}

    ours = [row for rows in to_online_rows(fv, table, join_keys) for row in rows]
    # Feast reads the source's own timestamp column name; ours renames event_timestamp to it.
    feasts = _convert_arrow_to_proto(
        table.rename_columns(
            ["updated_at" if c == "event_timestamp" else c for c in table.column_names]
        ),
        fv,
        join_keys,
    )

    assert len(ours) == 300
    assert _serialized(ours) == _serialized(feasts)
    assert ours[0][1]["revenue"].WhichOneof("val") is None  # null
    assert ours[11][1]["revenue"].WhichOneof("val") is None  # NaN is null, as in Feast
    assert ours[1][1]["status"].WhichOneof("val") is None  # None is null
    assert ours[4][1]["status"].WhichOneof("val") == "string_val"  # "" is a value
    assert ours[3][2] == (T0 + timedelta(seconds=3)).replace(tzinfo=None)  # naive UTC, as Feast


def test_without_created_column_and_empty_chunks() -> None:
    fv = _view()
    table = _table(10)
    rows = [
        row
        for chunk in to_online_rows(fv, table, {"customer_id": ValueType.STRING})
        for row in chunk
    ]
    assert [r[3] for r in rows] == [None] * 10
    assert list(to_online_rows(fv, table.slice(0, 0), {"customer_id": ValueType.STRING})) == []
