"""A fast reader of Feast's Redis online store, column-wise.

Feast (0.67) stores one Redis hash per entity key: the key is Feast's serialized entity key followed
by the project name; each field is the 4-byte murmur3 of ``"<view>:<feature>"`` holding a serialized
protobuf ``Value``, plus ``_ts:<view>`` holding the view's event timestamp (protobuf ``Timestamp``).

The layout (keys, field names, the SCAN pattern and the exact key check, value decoding) is
:mod:`xiva_source.feast_plugin.redis_layout`, the one module that knows it; the Redis client is the
online store's (:func:`xiva_source.feast_plugin.online_store.online_redis_client`). This reader
enumerates the population with ``SCAN`` over the project's keys, reads with pipelined ``HMGET`` in
large batches and decodes each column with a value cache (feature columns repeat a lot) and a fast
path for doubles.

The features that age (``last_purchase_days_ago``, ``age``) are not stored: the store holds their
facts (``last_payment_date``, ``birth_date``), and the reader derives them as of ``now`` with the
one derivation (:func:`xiva_source.features.derived.derive_frame`), exactly as Feast's on-demand
view ``customer_time_features`` does for ``get_online_features``.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from segmentation.errors import OnlineStoreError, SegmentationError
from xiva_source.feast_plugin.redis_layout import (
    RedisLayout,
    decode_timestamp,
    decode_value,
    fast_double,
    field_name,
    scan_entity_keys,
    timestamp_field,
    view_name,
)
from xiva_source.features.catalogue import DERIVED_FEATURES
from xiva_source.features.derived import derive_frame, derive_row

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore

    from xiva_source.settings import Settings

__all__ = ["USE_TTL", "MaxAge", "OnlineReader", "ServedFeature"]

#: ``max_age`` default: a value is stale when older than its feature view's ``ttl``.
USE_TTL: Literal["ttl"] = "ttl"
MaxAge = _dt.timedelta | Mapping[str, _dt.timedelta | None] | Literal["ttl"] | None

_INT_TYPES = {"INT32", "INT64"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}


@dataclass(frozen=True)
class ServedFeature:
    """A feature the online store serves.

    Attributes:
        name: Feature name (what rules call it).
        view: Feature view name as stored (versioned when versioning is on).
        value_type: Feast ``ValueType`` name (``INT64``, ``DOUBLE``, ``STRING``...).
        field: The Redis hash field (murmur3 of ``"<view>:<name>"``); a derived feature's is its
            fact's.
        fact: For a feature derived when read (``age``), the stored fact it comes from
            (``birth_date``); ``None`` for a stored feature.
    """

    name: str
    view: str
    value_type: str
    field: bytes
    fact: str | None = None


class OnlineReader:
    """Reads online features of many customers from Feast's Redis store, column-wise.

    Args:
        store: The Feast ``FeatureStore`` (its registry and online store config are read once).
        client: A Redis client; default the online store's (``REDIS_URL`` of ``settings`` for the
            project's store, else the yaml's ``connection_string``).
        settings: The project's settings, for the default client; default loaded once for the
            repository (``.env`` beside or above it).
        batch_size: Keys per pipelined ``HMGET`` round trip.
        max_age: Staleness: ``USE_TTL`` (default: each view's ``ttl``; 0/None ttl = never stale),
            a ``timedelta`` for every view, a ``{view: timedelta | None}`` mapping (views not
            listed use their ttl), or ``None`` (never stale). A stale value reads as missing.

    Raises:
        OnlineStoreError: The online store is not a single Redis, or the repository serves no
            feature view with exactly one join key.
        ConfigurationError: The online store's ``REDIS_URL`` / connection string is not usable.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        client: redis.Redis | None = None,
        batch_size: int = 10_000,
        max_age: MaxAge = USE_TTL,
        settings: Settings | None = None,
    ) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        from xiva_source.feast_plugin.online_store import online_redis_client

        config = store.config
        online = config.online_store
        # Subclasses (the project's LoyaltyRedisOnlineStore) keep Feast's Redis layout.
        if not isinstance(online, RedisOnlineStoreConfig):
            raise OnlineStoreError(
                f"the online store is {getattr(online, 'type', type(online).__name__)!r}",
                "configure a Redis online store (type: redis, or the project's "
                "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore) in "
                "feature_store.yaml",
            )
        if str(getattr(online, "redis_type", "redis")).endswith("redis_cluster"):
            raise OnlineStoreError(
                "redis_cluster online stores are not supported by the fast reader",
                "use a single Redis (or a replica of it) for segmentation",
            )
        self.project: str = config.project
        self.version: int = config.entity_key_serialization_version
        self.batch_size = batch_size
        if client is None:
            client = online_redis_client(config, settings)
            assert client is not None  # a Redis online store (checked above)
        self.client = client

        self.features: dict[str, ServedFeature] = {}
        self.ttl: dict[str, _dt.timedelta | None] = {}
        join_keys: set[str] = set()
        for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
            if not fv.online:
                continue
            view = view_name(fv, config)
            self.ttl[view] = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
            join_keys.update(fv.join_keys)
            for f in fv.features:
                self.features.setdefault(
                    f.name,
                    ServedFeature(
                        f.name, view, f.dtype.to_value_type().name, field_name(view, f.name)
                    ),
                )
        for derived in DERIVED_FEATURES.values():
            fact = self.features.get(derived.fact)
            if fact is not None and fact.fact is None:
                self.features.setdefault(
                    derived.name,
                    ServedFeature(derived.name, fact.view, "INT64", fact.field, fact=fact.name),
                )
        if len(join_keys) != 1:
            raise OnlineStoreError(
                f"the repository's online feature views use join keys {sorted(join_keys)}",
                "segment over feature views of one entity with one join key (customer_id)",
            )
        self.join_key = join_keys.pop()
        self.max_age = self._resolve_max_age(max_age)
        self.layout = RedisLayout.of(config, [self.join_key])
        self.layout.key("")  # checks Feast's layout now rather than reading nothing later
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

    def key(self, customer_id: str) -> bytes:
        """The Redis key of one customer (Feast's ``_redis_key``)."""
        return self.layout.key(customer_id)

    def customer_id_of(self, key: bytes) -> str | None:
        """The customer id of a Redis key of this project, or None for another project's key."""
        return self.layout.entity_id(key)

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
        yield from scan_entity_keys(self.client, self.layout, count=count)

    def customer_ids(self) -> list[str]:
        """Every customer with online values in this project, sorted."""
        return sorted(cid for k in self.scan_keys() if (cid := self.customer_id_of(k)))

    # --- reading --------------------------------------------------------------------------
    def _stored(self, names: Sequence[str]) -> list[str]:
        """The stored features to read for ``names``: a derived one is read through its fact."""
        return list(dict.fromkeys(self.feature(n).fact or n for n in names))

    def _fields(self, names: Sequence[str]) -> tuple[list[ServedFeature], list[str], list[bytes]]:
        feats = [self.feature(n) for n in names]
        views = sorted({f.view for f in feats})
        fields = [f.field for f in feats] + [timestamp_field(v) for v in views]
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
        feats, views, fields = self._fields(self._stored(features))
        cells: Any = self.client.hmget(self.key(customer_id), fields)  # type: ignore[arg-type]
        n = len(feats)
        fresh = self._fresh_views(views, [[c] for c in cells[n:]], now)
        stored = {
            f.name: (self._decode(f, cells[i]) if fresh[f.view][0] else None)
            for i, f in enumerate(feats)
        }
        if any(self.feature(n).fact for n in features):
            stored.update(derive_row(stored, as_of=now))
        return {n: stored[n] for n in features}

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
            seconds = np.array([decode_timestamp(c) for c in col], dtype="float64")
            out[view] = ~np.isnan(seconds) & (seconds >= now_s - limit)
        return out

    def _decode(self, feature: ServedFeature, cell: bytes | None) -> Any:
        if not cell:
            return None
        cache = self._decode_cache.setdefault(feature.name, {})
        try:
            return cache[cell]
        except KeyError:
            value = decode_value(cell)
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
        feats, views, fields = self._fields(self._stored(features))
        rows = self._hmget(keys, fields) if keys else []
        n = len(feats)
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
        fresh = self._fresh_views(views, columns[n:], now)
        data: dict[str, Any] = {}
        for i, f in enumerate(feats):
            data[f.name] = self._column(f, columns[i], fresh[f.view])
        index = pd.Index(ids, name=self.join_key, dtype=object)
        frame = pd.DataFrame(data, index=index, columns=[f.name for f in feats])
        derived = [name for name in features if self.feature(name).fact]
        if derived:
            # As of now (the read), like the on-demand view: a stored count would have frozen.
            values = derive_frame(frame, as_of=now)
            for name in derived:
                frame[name] = values[name]
        return frame[list(dict.fromkeys(features))]

    def _column(self, f: ServedFeature, cells: Sequence[bytes | None], fresh: np.ndarray) -> Any:
        if f.value_type == "DOUBLE":
            values: list[Any] = [
                d if (d := fast_double(c)) is not None else self._decode(f, c) for c in cells
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
