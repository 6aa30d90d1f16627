"""How the job writes the online store: newer-write-wins decided in Redis, partial rows by cell.

On a Redis online store (Feast's, or our ``LoyaltyRedisOnlineStore``) the job writes through
:class:`~xiva_source.feast_plugin.bulk_writer.BulkWriter`: Feast's exact hashes (stock
``get_online_features`` reads them), one Lua script per group of rows that compares each row's
event timestamp with the stored ``_ts:<view>`` in Redis (no read round trip), values serialized
once per distinct value, the key expiry set in the same call. Other online stores (SQLite in the
demo) keep Feast's ``online_write_batch`` (SQLite's upsert lets the last write win).

The rule, per row: **write when the key has no ``_ts:<view>``, or the row's timestamp is at least
the stored one; a forced writer (a reload: ``--full``, a wiped store, a mode change) writes
whatever is stored.** Why each part:

- older rows lose (Feast's newer-wins): a late or replayed row never replaces newer values;
- equal rows win (Feast's own check skips them): a catch-up after a fallback carries the same
  timestamps as the partial rows it repairs, and DWH rows re-read by the lookback are rewritten
  idempotently;
- the job orders what it writes so its last write is the merged truth: it holds the lock, every
  DWH read comes oldest row first, a merged row's timestamp is the later of its sources' (so it is
  never older than the merged row stored before it), and ``auto`` writes each customer's fully
  merged row after any other row of it (:mod:`xiva_source.pipeline.auto`);
- a reload must rewrite a row stamped in the year 9999 (a bogus ``lastUpdate``), and after a mode
  change a view's timestamps may move back (``auto`` -> ``dwh``): both write forced.

Live refresh and Feast's own writers keep Feast's strict newer-wins; a refresh racing a run is
overwritten only by a row at least as new, and the next run reads that customer again.

Before a table is sent, its customers are marked in the changed-customers journal
(:mod:`xiva_source.feast_plugin.changed`), and again once it is in Redis: the next segment refresh
re-evaluates them only (the first mark survives a crash after the write; the second covers a
refresh that read them between the first mark and the write).

A partial table (:func:`xiva_source.pipeline.auto.is_partial`) is written cell by cell: its null
cells are left out of the row, so the online store keeps its value for them (the same rule decides
whether its known cells land); a row with no known cell is not written at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.pipeline.auto import is_partial

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore, FeatureView
    from feast.infra.online_stores.online_store import OnlineStore

    from xiva_source.feast_plugin.bulk_writer import BulkWriter

__all__ = ["OnlineWriter"]


class OnlineWriter:
    """Writes the job's Arrow chunks to the online store (see the module docstring).

    Args:
        store: The job's own feature store.
        online_store: The online store instance.
        client: The online store's Redis client when the caller has one (the run's); ``None``
            builds one for a Redis store
            (:func:`~xiva_source.feast_plugin.online_store.online_redis_client`).
        force: Write every row whatever is stored (a reload).
    """

    def __init__(
        self,
        store: FeatureStore,
        online_store: OnlineStore,
        *,
        client: Any | None = None,
        force: bool = False,
    ) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        from xiva_source.feast_plugin.online_store import bind_online_config

        self.store = store
        self.online_store = online_store
        self.force = force
        self.bulk: BulkWriter | None = None
        self._in_flight: list[Any] = []  # the customers of the table being sent
        online = bind_online_config(store.config)
        if isinstance(online, RedisOnlineStoreConfig):
            from xiva_source.feast_plugin.bulk_writer import BulkWriter
            from xiva_source.feast_plugin.online_store import online_redis_client

            if client is None:
                client = online_redis_client(store.config, online_store=online_store)
            self.bulk = BulkWriter(
                client, store.config, ttl_seconds=online.key_ttl_seconds, force=force
            )

    def write(self, fv: FeatureView, table: pa.Table, join_keys: dict[str, Any]) -> int:
        """Write ``table``'s rows for ``fv``; returns the rows sent (partial rows may be none).

        Rows older than what is stored are sent and not written (the module's rule). On Redis
        the rows are sent in the background: call :meth:`flush` after the last chunk.

        Raises:
            OnlineStoreError: Redis failed (for the previous chunk, on Redis).
        """
        partial = is_partial(table)
        if self.bulk is not None:
            ids = self._ids(table, join_keys)
            self._mark(ids)  # before the write: a crash after it leaves the mark
            # Sent in the background while the job reads its next chunk: flush() waits.
            sent = self.bulk.submit(fv, table, join_keys, partial=partial)
            # submit() waited for the previous table: in Redis now, marked again (a refresh that
            # read those customers between the first mark and the write sees them next time).
            self._mark(self._in_flight)
            self._in_flight = ids
            return sent
        return self._write_feast(fv, table, join_keys, partial=partial)

    @staticmethod
    def _ids(table: pa.Table, join_keys: dict[str, Any]) -> list[Any]:
        """The table's customers (segments are over one entity with one join key)."""
        if len(join_keys) != 1 or table.num_rows == 0:
            return []
        (key,) = join_keys
        return table.column(key).to_pylist()

    def _mark(self, ids: list[Any]) -> None:
        """Mark customers in the changed-customers journal (segment refreshes re-evaluate them:
        :mod:`xiva_source.feast_plugin.changed`)."""
        from redis.exceptions import RedisError

        from xiva_source.feast_plugin.changed import mark_changed

        if self.bulk is None or not ids:
            return
        try:
            mark_changed(self.bulk.client, self.store.project, ids)
        except RedisError as e:
            raise OnlineStoreError.failed(e) from e

    def flush(self) -> None:
        """Wait until every row :meth:`write` took is in the online store.

        Call it before anything relies on the rows being stored (the view's watermark).

        Raises:
            OnlineStoreError: Redis failed.
        """
        if self.bulk is not None:
            self.bulk.flush()
            self._mark(self._in_flight)  # in Redis now: marked again (see write)
            self._in_flight = []

    def _write_feast(
        self, fv: FeatureView, table: pa.Table, join_keys: dict[str, Any], *, partial: bool
    ) -> int:
        """Feast's ``online_write_batch`` (a store that is not Redis)."""
        from redis.exceptions import RedisError

        from xiva_source.feast_plugin.online_rows import to_online_rows

        written = 0
        for rows in to_online_rows(fv, table, join_keys):
            if partial:
                rows = _known_cells(rows)
            if not rows:
                continue
            try:
                self.online_store.online_write_batch(self.store.config, fv, rows, None)
            except RedisError as e:
                raise OnlineStoreError.failed(e) from e
            written += len(rows)
        return written


def _known_cells(rows: list[Any]) -> list[Any]:
    """Each row with its null cells left out; rows left with no cell dropped."""
    out = []
    for entity_key, values, ts, created in rows:
        known = {k: v for k, v in values.items() if not _is_null(v)}
        if known:
            out.append((entity_key, known, ts, created))
    return out


def _is_null(value: Any) -> bool:
    """A null cell: no value set, or Feast's null timestamp (NaT as an int)."""
    from feast.type_map import NULL_TIMESTAMP_INT_VALUE

    kind = value.WhichOneof("val")
    return kind is None or (
        kind == "unix_timestamp_val" and value.unix_timestamp_val == NULL_TIMESTAMP_INT_VALUE
    )
