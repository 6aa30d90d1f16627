"""Entity keys: which Redis hash holds an entity of a Feast project.

A key is Feast's ``_redis_key``: ``serialize_entity_key(entity key, version) + project``. A
serialized entity key is ``<prefix><value>...``: the prefix depends on the join-key names only
(Feast's ``serialize_entity_key_prefix``), then one ``<type u32><length u32><bytes>`` per value.
The keys of a project are found with ``SCAN MATCH <prefix>*<project>`` (glob-escaped,
:meth:`RedisLayout.scan_pattern`) and then checked exactly (:meth:`RedisLayout.is_key`), because
the pattern also matches keys of a project whose name ends with this one's (``shop`` vs
``myshop``) and of entities with more values.

Keys are built with Feast's own helpers; the fast path for string keys (column-wise, no protobuf)
is checked against Feast's ``_redis_key`` once, so a change of layout in Feast fails loudly
instead of reading nothing.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.feast_plugin.redis_format.codec import column_array

if TYPE_CHECKING:
    import pyarrow as pa
    from feast.repo_config import RepoConfig
    from feast.value_type import ValueType

__all__ = ["RedisLayout", "glob_escape"]

_U32 = struct.Struct("<I")
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
    def of(cls, config: RepoConfig | Any, join_keys: Sequence[str]) -> RedisLayout:
        """The layout of ``config``'s project (and serialization version) for ``join_keys``.

        ``config``: Feast's ``RepoConfig``, or anything with ``project`` and
        ``entity_key_serialization_version`` (a ``LightRepository``'s config).
        """
        return cls(config.project, tuple(join_keys), int(config.entity_key_serialization_version))

    # --- keys -------------------------------------------------------------------------------
    @cached_property
    def prefix(self) -> bytes:
        """The serialized join-key names every entity key of this layout starts with.

        Feast's ``serialize_entity_key_prefix``, written here so that scanning keys needs no
        Feast SDK import (``xiva-source status``); equal to Feast's (the tests compare them, and
        :attr:`_string_head` checks a whole key against Feast's before any key is written).
        """
        out = [_U32.pack(len(self.join_keys))] if self.version > 2 else []
        for name in self.join_keys:
            raw = name.encode("utf-8")
            out.append(_U32.pack(_STRING_TYPE))
            if self.version > 2:
                out.append(_U32.pack(len(raw)))
            out.append(raw)
        return b"".join(out)

    @cached_property
    def _string_head(self) -> bytes:
        """``prefix`` + the STRING type code: a single string key is head + length + bytes.

        Checked once against Feast's own ``_redis_key`` when Feast is loaded (every write path:
        Feast calls the plugin, the job opens its store); a reader that never imports Feast
        (``segmentation sizes``) relies on the tests, which compare the keys with Feast's.
        """
        head = self.prefix + _U32.pack(_STRING_TYPE)
        if "feast" not in sys.modules:
            return head
        from feast.infra.online_stores.helpers import _redis_key

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

    def table_keys(self, table: pa.Table, join_keys: Mapping[str, ValueType]) -> list[bytes]:
        """Each row's Redis key from the join-key columns of ``table``.

        Column-wise (:meth:`keys`) for one string join key, else through Feast's protobuf
        conversion of each value (any join keys and value types).

        Args:
            table: An Arrow table holding the ``join_keys`` columns.
            join_keys: Join key name -> value type (as Feast's engines pass them).

        Raises:
            ValueError: A join-key column is missing or has null values.
        """
        from feast.value_type import ValueType as VT

        if tuple(sorted(join_keys)) != self.join_keys:
            raise ValueError(
                f"join keys {sorted(join_keys)} are not this layout's {self.join_keys}"
            )
        for name in join_keys:
            if name not in table.column_names:
                raise ValueError(f"Column {name} not found in table")
            if table.column(name).null_count:
                raise ValueError(f"join key {name} has null values")
        names = list(join_keys)
        if len(names) == 1 and join_keys[names[0]] == VT.STRING:
            return self.keys(column_array(table.column(names[0])).cast("string"))
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values

        columns = [
            python_values_to_proto_values(
                column_array(table.column(n)).to_numpy(zero_copy_only=False), join_keys[n]
            )
            for n in names
        ]
        return [
            self.proto_key(EntityKey(join_keys=names, entity_values=list(values)))
            for values in zip(*columns, strict=True)
        ]

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
