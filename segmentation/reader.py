"""A fast reader of Feast's Redis online store, column-wise.

Feast (0.67) stores one Redis hash per entity key: the key is Feast's serialized entity key followed
by the project name; each field is the 4-byte murmur3 of ``"<view>:<feature>"`` holding a serialized
protobuf ``Value``, plus ``_ts:<view>`` holding the view's event timestamp (protobuf ``Timestamp``).

This reader builds keys and field names with Feast's own helpers (``serialize_entity_key``,
``_mmh3``, ``_redis_key``, ``compute_versioned_name``) so the layout cannot drift, enumerates
the population with ``SCAN`` over the project's keys, reads with pipelined ``HMGET`` in large
batches and decodes each column with a value cache (feature columns repeat a lot) and a fast
path for doubles.
"""

from __future__ import annotations

import datetime as _dt
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from segmentation.errors import OnlineStoreError, SegmentationError

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore

__all__ = ["USE_TTL", "MaxAge", "OnlineReader", "ServedFeature"]

#: ``max_age`` default: a value is stale when older than its feature view's ``ttl``.
USE_TTL: Literal["ttl"] = "ttl"
MaxAge = _dt.timedelta | Mapping[str, _dt.timedelta | None] | Literal["ttl"] | None

_DOUBLE = struct.Struct("<d")
_LEN = struct.Struct("<I")
_INT_TYPES = {"INT32", "INT64"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}


@dataclass(frozen=True)
class ServedFeature:
    """A feature the online store serves.

    Attributes:
        name: Feature name (what rules call it).
        view: Feature view name as stored (versioned when versioning is on).
        value_type: Feast ``ValueType`` name (``INT64``, ``DOUBLE``, ``STRING``...).
        field: The Redis hash field (murmur3 of ``"<view>:<name>"``).
    """

    name: str
    view: str
    value_type: str
    field: bytes


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out.append(0x5C)
        out.append(b)
    return bytes(out)


class OnlineReader:
    """Reads online features of many customers from Feast's Redis store, column-wise.

    Args:
        store: The Feast ``FeatureStore`` (its registry and online store config are read once).
        client: A Redis client; default one built from the online store's ``connection_string``.
        batch_size: Keys per pipelined ``HMGET`` round trip.
        max_age: Staleness: ``USE_TTL`` (default: each view's ``ttl``; 0/None ttl = never stale),
            a ``timedelta`` for every view, a ``{view: timedelta | None}`` mapping (views not
            listed use their ttl), or ``None`` (never stale). A stale value reads as missing.

    Raises:
        OnlineStoreError: The online store is not a single Redis, or the repository serves no
            feature view with exactly one join key.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        client: redis.Redis | None = None,
        batch_size: int = 10_000,
        max_age: MaxAge = USE_TTL,
    ) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_versioned_name
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        config = store.config
        online = config.online_store
        # Subclasses (the project's LoyaltyRedisOnlineStore) keep Feast's Redis layout.
        if not isinstance(online, RedisOnlineStoreConfig):
            raise OnlineStoreError(
                f"the online store is {getattr(online, 'type', type(online).__name__)!r}",
                "configure a Redis online store (type: redis, or the project's "
                "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore) in feature_store.yaml",
            )
        if str(getattr(online, "redis_type", "redis")).endswith("redis_cluster"):
            raise OnlineStoreError(
                "redis_cluster online stores are not supported by the fast reader",
                "use a single Redis (or a replica of it) for segmentation",
            )
        self.project: str = config.project
        self._project_bytes = self.project.encode("utf-8")
        self.version: int = config.entity_key_serialization_version
        self.batch_size = batch_size
        self.client = client if client is not None else _client_from(online.connection_string)
        versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))

        self.features: dict[str, ServedFeature] = {}
        self.ttl: dict[str, _dt.timedelta | None] = {}
        join_keys: set[str] = set()
        for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
            if not fv.online:
                continue
            view = compute_versioned_name(fv, versioning)
            self.ttl[view] = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
            join_keys.update(fv.join_keys)
            for f in fv.features:
                self.features.setdefault(
                    f.name,
                    ServedFeature(
                        f.name, view, f.dtype.to_value_type().name, _mmh3(f"{view}:{f.name}")
                    ),
                )
        if len(join_keys) != 1:
            raise OnlineStoreError(
                f"the repository's online feature views use join keys {sorted(join_keys)}",
                "segment over feature views of one entity with one join key (customer_id)",
            )
        self.join_key = join_keys.pop()
        self.max_age = self._resolve_max_age(max_age)

        # The entity key is "<head><len:u32><id bytes>"; head comes from Feast's serializer and is
        # checked against it, so a change of layout fails here instead of reading nothing.
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        def entity_key(cid: str) -> EntityKey:
            return EntityKey(join_keys=[self.join_key], entity_values=[Value(string_val=cid)])

        empty = serialize_entity_key(entity_key(""), entity_key_serialization_version=self.version)
        self._head = empty[:-4]
        probe = "customer-ü-42"
        expected = _redis_key(self.project, entity_key(probe), self.version)
        if self.key(probe) != expected or empty[-4:] != _LEN.pack(0):
            raise OnlineStoreError(
                "Feast's entity key layout is not the one this reader knows",
                "upgrade segmentation together with feast",
            )
        self._decode_cache: dict[str, dict[bytes, Any]] = {}

    # --- layout ---------------------------------------------------------------------------
    def _resolve_max_age(self, max_age: MaxAge) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for view, ttl in self.ttl.items():
            if max_age == USE_TTL:
                age: _dt.timedelta | None = ttl
            elif max_age is None or isinstance(max_age, _dt.timedelta):
                age = max_age
            elif isinstance(max_age, Mapping):
                age = max_age.get(view, ttl)
            else:
                raise SegmentationError(f"max_age {max_age!r} is not a timedelta, mapping or None")
            out[view] = age.total_seconds() if age is not None else None
        return out

    def _entity_bytes(self, customer_id: str) -> bytes:
        raw = customer_id.encode("utf-8")
        return self._head + _LEN.pack(len(raw)) + raw

    def key(self, customer_id: str) -> bytes:
        """The Redis key of one customer (Feast's ``_redis_key``)."""
        return self._entity_bytes(customer_id) + self._project_bytes

    def customer_id_of(self, key: bytes) -> str | None:
        """The customer id of a Redis key of this project, or None for another project's key."""
        head = self._head
        if not key.startswith(head) or len(key) < len(head) + 4:
            return None
        start = len(head) + 4
        (length,) = _LEN.unpack_from(key, len(head))
        if len(key) != start + length + len(self._project_bytes) or not key.endswith(
            self._project_bytes
        ):
            return None
        return key[start : start + length].decode("utf-8")

    def feature(self, name: str) -> ServedFeature:
        """The served feature called ``name``."""
        try:
            return self.features[name]
        except KeyError as e:
            raise OnlineStoreError(
                f"feature {name!r} is not served by project {self.project!r}",
                "use a feature name of the repository (python -m segmentation list --features)",
            ) from e

    # --- population -----------------------------------------------------------------------
    def scan_keys(self, count: int = 10_000) -> Iterator[bytes]:
        """Every Redis key of this project's customers.

        ``SCAN MATCH <serialized entity key prefix>*<project>``, then an exact parse of each key, so
        a project whose name ends with this one's is not counted.
        """
        pattern = _glob_escape(self._head) + b"*" + _glob_escape(self._project_bytes)
        seen: set[bytes] = set()
        for key in self.client.scan_iter(match=pattern, count=count):
            if key in seen:  # SCAN may return a key twice
                continue
            seen.add(key)
            if self.customer_id_of(key) is not None:
                yield key

    def customer_ids(self) -> list[str]:
        """Every customer with online values in this project, sorted."""
        return sorted(cid for k in self.scan_keys() if (cid := self.customer_id_of(k)))

    # --- reading --------------------------------------------------------------------------
    def _fields(self, names: Sequence[str]) -> tuple[list[ServedFeature], list[str], list[bytes]]:
        feats = [self.feature(n) for n in names]
        views = sorted({f.view for f in feats})
        fields = [f.field for f in feats] + [f"_ts:{v}".encode() for v in views]
        return feats, views, fields

    def _hmget(self, keys: Sequence[bytes], fields: list[bytes]) -> list[list[bytes | None]]:
        """Pipelined HMGETs, ``batch_size`` keys per round trip.

        The commands are packed and the replies read on one pooled connection directly: redis-py's
        ``Pipeline`` adds per-command bookkeeping that costs about 40% of the read time here (no
        callbacks apply to HMGET, so the replies are the same). A failed batch drops the
        connection instead of returning it to the pool with unread replies.
        """
        out: list[list[bytes | None]] = []
        pool = self.client.connection_pool
        for i in range(0, len(keys), self.batch_size):
            commands = [("HMGET", k, *fields) for k in keys[i : i + self.batch_size]]
            conn = pool.get_connection()
            try:
                conn.send_packed_command(conn.pack_commands(commands))
                out.extend(conn.read_response() for _ in commands)
            except BaseException:
                conn.disconnect()
                raise
            finally:
                pool.release(conn)
        return out

    def read(
        self,
        customer_ids: Sequence[str],
        features: Sequence[str],
        *,
        now: _dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Online values of ``features`` for ``customer_ids``, one row per customer.

        Args:
            customer_ids: The customers (unknown ones get an all-missing row).
            features: Feature names.
            now: The reference time for staleness (default: now).

        Returns:
            A DataFrame indexed by ``customer_id``: ``Int64`` for integer features, ``float64`` for
            floats (NaN missing), ``object`` for strings (None missing), ``boolean`` for bools.
        """
        ids = list(customer_ids)
        return self._frame(ids, [self.key(c) for c in ids], features, now)

    def read_keys(
        self, keys: Sequence[bytes], features: Sequence[str], *, now: _dt.datetime | None = None
    ) -> pd.DataFrame:
        """Like :meth:`read`, for Redis keys (from :meth:`scan_keys`)."""
        ids = [self.customer_id_of(k) or "" for k in keys]
        return self._frame(ids, list(keys), features, now)

    def iter_population(
        self, features: Sequence[str], *, chunk: int = 100_000, now: _dt.datetime | None = None
    ) -> Iterator[pd.DataFrame]:
        """The whole population in DataFrames of up to ``chunk`` customers (SCAN + HMGET)."""
        batch: list[bytes] = []
        for key in self.scan_keys():
            batch.append(key)
            if len(batch) >= chunk:
                yield self.read_keys(batch, features, now=now)
                batch = []
        if batch:
            yield self.read_keys(batch, features, now=now)

    def read_one(
        self, customer_id: str, features: Sequence[str], *, now: _dt.datetime | None = None
    ) -> dict[str, Any]:
        """One customer's values as a plain dict (one HMGET; missing/stale values are None)."""
        feats, views, fields = self._fields(features)
        cells: Any = self.client.hmget(self.key(customer_id), fields)  # type: ignore[arg-type]
        n = len(feats)
        fresh = self._fresh_views(views, [[c] for c in cells[n:]], now)
        return {
            f.name: (self._decode(f, cells[i]) if fresh[f.view][0] else None)
            for i, f in enumerate(feats)
        }

    def _fresh_views(
        self, views: list[str], ts_cells: Sequence[Sequence[bytes | None]], now: _dt.datetime | None
    ) -> dict[str, np.ndarray]:
        now_s = now.timestamp() if now is not None else time.time()
        out: dict[str, np.ndarray] = {}
        for view, col in zip(views, ts_cells, strict=True):
            limit = self.max_age.get(view)
            if limit is None:
                out[view] = np.ones(len(col), dtype=bool)
                continue
            seconds = np.array([_ts_seconds(c) for c in col], dtype="float64")
            out[view] = ~np.isnan(seconds) & (seconds >= now_s - limit)
        return out

    def _decode(self, feature: ServedFeature, cell: bytes | None) -> Any:
        if not cell:
            return None
        cache = self._decode_cache.setdefault(feature.name, {})
        try:
            return cache[cell]
        except KeyError:
            value = _decode_value(cell)
            if len(cache) < 100_000:
                cache[cell] = value
            return value

    def _frame(
        self,
        ids: list[str],
        keys: list[bytes],
        features: Sequence[str],
        now: _dt.datetime | None,
    ) -> pd.DataFrame:
        feats, views, fields = self._fields(features)
        rows = self._hmget(keys, fields) if keys else []
        n = len(feats)
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
        fresh = self._fresh_views(views, columns[n:], now)
        data: dict[str, Any] = {}
        for i, f in enumerate(feats):
            data[f.name] = self._column(f, columns[i], fresh[f.view])
        index = pd.Index(ids, name=self.join_key, dtype=object)
        return pd.DataFrame(data, index=index, columns=[f.name for f in feats])

    def _column(self, f: ServedFeature, cells: Sequence[bytes | None], fresh: np.ndarray) -> Any:
        if f.value_type == "DOUBLE":
            values: list[Any] = [
                _DOUBLE.unpack_from(c, 1)[0]
                if c and len(c) == 9 and c[0] == 0x29
                else self._decode(f, c)
                for c in cells
            ]
        else:
            decode = self._decode
            values = [decode(f, c) for c in cells]
        if not fresh.all():
            values = [v if ok else None for v, ok in zip(values, fresh, strict=True)]
        if f.value_type in _FLOAT_TYPES:
            return np.array([np.nan if v is None else v for v in values], dtype="float64")
        if f.value_type in _INT_TYPES:
            return pd.array(values, dtype="Int64")
        if f.value_type == "BOOL":
            return pd.array(values, dtype="boolean")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def _decode_value(cell: bytes) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(Value.FromString(cell))


_TS_CACHE: dict[bytes, float] = {}


def _ts_seconds(cell: bytes | None) -> float:
    if not cell:
        return float("nan")
    hit = _TS_CACHE.get(cell)
    if hit is not None:
        return hit
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp.FromString(cell)
    value = ts.seconds + ts.nanos / 1e9
    if len(_TS_CACHE) < 100_000:
        _TS_CACHE[cell] = value
    return value


def _client_from(connection_string: str) -> redis.Redis:
    """A Redis client from Feast's ``connection_string`` (``host:port,db=0,password=...``)."""
    import redis as _redis
    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, params = RedisOnlineStore._parse_connection_string(connection_string)
    if not nodes:
        raise OnlineStoreError(
            "the Redis connection_string names no host",
            'write connection_string: "host:6379" in feature_store.yaml',
        )
    return _redis.Redis(host=nodes[0]["host"], port=int(nodes[0].get("port", 6379)), **params)
