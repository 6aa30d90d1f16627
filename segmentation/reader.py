"""A fast reader of Feast's Redis online store, column-wise, streamed over the whole population.

Feast's storage format (keys, field names, ``_ts:<view>`` timestamps, value decoding) is
:mod:`xiva_source.feast_plugin.redis_format`, the one place that knows it; the project's keys are
found by the one ``SCAN`` (:mod:`xiva_source.feast_plugin.redis_scan`); the Redis client is the
online store's (:func:`xiva_source.feast_plugin.online_store.online_redis_client`): a single Redis,
a sentinel's master, or a Redis Cluster.

The population is streamed (:meth:`OnlineReader.iter_population`): a ``SCAN`` cursor walks the
project's keys, every ``chunk`` keys are read with packed ``HMGET``s (``batch_size`` keys per
round trip, :mod:`segmentation.hmget`) and decoded column by column into one DataFrame, which is
yielded before the next chunk is read. The whole key list is never held: memory is one chunk (per
primary on a cluster) plus 8 bytes per key for dropping the keys ``SCAN`` may return twice. On a
Redis Cluster every primary is scanned and read at the same time, one thread per primary on that
node's own connection (:mod:`segmentation.parallel`), and the chunks are yielded as they come.

The features that age (``last_purchase_days_ago``, ``age``) are not stored: the store holds their
facts (``last_payment_date``, ``birth_date``), and the reader derives them as of ``now`` with the
one derivation (:func:`xiva_source.features.derived.derive_frame`, whose rules the on-demand view
``customer_time_features`` applies for ``get_online_features`` through ``derive_columns``).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from segmentation.errors import OnlineStoreError, SegmentationError
from segmentation.hmget import hmget_many, hmget_on
from segmentation.parallel import parallel_chunks
from segmentation.served import SEGMENTS_VIEW
from xiva_source.feast_plugin.redis_format import (
    RedisLayout,
    decode_cells,
    decode_timestamps,
    field_name,
    timestamp_field,
    view_name,
)
from xiva_source.feast_plugin.redis_scan import (
    SeenKeys,
    primary_clients,
    scan_entity_keys,
    scan_key_chunks,
)
from xiva_source.features.catalogue import DERIVED_FEATURES
from xiva_source.features.derived import derive_frame, derive_row

if TYPE_CHECKING:
    import threading

    import redis
    from feast import FeatureStore
    from redis.cluster import RedisCluster

    from xiva_source.feast_plugin.registry_reader import LightRepository
    from xiva_source.settings import Settings

__all__ = ["FACT_COLUMN", "STAMP_COLUMN", "USE_TTL", "MaxAge", "OnlineReader", "ServedFeature"]

#: ``max_age`` default: a value is stale when older than its feature view's ``ttl``.
USE_TTL: Literal["ttl"] = "ttl"
MaxAge = _dt.timedelta | Mapping[str, _dt.timedelta | None] | Literal["ttl"] | None

FACT_COLUMN = "\x00fact\x00"
"""Prefix of the stored-fact columns a read with ``times=True`` adds (``FACT_COLUMN + fact``)."""
STAMP_COLUMN = "\x00stamp\x00"
"""Prefix of the event-timestamp columns (epoch seconds, NaN: none) of ``times=True``, per view."""

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
        store: The Feast ``FeatureStore`` (its registry and online store config are read once),
            or the registry read without Feast's SDK (a ``LightRepository``: ``segmentation
            sizes`` then starts without importing Feast).
        client: A Redis client (``redis.Redis``, or ``redis.cluster.RedisCluster`` for a cluster);
            default the online store's (``REDIS_URL`` of ``settings`` for the project's store,
            else the yaml's ``connection_string`` and ``redis_type``).
        settings: The project's settings, for the default client; default loaded once for the
            repository (``.env`` beside or above it).
        batch_size: Keys per pipelined ``HMGET`` round trip.
        max_age: Staleness: ``USE_TTL`` (default: each view's ``ttl``; 0/None ttl = never stale),
            a ``timedelta`` for every view, a ``{view: timedelta | None}`` mapping (views not
            listed use their ttl), or ``None`` (never stale). A stale value reads as missing.
        scan_count: ``SCAN COUNT`` hint (keys Redis looks at per ``SCAN`` call).

    Raises:
        OnlineStoreError: The online store is not Redis, or the repository serves no feature
            view with exactly one join key.
        ConfigurationError: The online store's ``REDIS_URL`` / connection string is not usable.
    """

    def __init__(
        self,
        store: FeatureStore | LightRepository,
        *,
        client: redis.Redis | RedisCluster | None = None,
        batch_size: int = 10_000,
        max_age: MaxAge = USE_TTL,
        settings: Settings | None = None,
        scan_count: int = 10_000,
    ) -> None:
        from xiva_source.feast_plugin.registry_reader import LightRepository

        config = store.config
        online = config.online_store
        light = isinstance(store, LightRepository)  # the registry read without Feast's SDK
        if isinstance(store, LightRepository):
            is_redis = bool(store.redis_from_settings)
            kind = online.get("type", "sqlite") if isinstance(online, dict) else online
        else:
            from feast.infra.online_stores.redis import RedisOnlineStoreConfig

            # Subclasses (the project's LoyaltyRedisOnlineStore) keep Feast's Redis layout.
            is_redis = isinstance(online, RedisOnlineStoreConfig)
            kind = getattr(online, "type", type(online).__name__)
        if not is_redis:
            raise OnlineStoreError(
                f"the online store is {kind!r}",
                "configure a Redis online store (type: redis, or the project's "
                "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore) in "
                "feature_store.yaml",
            )
        if batch_size < 1 or scan_count < 1:
            raise SegmentationError(
                f"batch_size {batch_size} and scan_count {scan_count} must be at least 1"
            )
        self.project: str = config.project
        self.version: int = config.entity_key_serialization_version
        self.batch_size = batch_size
        self.scan_count = scan_count
        if client is None and isinstance(store, LightRepository):
            if settings is None:
                from xiva_source.settings import load_settings

                settings = load_settings(repo_path=store.repo_path)
            client = store.redis_client(settings)
        elif client is None:
            from xiva_source.feast_plugin.online_store import online_redis_client

            client = online_redis_client(config, settings)
        assert client is not None  # a Redis online store (checked above)
        self.client: Any = client

        self.features: dict[str, ServedFeature] = {}
        self.ttl: dict[str, _dt.timedelta | None] = {}
        join_keys: set[str] = set()
        self.segments_view: str | None = None
        """The stored name of the served-memberships view (:mod:`segmentation.served`), if any."""
        views: list[Any] = store.list_feature_views()  # Feast's views, or LightView
        for fv in sorted(views, key=lambda v: v.name):
            if fv.name == SEGMENTS_VIEW:  # the segments' output, never an input of a rule
                self.segments_view = view_name(fv, config)
                continue
            if not fv.online:
                continue
            view = view_name(fv, config)
            self.ttl[view] = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
            join_keys.update(fv.join_keys)
            for f in fv.features:
                self.features.setdefault(
                    f.name,
                    ServedFeature(
                        f.name,
                        view,
                        f.value_type if light else f.dtype.to_value_type().name,
                        field_name(view, f.name),
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

    # --- nodes ----------------------------------------------------------------------------
    @property
    def is_cluster(self) -> bool:
        """True when the client is a ``redis.cluster.RedisCluster``."""
        from redis.cluster import RedisCluster

        return isinstance(self.client, RedisCluster)

    def node_clients(self) -> list[redis.Redis]:
        """The Redis to scan: every primary's own client on a cluster, else the one client."""
        return primary_clients(self.client)

    # --- population -----------------------------------------------------------------------
    def scan_keys(self, count: int | None = None) -> Iterator[bytes]:
        """Every Redis key of this project's customers (every primary of a cluster, in turn).

        Args:
            count: ``SCAN COUNT`` hint; default ``scan_count``.
        """
        return scan_entity_keys(self.client, self.layout, count=count or self.scan_count)

    def customer_ids(self) -> list[str]:
        """Every customer with online values in this project, sorted (the whole list: for tests
        and small populations; :meth:`iter_population` streams)."""
        return sorted(cid for k in self.scan_keys() if (cid := self.customer_id_of(k)))

    def iter_population(
        self,
        features: Sequence[str],
        *,
        chunk: int = 100_000,
        now: _dt.datetime | None = None,
        parallel: bool = True,
        times: bool = False,
    ) -> Generator[pd.DataFrame, None, None]:
        """The whole population in DataFrames of up to ``chunk`` customers, streamed.

        Each chunk is read (pipelined ``HMGET``) and decoded when the ``SCAN`` cursor has found
        its keys, and yielded before the next is read. On a Redis Cluster every primary is
        scanned and read by its own thread on its own connection (``parallel``), at most one
        finished chunk per primary waiting for the consumer; chunks come in no set order.

        Args:
            features: Feature names (columns).
            chunk: Customers per DataFrame (at least 1).
            now: The reference time for staleness and derived features (default: now).
            parallel: Read a cluster's primaries at the same time (else one after the other).
            times: Add the stored facts of the derived features and each view's event timestamp
                (:data:`FACT_COLUMN`, :data:`STAMP_COLUMN`: what incremental refreshes index).

        Yields:
            DataFrames as :meth:`read` returns them (indexed by customer id, no id twice).

        Raises:
            SegmentationError: ``chunk`` is below 1.
        """
        if chunk < 1:
            raise SegmentationError(f"chunk {chunk} must be at least 1")
        nodes = self.node_clients()

        def frames(
            node: redis.Redis, stop: threading.Event | None = None
        ) -> Iterator[pd.DataFrame]:
            # Keys a node's SCAN returned before are dropped (SCAN may repeat while rehashing).
            seen = SeenKeys()
            for keys in scan_key_chunks(
                node, self.layout, chunk=chunk, count=self.scan_count, seen=seen, stop=stop
            ):
                yield self._keys_frame(keys, features, now, node, times=times)

        if len(nodes) == 1 or not parallel:
            for node in nodes:
                yield from frames(node)
            return
        yield from parallel_chunks(nodes, frames, thread_name="segmentation-scan")

    # --- reading --------------------------------------------------------------------------
    def _stored(self, names: Sequence[str]) -> list[str]:
        """The stored features to read for ``names``: a derived one is read through its fact."""
        return list(dict.fromkeys(self.feature(n).fact or n for n in names))

    def _fields(self, names: Sequence[str]) -> tuple[list[ServedFeature], list[str], list[bytes]]:
        feats = [self.feature(n) for n in names]
        views = sorted({f.view for f in feats})
        fields = [f.field for f in feats] + [timestamp_field(v) for v in views]
        return feats, views, fields

    def _hmget(
        self, keys: Sequence[bytes], fields: list[bytes], node: redis.Redis | None = None
    ) -> list[list[bytes | None]]:
        """HMGETs of ``keys`` (one batch): on ``node``, or each key on its cluster primary."""
        if node is not None:
            return hmget_on(node, keys, fields)
        return hmget_many(self.client, keys, fields)

    def read(
        self,
        customer_ids: Sequence[str],
        features: Sequence[str],
        *,
        now: _dt.datetime | None = None,
        times: bool = False,
    ) -> pd.DataFrame:
        """Online values of ``features`` for ``customer_ids``, one row per customer.

        Args:
            customer_ids: The customers (unknown ones get an all-missing row).
            features: Feature names.
            now: The reference time for staleness (default: now).
            times: As for :meth:`iter_population`.

        Returns:
            A DataFrame indexed by ``customer_id``: ``Int64`` for integer features, ``float64`` for
            floats (NaN missing), ``object`` for strings (None missing), ``boolean`` for bools.
        """
        ids = list(customer_ids)
        return self._frame(ids, [self.key(c) for c in ids], features, now, times=times)

    def read_keys(
        self, keys: Sequence[bytes], features: Sequence[str], *, now: _dt.datetime | None = None
    ) -> pd.DataFrame:
        """Like :meth:`read`, for Redis keys (from :meth:`scan_keys`)."""
        return self._keys_frame(keys, features, now)

    def _keys_frame(
        self,
        keys: Sequence[bytes],
        features: Sequence[str],
        now: _dt.datetime | None,
        node: redis.Redis | None = None,
        *,
        times: bool = False,
    ) -> pd.DataFrame:
        ids = [self.customer_id_of(k) or "" for k in keys]
        return self._frame(ids, keys, features, now, node, times=times)

    def read_one(
        self, customer_id: str, features: Sequence[str], *, now: _dt.datetime | None = None
    ) -> dict[str, Any]:
        """One customer's values as a plain dict (one HMGET; missing/stale values are None)."""
        feats, views, fields = self._fields(self._stored(features))
        cells: Any = self.client.hmget(self.key(customer_id), fields)
        n = len(feats)
        fresh = self._fresh_views(views, [[c] for c in cells[n:]], now)
        stored = {
            f.name: (self._values(f, [cells[i]], fresh[f.view])[0]) for i, f in enumerate(feats)
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
            seconds = decode_timestamps(col)
            out[view] = ~np.isnan(seconds) & (seconds >= now_s - limit)
        return out

    def _frame(
        self,
        ids: list[str],
        keys: Sequence[bytes],
        features: Sequence[str],
        now: _dt.datetime | None,
        node: redis.Redis | None = None,
        *,
        times: bool = False,
    ) -> pd.DataFrame:
        feats, views, fields = self._fields(self._stored(features))
        n = len(feats)
        values: list[list[Any]] = [[] for _ in feats]
        stamps: list[list[np.ndarray]] = [[] for _ in views]
        # times: the stored facts whatever their staleness (what the time index holds)
        facts = {i: f for i, f in enumerate(feats) if times and f.name in self._fact_names()}
        raw_facts: dict[int, list[Any]] = {i: [] for i in facts}
        # One HMGET batch at a time: its raw replies (about 50 bytes a cell) are decoded into
        # the columns (shared decoded values) before the next batch is read.
        for start in range(0, len(keys), self.batch_size):
            rows = self._hmget(keys[start : start + self.batch_size], fields, node)
            columns = list(zip(*rows, strict=True))
            fresh = self._fresh_views(views, columns[n:], now)
            if times:
                for j, col in enumerate(columns[n:]):
                    stamps[j].append(decode_timestamps(col))
                for i, f in facts.items():
                    raw_facts[i].extend(
                        self._values(f, columns[i], np.ones(len(columns[i]), dtype=bool))
                    )
            for i, f in enumerate(feats):
                values[i].extend(self._values(f, columns[i], fresh[f.view]))
            del rows, columns
        data = {f.name: self._typed(f, values[i]) for i, f in enumerate(feats)}
        index = pd.Index(ids, name=self.join_key, dtype=object)
        frame = pd.DataFrame(data, index=index, columns=[f.name for f in feats])
        derived = [name for name in features if self.feature(name).fact]
        if derived:
            # As of now (the read), like the on-demand view: a stored count would have frozen.
            derived_values = derive_frame(frame, as_of=now)
            for name in derived:
                frame[name] = derived_values[name]
        out = frame[list(dict.fromkeys(features))]
        if not times:
            return out
        extra: dict[str, Any] = {}
        for i, f in facts.items():
            column = np.empty(len(raw_facts[i]), dtype=object)
            column[:] = raw_facts[i]
            extra[FACT_COLUMN + f.name] = column
        for j, view in enumerate(views):
            parts = stamps[j]
            extra[STAMP_COLUMN + view] = (
                np.concatenate(parts) if parts else np.empty(0, dtype="float64")
            )
        return pd.concat([out, pd.DataFrame(extra, index=frame.index)], axis=1)

    def _fact_names(self) -> set[str]:
        """The stored facts behind the derived features."""
        return {f.fact for f in self.features.values() if f.fact is not None}

    def _values(
        self, f: ServedFeature, cells: Sequence[bytes | None], fresh: np.ndarray
    ) -> list[Any]:
        cache = self._decode_cache.setdefault(f.name, {})
        values = decode_cells(cells, f.value_type, cache)
        if not fresh.all():
            values = [v if ok else None for v, ok in zip(values, fresh, strict=True)]
        return values

    @staticmethod
    def _typed(f: ServedFeature, values: list[Any]) -> Any:
        if f.value_type in _FLOAT_TYPES:
            return np.array([np.nan if v is None else v for v in values], dtype="float64")
        if f.value_type in _INT_TYPES:
            return pd.array(values, dtype="Int64")
        if f.value_type == "BOOL":
            return pd.array(values, dtype="boolean")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
