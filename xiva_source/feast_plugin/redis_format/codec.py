"""The value codec: the cells of Feast's Redis hashes, encoded column-wise and decoded.

A feature cell is a serialized protobuf ``Value``, byte for byte what Feast's converter
(``python_values_to_proto_values``) makes, so stock ``get_online_features`` reads it; a null cell
is how that converter serializes a null of the type (empty, or the null timestamp). A
``_ts:<view>`` cell is a serialized protobuf ``Timestamp`` as Feast's writer makes it: a naive
time is UTC, microsecond precision.

Encoding is column-wise and pure: doubles, integers and timestamps are packed with numpy (their
wire formats checked against protobuf once), any other type goes through Feast's converter once
per distinct value (Arrow ``dictionary_encode``: statuses, tiers and cities repeat). Decoding
goes through Feast's ``feast_value_type_to_python_type``, with a fast path for doubles and a cache
for values that repeat.
"""

from __future__ import annotations

import datetime as _dt
import math
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xiva_source.feast_plugin.errors import OnlineStoreError

if TYPE_CHECKING:
    import pyarrow as pa
    from feast.value_type import ValueType

__all__ = [
    "column_array",
    "decode_cells",
    "decode_timestamp",
    "decode_timestamps",
    "decode_value",
    "encode_column",
    "encode_string_list",
    "encode_timestamp",
    "encode_timestamps",
    "fast_double",
    "timestamp_parts",
]

_DOUBLE = struct.Struct("<d")
_DOUBLE_TAG = 0x29  # Value.double_val: field 5, wire type 1 (64-bit)
_INT_TAGS = {4: 0x20, 3: 0x18}  # ValueType.INT64 -> Value.int64_val (field 4), INT32 -> field 3
_UNIX_TIMESTAMP_TAG = 0x40  # Value.unix_timestamp_val, field 8
_SECONDS_TAG, _NANOS_TAG = 0x08, 0x10  # Timestamp.seconds (field 1), Timestamp.nanos (field 2)
_CACHE_MAX = 100_000  # decoded values kept per cache: they repeat a lot within a run


def column_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``column`` as one Arrow array (chunks combined; a single chunk as it is)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


# --- feature values: encoding -------------------------------------------------------------------
def encode_column(column: pa.Array, value_type: ValueType) -> tuple[np.ndarray, bytes]:
    """Every cell of ``column`` as Feast stores it (a serialized protobuf ``Value``).

    Doubles, integers and timestamps are packed with numpy (their wire formats checked against
    protobuf once, their conversions Feast's own); any other type (strings: statuses, tiers and
    cities repeat) goes through Feast's own converter once per distinct value
    (``dictionary_encode``); types Arrow cannot dictionary-encode (lists) cell by cell.

    Args:
        column: One feature's Arrow array.
        value_type: The feature's Feast value type.

    Returns:
        The cells (a numpy object array of bytes) and the bytes of a null cell of this type.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from feast.value_type import ValueType as VT

    null = _null_cell(column.type, value_type)
    if value_type == VT.DOUBLE and pa.types.is_floating(column.type):
        return _doubles(column, null), null
    tag = _INT_TAGS.get(int(value_type.value))
    if tag is not None and pa.types.is_integer(column.type):
        return _integers(column, tag, null), null
    if value_type == VT.UNIX_TIMESTAMP and pa.types.is_timestamp(column.type):
        return _unix_timestamps(column), null
    if pa.types.is_dictionary(column.type):
        encoded = column
    else:
        try:
            encoded = pc.dictionary_encode(column)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            return _serialized(column.to_numpy(zero_copy_only=False), value_type), null
    dictionary = encoded.dictionary
    lookup = (
        _serialized(dictionary.to_numpy(zero_copy_only=False), value_type)
        if len(dictionary)
        else np.empty(0, dtype=object)
    )
    lookup = np.append(lookup, np.array([null], dtype=object))
    indices = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    return lookup[indices], null


def encode_string_list(values: Sequence[str]) -> bytes:
    """A stored ``Array(String)`` cell (a serialized protobuf ``Value``; ``[]`` stays ``[]``)."""
    from feast.protos.feast.types.Value_pb2 import StringList, Value

    return bytes(Value(string_list_val=StringList(val=list(values))).SerializeToString())


def _serialized(values: Any, value_type: ValueType) -> np.ndarray:
    from feast.type_map import python_values_to_proto_values

    out = np.empty(len(values), dtype=object)
    out[:] = [v.SerializeToString() for v in python_values_to_proto_values(values, value_type)]
    return out


_NULL_CELLS: dict[tuple[str, int], bytes] = {}


def _null_cell(arrow_type: pa.DataType, value_type: ValueType) -> bytes:
    """How Feast's converter serializes a null of this type (empty, or its null timestamp)."""
    import pyarrow as pa

    cache_key = (str(arrow_type), int(value_type.value))
    hit = _NULL_CELLS.get(cache_key)
    if hit is None:
        nulls = pa.nulls(1, arrow_type)
        if pa.types.is_dictionary(arrow_type):
            nulls = pa.nulls(1, arrow_type.value_type)
        hit = _NULL_CELLS[cache_key] = bytes(
            _serialized(nulls.to_numpy(zero_copy_only=False), value_type)[0]
        )
    return hit


_CHECKED: set[str] = set()


def _check_wire_formats() -> None:
    """The packed encodings equal protobuf's (once per process), else a loud error."""
    if "wire" in _CHECKED:
        return
    from feast.protos.feast.types.Value_pb2 import Value

    doubles = [1.5, -0.0, 1e300]
    probes = np.array([0, 1, -1, 300, 2**40, -(2**31)], dtype=np.int64)
    ours = (
        [bytes([_DOUBLE_TAG]) + _DOUBLE.pack(d) for d in doubles]
        + _varint_cells(_INT_TAGS[4], probes, zero=True)
        + _varint_cells(_INT_TAGS[3], probes[:4], zero=True)
        + _varint_cells(_UNIX_TIMESTAMP_TAG, probes, zero=True)
    )
    want = (
        [Value(double_val=d).SerializeToString() for d in doubles]
        + [Value(int64_val=int(p)).SerializeToString() for p in probes]
        + [Value(int32_val=int(p)).SerializeToString() for p in probes[:4]]
        + [Value(unix_timestamp_val=int(p)).SerializeToString() for p in probes]
    )
    if ours != want:
        raise OnlineStoreError(
            "protobuf's Value encoding is not the one this project packs",
            "Upgrade xiva_source together with feast and protobuf (see pyproject.toml).",
        )
    _CHECKED.add("wire")


def _doubles(column: pa.Array, null: bytes) -> np.ndarray:
    """``double_val`` cells packed with numpy; null and NaN -> ``null`` (as Feast's converter)."""
    import pyarrow as pa

    _check_wire_formats()
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype("<f8", copy=False)
    n = len(values)
    packed = np.empty((n, 9), dtype=np.uint8)
    packed[:, 0] = _DOUBLE_TAG
    packed[:, 1:] = np.ascontiguousarray(values).view(np.uint8).reshape(n, 8)
    raw = packed.tobytes()
    out = np.empty(n, dtype=object)
    out[:] = [raw[i : i + 9] for i in range(0, 9 * n, 9)]
    missing = np.isnan(values)
    if missing.any():
        out[missing] = null
    return out


def _integers(column: pa.Array, tag: int, null: bytes) -> np.ndarray:
    """``int64_val`` / ``int32_val`` cells as varints with numpy; null -> ``null``."""
    _check_wire_formats()
    values = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.empty(len(values), dtype=object)
    out[:] = _varint_cells(tag, values, zero=True)
    if column.null_count:
        out[column.is_null().to_numpy(zero_copy_only=False)] = null
    return out


def _unix_timestamps(column: pa.Array) -> np.ndarray:
    """``unix_timestamp_val`` cells as Feast's converter makes them from the same numpy array.

    Feast casts ``datetime64`` values to ``datetime64[s]`` and then to an integer (a null,
    ``NaT``, becomes its null timestamp, ``INT64_MIN``); the same numpy casts, a column at a time.
    """
    _check_wire_formats()
    values = column.to_numpy(zero_copy_only=False)
    seconds = values.astype("datetime64[s]").astype(np.int64)
    out = np.empty(len(seconds), dtype=object)
    out[:] = _varint_cells(_UNIX_TIMESTAMP_TAG, seconds, zero=True)
    return out


def _varint_cells(tag: int, values: np.ndarray, *, zero: bool = False) -> list[bytes]:
    """``tag`` + the protobuf varint of each int64 value, column-wise.

    A 0 is ``b""`` (proto3 leaves a plain field out), unless ``zero`` (a ``oneof`` member, as
    ``Value.int64_val``, is written even when 0). A negative value takes 10 bytes (two's
    complement), as protobuf writes an ``int64``.
    """
    v = values.astype(np.int64).view(np.uint64).copy()
    n = len(v)
    matrix = np.zeros((n, 11), dtype=np.uint8)
    matrix[:, 0] = tag
    lengths = np.full(n, 2, dtype=np.int64)
    for k in range(1, 11):
        more = (v >> np.uint64(7)) != 0
        matrix[:, k] = (v & np.uint64(0x7F)).astype(np.uint8) | (more.astype(np.uint8) << 7)
        v >>= np.uint64(7)
        lengths += more
        if not more.any():
            break
    if not zero:
        lengths[values == 0] = 0
    raw = matrix.tobytes()
    return [raw[i * 11 : i * 11 + length] for i, length in enumerate(lengths.tolist())]


# --- feature values: decoding -------------------------------------------------------------------
_PLAIN_VALUES = frozenset(
    f"{kind}_val" for kind in ("bytes", "string", "int32", "int64", "double", "float", "bool")
)
_NULL_TIMESTAMP = -(2**63)  # Feast's NULL_TIMESTAMP_INT_VALUE: NaT as int64
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def decode_value(cell: bytes | None) -> Any:
    """A stored feature cell (serialized protobuf ``Value``) as Python; None when missing.

    What Feast's ``feast_value_type_to_python_type`` returns. The plain scalars, Unix timestamps
    and their lists are converted here, with ``Value`` parsed by a class of the light registry
    reader's pool (no Feast SDK import: ``segmentation sizes`` starts in a fraction of a second);
    every other kind (maps, JSON, sets, UUIDs, decimals...) goes to Feast's conversion. The
    tests compare both on every kind converted here.
    """
    if not cell:
        return None
    from xiva_source.feast_plugin.registry_reader import feast_message_class

    value = feast_message_class("feast.types.Value").FromString(cell)
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _PLAIN_VALUES:
        return getattr(value, kind)
    if kind == "unix_timestamp_val":
        return _timestamp(value.unix_timestamp_val)
    if kind.endswith("_list_val") and f"{kind.removesuffix('_list_val')}_val" in _PLAIN_VALUES:
        return list(getattr(value, kind).val)
    if kind == "unix_timestamp_list_val":
        return [_timestamp(v) for v in value.unix_timestamp_list_val.val]
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(Value.FromString(cell))


def _timestamp(seconds: int) -> _dt.datetime | None:
    """Feast's conversion: ``datetime.fromtimestamp(seconds, UTC)``, None for its null."""
    return None if seconds == _NULL_TIMESTAMP else _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)


def fast_double(cell: bytes | None) -> float | None:
    """A stored ``double_val`` decoded without protobuf; None when ``cell`` is anything else."""
    if cell and len(cell) == 9 and cell[0] == _DOUBLE_TAG:
        value: float = _DOUBLE.unpack_from(cell, 1)[0]
        return value
    return None


def decode_cells(
    cells: Sequence[bytes | None],
    value_type: ValueType | str,
    cache: dict[bytes, Any] | None = None,
) -> list[Any]:
    """One feature's stored cells as Python values (None when missing), in order.

    Args:
        cells: The cells (``HMGET`` replies of one field).
        value_type: The feature's Feast value type (or its name): doubles skip protobuf.
        cache: Decoded values by cell, kept across calls for one feature (up to 100,000);
            default none kept.

    Returns:
        One value per cell.
    """
    store: dict[bytes, Any] = {} if cache is None else cache

    def decode(cell: bytes | None) -> Any:
        if not cell:
            return None
        try:
            return store[cell]
        except KeyError:
            value = decode_value(cell)
            if len(store) < _CACHE_MAX:
                store[cell] = value
            return value

    if getattr(value_type, "name", value_type) == "DOUBLE":
        return [d if (d := fast_double(c)) is not None else decode(c) for c in cells]
    return [decode(c) for c in cells]


# --- event timestamps (``_ts:<view>``) ----------------------------------------------------------
def timestamp_parts(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each event time's ``Timestamp`` seconds and nanos, as Feast's writer stores them.

    A naive time is UTC; microsecond precision (Feast goes through ``datetime``); seconds are
    floored, so a time before 1970 has negative seconds and positive nanos.

    Args:
        column: Event times (an Arrow timestamp array, or anything Arrow casts to one).

    Returns:
        ``(seconds, nanos)``, int64 arrays.

    Raises:
        ValueError: The column has null values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        raise ValueError("the event timestamp column has null values")
    if not pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us", tz="UTC"))
    micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False)
    us = micros.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64)
    seconds, micro = np.divmod(us, 1_000_000)
    return seconds, micro * 1000


def encode_timestamps(seconds: np.ndarray, nanos: np.ndarray) -> list[bytes]:
    """Serialized protobuf ``Timestamp`` cells, column-wise (two optional varints each)."""
    return [
        a + b
        for a, b in zip(
            _varint_cells(_SECONDS_TAG, seconds), _varint_cells(_NANOS_TAG, nanos), strict=True
        )
    ]


def encode_timestamp(seconds: float) -> bytes:
    """A stored ``_ts:<view>`` cell of epoch ``seconds`` (rounded to the microsecond)."""
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    return encode_timestamps(np.array([whole]), np.array([micros * 1000]))[0]


_TS_CACHE: dict[bytes, float] = {}


def decode_timestamp(cell: bytes | None) -> float:
    """A stored ``_ts:<view>`` cell (protobuf ``Timestamp``) as epoch seconds; NaN when missing."""
    if not cell:
        return math.nan
    hit = _TS_CACHE.get(cell)
    if hit is not None:
        return hit
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp.FromString(cell)
    value = ts.seconds + ts.nanos / 1e9
    if len(_TS_CACHE) < _CACHE_MAX:  # timestamps repeat a lot within a run
        _TS_CACHE[cell] = value
    return value


def decode_timestamps(cells: Sequence[bytes | None]) -> np.ndarray:
    """Stored ``_ts:<view>`` cells as epoch seconds (float64; NaN where missing)."""
    return np.array([decode_timestamp(c) for c in cells], dtype="float64")
