"""A bulk writer of Arrow tables into Feast's exact Redis layout, newer-write-wins server-side.

Feast's ``RedisOnlineStore.online_write_batch`` reads every row's stored ``_ts:<view>`` (one
``HMGET`` round trip per batch), then sends ``HSET`` + ``EXPIRE`` per row and parses every reply,
with each key and every ``Value`` serialized row by row in Python. This writer writes the same
hashes (:mod:`xiva_source.feast_plugin.redis_layout` builds the keys and field names; each cell is
the serialized protobuf ``Value`` Feast's own converter makes, so stock ``get_online_features``
reads exactly what it wrote) and moves the comparison into Redis:

- one Lua script (``EVALSHA``, its SHA computed here, loaded only when Redis answers
  ``NOSCRIPT``) writes a group of rows: per row it decodes the stored ``_ts:<view>`` (a protobuf
  ``Timestamp``) and writes the row's fields, ``_ts`` and the key's expiry (``EXPIRE
  key_ttl_seconds``, as Feast does) in the same call;
- values are serialized once per distinct value (Arrow ``dictionary_encode``: statuses, tiers,
  cities, dates and counts repeat), doubles vectorized with numpy, keys built column-wise;
- on a single Redis the groups of a table go in one pipeline (one round trip); on a Redis Cluster
  a script may only touch keys of one hash slot, so rows are grouped by slot
  (``redis.crc.key_slot``), one ``EVALSHA`` per slot group, pipelined per primary (a ``MOVED``
  after a resharding refreshes the slot map and the table is written again: every write is
  idempotent).

The rule (server-side, per row)::

    write when force, or the key has no _ts:<view>, or new ts >= stored ts  (seconds, nanos)

So a row older than what is stored does not overwrite it (Feast's newer-wins), an equal one does
(Feast skips it: a catch-up after a fallback carries the same timestamps as the partial rows it
repairs, and the job's DWH lookback re-reads rows unchanged), and ``force`` (a full reload, a mode
change, a wiped store) rewrites whatever is stored, a row stamped in the year 9999 included.

A *partial* table (:func:`write` with ``partial=True``) writes only its known cells: a null cell
(as Feast serializes a null of that type) is left out of the hash, so Redis keeps its value; a
row with no known cell is not sent. The same rule decides whether its cells land.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.features.catalogue import EVENT_TIMESTAMP

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow as pa
    from feast import FeatureView
    from feast.repo_config import RepoConfig
    from feast.value_type import ValueType

    from xiva_source.feast_plugin.redis_layout import RedisLayout

__all__ = ["BULK_WRITE_SCRIPT", "ROWS_PER_CALL", "BulkWriteResult", "BulkWriter"]

ROWS_PER_CALL = 1_000
"""Rows per ``EVALSHA`` on a single Redis: small enough that one call blocks Redis for
milliseconds, large enough that the per-command cost vanishes."""

BULK_WRITE_SCRIPT = """
local tsf, ttl, force, nf = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local names = {}
for j = 1, nf do names[j] = ARGV[4 + j] end
local p = 5 + nf
local written = 0
local byte = string.byte
-- a protobuf varint at s[i..]: value, next position (a 10-byte one is a negative int64)
local function varint(s, i, n)
  local v, mul, start, b = 0, 1, i, 0
  repeat
    b = byte(s, i)
    i = i + 1
    v = v + (b % 128) * mul
    mul = mul * 128
  until b < 128 or i > n
  if i - start >= 10 then -- two's complement: -(the inverted low 63 bits + 1)
    v, mul = 0, 1
    for k = start, start + 8 do v = v + (127 - byte(s, k) % 128) * mul mul = mul * 128 end
    v = -(v + 1)
  end
  return v, i
end
-- a protobuf Timestamp (field 1 seconds, field 2 nanos) -> seconds, nanos
local function decode(s)
  local secs, nanos, i, n = 0, 0, 1, #s
  while i <= n do
    local tag, v = byte(s, i), 0
    v, i = varint(s, i + 1, n)
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  return secs, nanos
end
-- full rows fill the value slots of one prefilled table (no table built per row)
local full = {tsf, ''}
for j = 1, nf do full[2 * j + 1] = names[j] full[2 * j + 2] = '' end
local part = {tsf, ''}
local nfull = 2 * nf + 2
for i = 1, #KEYS do
  local key, p0 = KEYS[i], p
  local blob, mask = ARGV[p + 2], ARGV[p + 3]
  local cells, c
  if mask == '' then
    full[2] = blob
    for j = 1, nf do full[2 * j + 2] = ARGV[p + 3 + j] end
    cells, c = full, nfull
    p = p + 4 + nf
  else
    part[2] = blob
    c = 2
    local q = p + 4
    for j = 1, nf do
      if byte(mask, j) == 49 then
        part[c + 1] = names[j] part[c + 2] = ARGV[q] c = c + 2 q = q + 1
      end
    end
    cells = part
    p = q
  end
  local ok = force
  if not ok then
    local old = redis.call('HGET', key, tsf)
    if not old then
      ok = true
    else
      local s0, n0 = decode(old)
      local secs = tonumber(ARGV[p0])
      ok = secs > s0 or (secs == s0 and tonumber(ARGV[p0 + 1]) >= n0)
    end
  end
  if ok then
    redis.call('HSET', key, unpack(cells, 1, c))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
"""
"""The write script. ARGV: ``_ts`` field, ttl (0: none), force (``1``/``0``), the number of
feature fields and their names, then per key: seconds, nanos, serialized ``Timestamp``, a mask
(empty: every field follows; else one ``0``/``1`` per field) and the values that follow."""

_SHA = hashlib.sha1(BULK_WRITE_SCRIPT.encode("utf-8")).hexdigest()
_DOUBLE_TAG = b"\x29"  # protobuf field 5 (double_val), wire type 1: checked against protobuf below


@dataclass
class BulkWriteResult:
    """What one :meth:`BulkWriter.write` did.

    Attributes:
        sent: Rows sent to Redis (a partial table's rows without a known cell are not).
        written: Rows the script wrote (the others were older than what is stored).
    """

    sent: int = 0
    written: int = 0


@dataclass(frozen=True)
class _Encoded:
    """A table in the script's terms: keys and per-row argument tuples, in table order."""

    keys: list[bytes]
    rows: list[tuple[bytes, ...]]


class BulkWriter:
    """Writes Arrow tables of feature views into Feast's Redis layout (see the module doc).

    Args:
        client: The online store's Redis (``redis.Redis``, or ``redis.cluster.RedisCluster``).
        config: The repository's ``RepoConfig`` (project, serialization version, versioning).
        ttl_seconds: The key expiry set with every write (the online store's
            ``key_ttl_seconds``); ``None`` or 0: none.
        force: Write every row whatever is stored (full reloads).
        rows_per_call: Rows per ``EVALSHA`` (single Redis).

    Example:
        >>> writer = BulkWriter(client, store.config, ttl_seconds=86400)  # doctest: +SKIP
        >>> writer.write(fv, table, {"customer_id": ValueType.STRING}).written  # doctest: +SKIP
        10000
    """

    def __init__(
        self,
        client: Any,
        config: RepoConfig,
        *,
        ttl_seconds: int | None = None,
        force: bool = False,
        rows_per_call: int = ROWS_PER_CALL,
    ) -> None:
        from redis.cluster import RedisCluster

        self.client = client
        self.config = config
        self.ttl_seconds = int(ttl_seconds or 0)
        self.force = force
        self.rows_per_call = max(1, rows_per_call)
        self._cluster = isinstance(client, RedisCluster)
        self._layouts: dict[tuple[str, ...], RedisLayout] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[int] | None = None
        self._written = 0

    # --- public -----------------------------------------------------------------------------
    def write(
        self,
        fv: FeatureView,
        table: pa.Table,
        join_keys: dict[str, ValueType],
        *,
        partial: bool = False,
    ) -> BulkWriteResult:
        """Write ``table``'s rows of ``fv``.

        Args:
            fv: The feature view (its features, its batch source's timestamp field).
            table: The join keys, every feature of ``fv`` and the event timestamp column
                (``event_timestamp``, or the batch source's own name).
            join_keys: Join key name -> value type (as Feast's engines pass them).
            partial: Write only the known (non-null) cells of each row.

        Returns:
            Rows sent and rows written.

        Raises:
            OnlineStoreError: Redis failed or refused the script.
            ValueError: A column is missing, or a join key or event timestamp is null.
        """
        result = BulkWriteResult()
        if table.num_rows == 0:
            return result
        header, encoded = self._encode(fv, table, join_keys, partial=partial)
        self._wait()  # a table submit() sent goes first
        if not encoded.keys:
            return result
        result.sent = len(encoded.keys)
        result.written = self._send(header, encoded)
        return result

    def submit(
        self,
        fv: FeatureView,
        table: pa.Table,
        join_keys: dict[str, ValueType],
        *,
        partial: bool = False,
    ) -> int:
        """Like :meth:`write`, but the rows go to Redis in the background.

        The table is encoded now; it is sent by a worker thread once the previous table is in
        Redis, so the caller reads and encodes its next table while Redis writes this one. A
        failure surfaces at the next :meth:`submit` or at :meth:`flush`, which the caller must
        call before it relies on the rows being stored.

        Returns:
            Rows handed to Redis.

        Raises:
            OnlineStoreError: The *previous* table failed.
            ValueError: As :meth:`write`.
        """
        from concurrent.futures import ThreadPoolExecutor

        if table.num_rows == 0:
            return 0
        header, encoded = self._encode(fv, table, join_keys, partial=partial)
        self._wait()
        if not encoded.keys:
            return 0
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-writer")
        self._pending = self._executor.submit(self._send, header, encoded)
        return len(encoded.keys)

    def flush(self) -> int:
        """Wait for the table :meth:`submit` sent last; returns the rows written since the last
        flush (older rows are not written).

        Raises:
            OnlineStoreError: Redis failed.
        """
        try:
            self._wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        written, self._written = self._written, 0
        return written

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._written += pending.result()

    def _send(self, header: list[bytes | int | str], encoded: _Encoded) -> int:
        from redis.exceptions import RedisError

        try:
            if self._cluster:
                return self._send_cluster(header, encoded)
            return self._send_single(header, encoded)
        except RedisError as e:
            raise OnlineStoreError.failed(e) from e

    # --- encoding ---------------------------------------------------------------------------
    def _layout(self, join_keys: Sequence[str]) -> RedisLayout:
        from xiva_source.feast_plugin.redis_layout import RedisLayout

        names = tuple(sorted(join_keys))
        layout = self._layouts.get(names)
        if layout is None:
            layout = self._layouts[names] = RedisLayout.of(self.config, names)
        return layout

    def _encode(
        self, fv: FeatureView, table: pa.Table, join_keys: dict[str, ValueType], *, partial: bool
    ) -> tuple[list[bytes | int | str], _Encoded]:
        from xiva_source.feast_plugin.redis_layout import field_name, timestamp_field, view_name

        view = view_name(fv, self.config)
        features = [(f.name, f.dtype.to_value_type()) for f in fv.features]
        header: list[bytes | int | str] = [
            timestamp_field(view),
            self.ttl_seconds,
            "1" if self.force else "0",
            len(features),
            *(field_name(view, name) for name, _ in features),
        ]
        table = table.combine_chunks()
        keys = self._keys(table, join_keys)
        secs, nanos, blobs = _event_timestamps(table, _timestamp_column(fv, table))
        cells: list[np.ndarray] = []
        nulls: list[bytes] = []
        for name, value_type in features:
            if name not in table.column_names:
                raise ValueError(f"Column {name} not found in table")
            column, null = encode_column(_array(table.column(name)), value_type)
            cells.append(column)
            nulls.append(null)
        if not partial:
            masks = [b""] * table.num_rows
            columns = [c.tolist() for c in cells]
            rows = list(zip(secs, nanos, blobs, masks, *columns, strict=True))
            return header, _Encoded(keys, rows)
        known = (
            np.stack([c != null for c, null in zip(cells, nulls, strict=True)], axis=1)
            if cells
            else np.zeros((table.num_rows, 0), dtype=bool)
        )
        keep = known.any(axis=1)
        mask_bytes = (known.astype(np.uint8) + ord("0")).tobytes()
        width = len(cells)
        out_keys: list[bytes] = []
        out_rows: list[tuple[bytes, ...]] = []
        columns = [c.tolist() for c in cells]
        for i in np.flatnonzero(keep).tolist():
            flags = known[i]
            values = [columns[j][i] for j in range(width) if flags[j]]
            mask = mask_bytes[i * width : (i + 1) * width]
            out_keys.append(keys[i])
            out_rows.append((secs[i], nanos[i], blobs[i], mask, *values))
        return header, _Encoded(out_keys, out_rows)

    def _keys(self, table: pa.Table, join_keys: dict[str, ValueType]) -> list[bytes]:
        """Each row's Redis key: column-wise for one string join key, else through protobuf."""
        from feast.value_type import ValueType as VT

        layout = self._layout(list(join_keys))
        for name in join_keys:
            if name not in table.column_names:
                raise ValueError(f"Column {name} not found in table")
            if table.column(name).null_count:
                raise ValueError(f"join key {name} has null values")
        if len(join_keys) == 1 and next(iter(join_keys.values())) == VT.STRING:
            ids = _array(table.column(next(iter(join_keys))))
            return layout.keys(ids.cast("string"))
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values

        names = list(join_keys)
        columns = [
            python_values_to_proto_values(
                _array(table.column(n)).to_numpy(zero_copy_only=False), join_keys[n]
            )
            for n in names
        ]
        return [
            layout.proto_key(EntityKey(join_keys=names, entity_values=list(values)))
            for values in zip(*columns, strict=True)
        ]

    # --- sending ----------------------------------------------------------------------------
    def _calls(
        self, header: list[bytes | int | str], keys: list[bytes], rows: list[tuple[bytes, ...]]
    ) -> Iterator[list[Any]]:
        """``EVALSHA`` argument lists of ``rows``, :attr:`rows_per_call` rows each."""
        step = self.rows_per_call
        for start in range(0, len(keys), step):
            part = keys[start : start + step]
            yield [
                "EVALSHA",
                _SHA,
                len(part),
                *part,
                *header,
                *chain.from_iterable(rows[start : start + step]),
            ]

    def _send_single(self, header: list[bytes | int | str], encoded: _Encoded) -> int:
        calls = list(self._calls(header, encoded.keys, encoded.rows))
        return _run_pipeline(self.client, calls)

    def _send_cluster(self, header: list[bytes | int | str], encoded: _Encoded) -> int:
        from redis.crc import key_slot
        from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

        by_slot: dict[int, list[int]] = {}
        for i, key in enumerate(encoded.keys):
            by_slot.setdefault(key_slot(key), []).append(i)
        for attempt in (1, 2):
            manager = self.client.nodes_manager
            by_node: dict[str, tuple[Any, list[list[Any]]]] = {}
            for slot, indexes in by_slot.items():
                node = manager.get_node_from_slot(slot)
                keys = [encoded.keys[i] for i in indexes]
                rows = [encoded.rows[i] for i in indexes]
                entry = by_node.setdefault(node.name, (node, []))
                entry[1].extend(self._calls(header, keys, rows))
            try:
                written = 0
                for node, calls in by_node.values():
                    written += _run_pipeline(self.client.get_redis_connection(node), calls)
                return written
            except (MovedError, AskError, TryAgainError, ClusterDownError):
                if attempt == 2:
                    raise
                manager.initialize()  # slots moved: learn the new map, write again (idempotent)
        raise AssertionError("unreachable")


def _run_pipeline(client: Any, calls: list[list[Any]]) -> int:
    """Send ``calls`` in one pipeline; load the script once on ``NOSCRIPT`` and send again."""
    from redis.exceptions import NoScriptError

    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        try:
            return sum(int(n) for n in pipe.execute())
        except NoScriptError:
            if attempt == 2:
                raise
            # Redis restarted or its script cache was flushed; rows already written are
            # written again with the same values and timestamps (equal wins).
            client.script_load(BULK_WRITE_SCRIPT)
        finally:
            pipe.reset()
    raise AssertionError("unreachable")


# --- columns ------------------------------------------------------------------------------------
def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _timestamp_column(fv: FeatureView, table: pa.Table) -> str:
    name = fv.batch_source.timestamp_field if fv.batch_source is not None else ""
    if name and name in table.column_names:
        return name
    if EVENT_TIMESTAMP in table.column_names:
        return EVENT_TIMESTAMP
    raise ValueError(f"Column {name or EVENT_TIMESTAMP} not found in table")


def _event_timestamps(table: pa.Table, name: str) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Per row: seconds and nanos (decimal) and the serialized protobuf ``Timestamp``.

    As Feast's writer: a naive time is UTC, microsecond precision (Feast goes through
    ``datetime``). Vectorized (event times rarely repeat): the ``Timestamp`` wire format is two
    optional varints, field 1 ``seconds`` and field 2 ``nanos``, each left out when 0 (checked
    against protobuf by the tests).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _array(table.column(name))
    if column.null_count:
        raise ValueError(f"the event timestamp column {name} has null values")
    if not pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us", tz="UTC"))
    micros = pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False)
    us = micros.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64)
    secs, micro = np.divmod(us, 1_000_000)  # floor: a negative second with positive nanos
    nanos = micro * 1000
    seconds_part = _varint_cells(0x08, secs)
    nanos_part = _varint_cells(0x10, nanos)
    blobs = [a + b for a, b in zip(seconds_part, nanos_part, strict=True)]
    return secs.astype("S21").tolist(), nanos.astype("S21").tolist(), blobs


def _varint_cells(tag: int, values: np.ndarray, *, zero: bool = False) -> list[bytes]:
    """``tag`` + the protobuf varint of each int64 value.

    A 0 is ``b""`` (proto3 leaves a plain field out), unless ``zero`` (a ``oneof`` member, as
    ``Value.int64_val``, is written even when 0).
    """
    v = values.astype(np.int64).view(np.uint64).copy()  # negatives: 10-byte two's complement
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
        return _integers(column, value_type, tag, null), null
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


def _check_double_format() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    for probe in (1.5, -0.0, 1e300):
        if Value(double_val=probe).SerializeToString() != _DOUBLE_TAG + struct.pack("<d", probe):
            raise OnlineStoreError(
                "protobuf's double Value encoding is not the one this writer packs",
                "Upgrade xiva_source together with feast and protobuf (see pyproject.toml).",
            )


_DOUBLE_CHECKED: list[bool] = []


def _doubles(column: pa.Array, null: bytes) -> np.ndarray:
    """``double_val`` cells packed with numpy; null and NaN -> ``null`` (as Feast's converter)."""
    import pyarrow as pa

    if not _DOUBLE_CHECKED:
        _check_double_format()
        _DOUBLE_CHECKED.append(True)
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype("<f8", copy=False)
    n = len(values)
    packed = np.empty((n, 9), dtype=np.uint8)
    packed[:, 0] = _DOUBLE_TAG[0]
    packed[:, 1:] = np.ascontiguousarray(values).view(np.uint8).reshape(n, 8)
    raw = packed.tobytes()
    out = np.empty(n, dtype=object)
    out[:] = [raw[i : i + 9] for i in range(0, 9 * n, 9)]
    missing = np.isnan(values)
    if missing.any():
        out[missing] = null
    return out


_INT_TAGS = {4: 0x20, 3: 0x18}  # ValueType.INT64 -> Value.int64_val (field 4), INT32 -> field 3


def _integers(column: pa.Array, value_type: ValueType, tag: int, null: bytes) -> np.ndarray:
    """``int64_val`` / ``int32_val`` cells as varints with numpy; null -> ``null``."""
    if not _INT_CHECKED:
        _check_int_format()
        _INT_CHECKED.append(True)
    values = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.empty(len(values), dtype=object)
    out[:] = _varint_cells(tag, values, zero=True)
    if column.null_count:
        out[column.is_null().to_numpy(zero_copy_only=False)] = null
    return out


_INT_CHECKED: list[bool] = []
_UNIX_TIMESTAMP_TAG = 0x40  # Value.unix_timestamp_val, field 8


def _unix_timestamps(column: pa.Array) -> np.ndarray:
    """``unix_timestamp_val`` cells as Feast's converter makes them from the same numpy array.

    Feast casts ``datetime64`` values to ``datetime64[s]`` and then to an integer (a null,
    ``NaT``, becomes its null timestamp, ``INT64_MIN``); the same numpy casts, a column at a time.
    """
    if not _INT_CHECKED:
        _check_int_format()
        _INT_CHECKED.append(True)
    values = column.to_numpy(zero_copy_only=False)
    seconds = values.astype("datetime64[s]").astype(np.int64)
    out = np.empty(len(seconds), dtype=object)
    out[:] = _varint_cells(_UNIX_TIMESTAMP_TAG, seconds, zero=True)
    return out


def _check_int_format() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    probes = np.array([0, 1, -1, 300, 2**40, -(2**31)], dtype=np.int64)
    ours = (
        _varint_cells(0x20, probes, zero=True)
        + _varint_cells(0x18, probes[:4], zero=True)
        + _varint_cells(_UNIX_TIMESTAMP_TAG, probes, zero=True)
    )
    want = (
        [Value(int64_val=int(p)).SerializeToString() for p in probes]
        + [Value(int32_val=int(p)).SerializeToString() for p in probes[:4]]
        + [Value(unix_timestamp_val=int(p)).SerializeToString() for p in probes]
    )
    if ours != want:
        raise OnlineStoreError(
            "protobuf's integer Value encoding is not the one this writer packs",
            "Upgrade xiva_source together with feast and protobuf (see pyproject.toml).",
        )
