"""Feast's Redis online-store layout: the one module that knows it.

Feast (0.67) stores one Redis hash per entity::

    key    = serialize_entity_key(entity key, entity_key_serialization_version) + project
    fields = murmur3_32("<view>:<feature>")  -> a serialized protobuf ``Value``
             "_ts:<view>"                     -> a serialized protobuf ``Timestamp``

A serialized entity key is ``<prefix><value>...``: the prefix depends on the join-key names only
(Feast's ``serialize_entity_key_prefix``), then one ``<type u32><length u32><bytes>`` per value.
The key of a project is found with ``SCAN MATCH <prefix>*<project>`` (glob-escaped) and then
checked exactly, because the pattern also matches keys of a project whose name ends with this one's
(``shop`` vs ``myshop``) and of entities with more values.

Keys and field names are built with Feast's own helpers (``serialize_entity_key``, ``_mmh3``,
``compute_versioned_name``), and the fast path for string keys is checked against Feast's
``_redis_key`` once, so a change of layout in Feast fails loudly instead of reading nothing. The
job's expiry step, segmentation's reader and the tests all go through here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import OnlineStoreError

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

    from xiva_source.redis_client import RedisClient

__all__ = [
    "RedisLayout",
    "decode_timestamp",
    "decode_value",
    "encode_string_list",
    "encode_timestamp",
    "fast_double",
    "field_name",
    "glob_escape",
    "scan_entity_keys",
    "timestamp_field",
    "view_name",
]

_U32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_DOUBLE_TAG = 0x29  # protobuf field 5 (double_val), wire type 1 (64-bit)
_STRING_TYPE = 2  # feast.types.Value.ValueType.STRING, the type code serialized before a value
_PROBE = "customer-ü-42"


def glob_escape(raw: bytes) -> bytes:
    """``raw`` with Redis glob metacharacters (``* ? [ ] \\``) backslash-escaped.

    Example:
        >>> glob_escape(b"a*b")
        b'a\\\\*b'
    """
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out.append(0x5C)
        out.append(b)
    return bytes(out)


@dataclass(frozen=True)
class RedisLayout:
    """The Redis keys of one Feast project and entity (its join keys).

    Args:
        project: The Feast project (the key's suffix).
        join_keys: The entity's join keys; sorted here the way Feast sorts them.
        version: The repository's ``entity_key_serialization_version``.

    Example:
        >>> layout = RedisLayout("shop", ("customer_id",))  # doctest: +SKIP
        >>> layout.entity_id(layout.key("C1"))  # doctest: +SKIP
        'C1'
    """

    project: str
    join_keys: tuple[str, ...]
    version: int = 3
    _suffix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.join_keys:
            raise ValueError("a Redis layout needs at least one join key")
        object.__setattr__(self, "join_keys", tuple(sorted(self.join_keys)))
        object.__setattr__(self, "_suffix", self.project.encode("utf-8"))

    @classmethod
    def of(cls, config: RepoConfig, join_keys: Sequence[str]) -> RedisLayout:
        """The layout of ``config``'s project (and serialization version) for ``join_keys``."""
        return cls(config.project, tuple(join_keys), int(config.entity_key_serialization_version))

    # --- keys -------------------------------------------------------------------------------
    @cached_property
    def prefix(self) -> bytes:
        """The serialized join-key names every entity key of this layout starts with."""
        from feast.infra.key_encoding_utils import serialize_entity_key_prefix

        return serialize_entity_key_prefix(
            list(self.join_keys), entity_key_serialization_version=self.version
        )

    @cached_property
    def _string_head(self) -> bytes:
        """``prefix`` + the STRING type code: a single string key is head + length + bytes.

        Checked once against Feast's own ``_redis_key``.
        """
        from feast.infra.online_stores.helpers import _redis_key

        head = self.prefix + _U32.pack(_STRING_TYPE)
        raw = _PROBE.encode("utf-8")
        ours = head + _U32.pack(len(raw)) + raw + self._suffix
        if ours != _redis_key(self.project, self._entity_proto((_PROBE,)), self.version):
            raise OnlineStoreError(
                "Feast's Redis entity key layout is not the one this project knows",
                "Upgrade xiva_source together with feast (see pyproject.toml for the version).",
            )
        return head

    def _entity_proto(self, values: Sequence[str]) -> Any:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        if len(values) != len(self.join_keys):
            raise ValueError(f"{len(self.join_keys)} join key values expected, got {len(values)}")
        return EntityKey(
            join_keys=list(self.join_keys), entity_values=[Value(string_val=v) for v in values]
        )

    def entity_key(self, *values: str) -> bytes:
        """Feast's serialized entity key of string ``values`` (in ``join_keys`` order)."""
        from feast.infra.key_encoding_utils import serialize_entity_key

        return serialize_entity_key(
            self._entity_proto(values), entity_key_serialization_version=self.version
        )

    def key(self, *values: str) -> bytes:
        """The Redis hash key of one entity: its serialized entity key + the project."""
        if len(values) == 1 and len(self.join_keys) == 1:
            raw = values[0].encode("utf-8")
            return self._string_head + _U32.pack(len(raw)) + raw + self._suffix
        return self.entity_key(*values) + self._suffix

    def keys(self, ids: Iterable[str] | Any) -> list[bytes]:
        """The Redis keys of many single string ids (each equal to :meth:`key`), column-wise.

        Args:
            ids: Strings, or an Arrow string array (joined in Arrow, no Python loop).

        Raises:
            ValueError: The layout has several join keys (use :meth:`proto_key` per row).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(self.join_keys) != 1:
            raise ValueError(f"keys() needs one join key, this layout has {self.join_keys}")
        array = ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())
        raw = array.cast(pa.binary())
        lengths = pc.binary_length(raw).to_numpy(zero_copy_only=False).astype("<u4")
        packed = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(4), len(raw), [None, pa.py_buffer(lengths.tobytes())]
        ).cast(pa.binary())
        binary = pa.binary()
        keys = pc.binary_join_element_wise(
            pa.scalar(self._string_head, binary),
            packed,
            raw,
            pa.scalar(self._suffix, binary),
            pa.scalar(b"", binary),  # the separator
        )
        out: list[bytes] = keys.to_pylist()
        return out

    def proto_key(self, entity_key: Any) -> bytes:
        """The Redis key of a Feast ``EntityKey`` proto (any join keys and value types)."""
        from feast.infra.online_stores.helpers import _redis_key

        key: bytes = _redis_key(self.project, entity_key, self.version)
        return key

    def scan_pattern(self) -> bytes:
        """``SCAN MATCH`` pattern of this layout's keys (a superset: check with :meth:`is_key`)."""
        return glob_escape(self.prefix) + b"*" + glob_escape(self._suffix)

    def entity_values(self, key: bytes) -> tuple[bytes, ...] | None:
        """The raw value bytes of ``key``, or None when ``key`` is not exactly of this layout."""
        prefix, suffix = self.prefix, self._suffix
        if not key.startswith(prefix) or not key.endswith(suffix):
            return None
        pos, end = len(prefix), len(key) - len(suffix)
        values: list[bytes] = []
        for _ in self.join_keys:
            if pos + 8 > end:
                return None
            (length,) = _U32.unpack_from(key, pos + 4)
            start = pos + 8
            pos = start + length
            if pos > end:
                return None
            values.append(key[start:pos])
        return tuple(values) if pos == end else None

    def is_key(self, key: bytes) -> bool:
        """True when ``key`` is exactly an entity key of this layout and project."""
        return self.entity_values(key) is not None

    def entity_id(self, key: bytes) -> str | None:
        """The string id of a single-join-key entity ``key``; None for a key of another layout.

        Raises:
            ValueError: The layout has several join keys (use :meth:`entity_values`).
        """
        if len(self.join_keys) != 1:
            raise ValueError(f"entity_id needs one join key, this layout has {self.join_keys}")
        head = self._string_head
        if not key.startswith(head) or len(key) < len(head) + 4:
            return None
        start = len(head) + 4
        (length,) = _U32.unpack_from(key, len(head))
        if len(key) != start + length + len(self._suffix) or not key.endswith(self._suffix):
            return None
        return key[start : start + length].decode("utf-8")


def scan_entity_keys(
    client: RedisClient, layout: RedisLayout, *, count: int = 10_000, unique: bool = True
) -> Iterator[bytes]:
    """Every Redis key of ``layout`` (its project and entity), checked exactly.

    On a Redis Cluster every primary is scanned in turn (each holds its slots' keys; a replica's
    keys are its primary's), so no key is missed whichever node holds it.

    Args:
        client: The online store's Redis (single server, sentinel primary or cluster).
        layout: Whose keys.
        count: ``SCAN COUNT`` hint.
        unique: Drop keys ``SCAN`` returns twice (it may, while the keyspace is rehashed); costs
            a set of the keys seen.

    Yields:
        Redis keys (bytes).
    """
    seen: set[bytes] = set()
    for key in _scan_every_primary(client, layout.scan_pattern(), count):
        if unique:
            if key in seen:
                continue
            seen.add(key)
        if layout.is_key(key):
            yield key


def _scan_every_primary(client: RedisClient, pattern: bytes, count: int) -> Iterator[bytes]:
    """``SCAN MATCH pattern`` over a single server, or over each primary of a cluster."""
    from redis.cluster import RedisCluster

    if not isinstance(client, RedisCluster):
        yield from client.scan_iter(match=pattern, count=count)
        return
    for node in client.get_primaries():
        yield from client.get_redis_connection(node).scan_iter(match=pattern, count=count)


# --- fields -------------------------------------------------------------------------------------
def field_name(view: str, feature: str) -> bytes:
    """The hash field of ``feature`` of ``view``: murmur3_32 of ``"<view>:<feature>"``."""
    from feast.infra.online_stores.helpers import _mmh3

    name: bytes = _mmh3(f"{view}:{feature}")
    return name


def timestamp_field(view: str) -> bytes:
    """The hash field holding ``view``'s event timestamp: ``_ts:<view>``."""
    return f"_ts:{view}".encode()


def view_name(feature_view: Any, config: RepoConfig) -> str:
    """The view name Feast stores (``<name>_v<N>`` when online view versioning is on)."""
    from feast.infra.online_stores.helpers import compute_versioned_name

    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    return str(compute_versioned_name(feature_view, versioning))


# --- values -------------------------------------------------------------------------------------
def decode_value(cell: bytes | None) -> Any:
    """A stored feature value (serialized protobuf ``Value``) as Python; None when missing."""
    if not cell:
        return None
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(Value.FromString(cell))


def encode_string_list(values: Sequence[str]) -> bytes:
    """A stored ``Array(String)`` feature value (serialized protobuf ``Value``; [] stays [])."""
    from feast.protos.feast.types.Value_pb2 import StringList, Value

    return bytes(Value(string_list_val=StringList(val=list(values))).SerializeToString())


def encode_timestamp(seconds: float) -> bytes:
    """A stored ``_ts:<view>`` (protobuf ``Timestamp``) of epoch ``seconds``."""
    from google.protobuf.timestamp_pb2 import Timestamp

    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)  # microseconds, like Feast
    ts = Timestamp(seconds=whole, nanos=micros * 1000)
    return bytes(ts.SerializeToString())


def fast_double(cell: bytes | None) -> float | None:
    """A stored ``double_val`` decoded without protobuf; None when ``cell`` is anything else."""
    if cell and len(cell) == 9 and cell[0] == _DOUBLE_TAG:
        value: float = _DOUBLE.unpack_from(cell, 1)[0]
        return value
    return None


_TS_CACHE: dict[bytes, float] = {}
_TS_CACHE_MAX = 100_000


def decode_timestamp(cell: bytes | None) -> float:
    """A stored ``_ts:<view>`` (protobuf ``Timestamp``) as epoch seconds; NaN when missing."""
    if not cell:
        return math.nan
    hit = _TS_CACHE.get(cell)
    if hit is not None:
        return hit
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp.FromString(cell)
    value = ts.seconds + ts.nanos / 1e9
    if len(_TS_CACHE) < _TS_CACHE_MAX:  # timestamps repeat a lot within a run
        _TS_CACHE[cell] = value
    return value
