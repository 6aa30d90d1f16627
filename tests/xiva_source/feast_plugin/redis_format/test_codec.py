"""The value codec (pure, no Redis): cells byte for byte Feast's, decoded back to the values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from feast.protos.feast.types.Value_pb2 import (
    BoolList,
    DoubleList,
    Int64List,
    StringList,
    StringSet,
    Value,
)
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from xiva_source.feast_plugin.redis_format import (
    decode_cells,
    decode_timestamp,
    decode_timestamps,
    decode_value,
    encode_column,
    encode_string_list,
    encode_timestamp,
    encode_timestamps,
    fast_double,
    timestamp_parts,
)

TS = pa.timestamp("us", tz="UTC")
D = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
OLD = datetime(1960, 1, 1, 0, 0, 1, tzinfo=UTC)

# (column, Feast value type, the values read back): every type a feature view may declare.
CASES: list[tuple[pa.Array, ValueType, list[Any]]] = [
    (pa.array(["a", None, "", "ünï", "a"]), ValueType.STRING, ["a", None, "", "ünï", "a"]),
    (
        pa.array(["x", None, "x"]).dictionary_encode(),
        ValueType.STRING,
        ["x", None, "x"],
    ),
    (
        pa.array([1.5, None, math.nan, -0.0, 1e300, -2.25]),
        ValueType.DOUBLE,
        [1.5, None, None, -0.0, 1e300, -2.25],  # NaN is null, as Feast's converter has it
    ),
    (pa.array([1.5, None, 0.25], pa.float32()), ValueType.FLOAT, [1.5, None, 0.25]),
    (
        pa.array([0, None, -1, 300, 2**40, -(2**63)], pa.int64()),
        ValueType.INT64,
        [0, None, -1, 300, 2**40, -(2**63)],
    ),
    (pa.array([0, None, -1, 2**31 - 1], pa.int32()), ValueType.INT32, [0, None, -1, 2**31 - 1]),
    (pa.array([True, None, False]), ValueType.BOOL, [True, None, False]),
    (
        pa.array([OLD, None, D], TS),
        ValueType.UNIX_TIMESTAMP,
        [OLD, None, D.replace(microsecond=0)],  # whole seconds, as Feast stores them
    ),
    (pa.array([b"x", None, b""]), ValueType.BYTES, [b"x", None, b""]),
    (pa.array([[1, 2], None, []], pa.list_(pa.int64())), ValueType.INT64_LIST, [[1, 2], None, []]),
    (pa.array([[3], None], pa.list_(pa.int32())), ValueType.INT32_LIST, [[3], None]),
    (pa.array([["a"], None, []]), ValueType.STRING_LIST, [["a"], None, []]),
    (pa.array([[1.5], None, []]), ValueType.DOUBLE_LIST, [[1.5], None, []]),
    (pa.array([[0.5], None], pa.list_(pa.float32())), ValueType.FLOAT_LIST, [[0.5], None]),
    (pa.array([[True, False], None]), ValueType.BOOL_LIST, [[True, False], None]),
    (pa.array([[b"x"], None]), ValueType.BYTES_LIST, [[b"x"], None]),
    (
        pa.array([[D.replace(microsecond=0)], None], pa.list_(TS)),
        ValueType.UNIX_TIMESTAMP_LIST,
        [[D.replace(microsecond=0)], None],
    ),
]


def _feast_cells(column: pa.Array, value_type: ValueType) -> list[bytes]:
    """What Feast's materialization stores for ``column`` (``_columns_to_proto_values``)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
    return [p.SerializeToString() for p in protos]


@pytest.mark.parametrize(("column", "value_type", "values"), CASES, ids=lambda c: str(c)[:20])
def test_every_type_encodes_as_feast_and_decodes_back(
    column: pa.Array, value_type: ValueType, values: list[Any]
) -> None:
    cells, null = encode_column(column, value_type)
    assert list(cells) == _feast_cells(column, value_type)
    assert [decode_value(c) for c in cells] == values
    assert decode_cells(list(cells), value_type) == values
    assert decode_cells(list(cells), value_type.name) == values
    assert null == _feast_cells(pa.nulls(1, _plain(column).type), value_type)[0]
    assert [i for i, c in enumerate(cells) if c == null] == [
        i for i, v in enumerate(column.to_pylist()) if v is None or v != v
    ]


def _plain(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def test_null_cells_are_feasts_null_of_their_type() -> None:
    assert encode_column(pa.nulls(2, pa.string()), ValueType.STRING)[1] == b""
    assert encode_column(pa.nulls(2, pa.int64()), ValueType.INT64)[1] == b""
    # Feast stores a null timestamp as INT64_MIN seconds, read back as None.
    cells, null = encode_column(pa.nulls(2, TS), ValueType.UNIX_TIMESTAMP)
    assert null == Value(unix_timestamp_val=-(2**63)).SerializeToString()
    assert list(cells) == [null, null] and decode_value(null) is None
    assert decode_value(None) is None and decode_value(b"") is None


def test_empty_columns_encode_to_no_cells() -> None:
    for column, value_type, _ in CASES:
        cells, _null = encode_column(column.slice(0, 0), value_type)
        assert len(cells) == 0


def test_string_lists_keep_empty_lists() -> None:
    cell = encode_string_list(["gold_vip:holdout", "ü"])
    assert decode_value(cell) == ["gold_vip:holdout", "ü"]
    assert decode_value(encode_string_list([])) == []  # [] is a value, not a missing one
    assert encode_string_list([]) != b""


def test_fast_doubles_and_the_decode_cache() -> None:
    assert fast_double(Value(double_val=-1.25).SerializeToString()) == -1.25
    assert fast_double(Value(int64_val=5).SerializeToString()) is None
    assert fast_double(None) is None
    cache: dict[bytes, Any] = {}
    cells = [Value(string_val="gold").SerializeToString(), None, b""]
    assert decode_cells(cells * 2, ValueType.STRING, cache) == ["gold", None, None] * 2
    assert cache == {cells[0]: "gold"}
    # A double that is not a plain 9-byte double_val still decodes (through protobuf).
    other = Value(int64_val=3).SerializeToString()
    assert decode_cells([other], "DOUBLE") == [3]


def test_event_timestamps_are_feasts_timestamps() -> None:
    times = [D, OLD, datetime(1970, 1, 1, tzinfo=UTC), D - timedelta(microseconds=1)]
    seconds, nanos = timestamp_parts(pa.array(times, TS))
    blobs = encode_timestamps(seconds, nanos)
    for t, s, n, blob in zip(times, seconds.tolist(), nanos.tolist(), blobs, strict=True):
        proto = Timestamp()
        proto.FromDatetime(t)  # Feast's writer: datetime -> Timestamp
        assert (s, n) == (proto.seconds, proto.nanos)
        assert blob == proto.SerializeToString()
        if blob:  # the epoch itself serializes to nothing, which reads as missing (as Feast)
            assert decode_timestamp(blob) == pytest.approx(t.timestamp(), abs=1e-6)
    assert blobs[2] == b"" and math.isnan(decode_timestamp(blobs[2]))
    # A naive time is UTC, nanoseconds are cut to microseconds (Feast goes through datetime).
    naive = pa.array([np.datetime64("2026-03-01T12:30:05.123456789")], pa.timestamp("ns"))
    assert [x.tolist() for x in timestamp_parts(naive)] == [[int(D.timestamp())], [123456000]]
    with pytest.raises(ValueError, match="null"):
        timestamp_parts(pa.array([D, None], TS))


def test_single_timestamps_round_trip() -> None:
    for seconds in (1_700_000_000.5, 0.5, -1.25, 1_700_000_000.0000004):
        cell = encode_timestamp(seconds)
        whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
        assert cell == Timestamp(seconds=whole, nanos=micros * 1000).SerializeToString()
        assert decode_timestamp(cell) == pytest.approx(seconds, abs=1e-6)
    assert math.isnan(decode_timestamp(None))
    decoded = decode_timestamps([encode_timestamp(5.5), None, b""])
    assert decoded[0] == 5.5 and np.isnan(decoded[1:]).all()


_NULL_TS = int(np.datetime64("NaT", "ns").astype(int))


@pytest.mark.parametrize(
    "value",
    [
        Value(),
        Value(string_val="Paris-ü"),
        Value(string_val=""),
        Value(bytes_val=b"\x00\xff"),
        Value(int32_val=-7),
        Value(int64_val=2**40),
        Value(double_val=-1.5),
        Value(float_val=0.25),
        Value(bool_val=True),
        Value(bool_val=False),
        Value(unix_timestamp_val=1_700_000_000),
        Value(unix_timestamp_val=-86_400),
        Value(unix_timestamp_val=_NULL_TS),
        Value(string_list_val=StringList(val=["a", "b"])),
        Value(int64_list_val=Int64List(val=[1, 2, 3])),
        Value(double_list_val=DoubleList(val=[])),
        Value(bool_list_val=BoolList(val=[True, False])),
        Value(unix_timestamp_list_val=Int64List(val=[0, _NULL_TS])),
        Value(json_val='{"a": 1}'),  # Feast's own conversion
        Value(string_set_val=StringSet(val=["x"])),  # Feast's own conversion
    ],
    ids=lambda v: v.WhichOneof("val") or "empty",
)
def test_a_cell_decodes_as_feast_decodes_it(value: Value) -> None:
    from feast.type_map import feast_value_type_to_python_type

    cell = value.SerializeToString()
    expected = feast_value_type_to_python_type(value) if cell else None
    assert decode_value(cell) == expected
    assert type(decode_value(cell)) is type(expected)
