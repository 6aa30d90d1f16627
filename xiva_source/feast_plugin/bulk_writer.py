"""A bulk writer of Arrow tables into Feast's exact Redis layout, newer-write-wins server-side.

Feast's ``RedisOnlineStore.online_write_batch`` reads every row's stored ``_ts:<view>`` (one
``HMGET`` round trip per batch), then sends ``HSET`` + ``EXPIRE`` per row and parses every reply,
with each key and every ``Value`` serialized row by row in Python. This writer writes the same
hashes and moves the comparison into Redis. Its parts:

- the format (:mod:`xiva_source.feast_plugin.redis_format`): keys built column-wise, each cell
  the serialized protobuf ``Value`` Feast's own converter makes (so stock ``get_online_features``
  reads exactly what it wrote), serialized once per distinct value, numbers with numpy; the
  newer-wins Lua script and its arguments (a row at least as new as the stored one wins, equal
  included; ``force`` writes whatever is stored; the key's expiry set in the same call);
- the sending (:mod:`xiva_source.feast_plugin.bulk_send`): ``EVALSHA`` calls pipelined on a
  single Redis, grouped by hash slot and pipelined per primary on a cluster, ``NOSCRIPT`` and
  ``MOVED`` handled;
- here: a table of a feature view turned into the script's rows, and :meth:`BulkWriter.submit`,
  which sends a table from a background thread while the caller reads its next one.

A *partial* table (:meth:`BulkWriter.write` with ``partial=True``) writes only its known cells: a
null cell (as Feast serializes a null of that type) is left out of the hash, so Redis keeps its
value; a row with no known cell is not sent. The same rule decides whether its cells land.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.bulk_send import send_script_rows
from xiva_source.feast_plugin.redis_format import (
    RedisLayout,
    column_array,
    encode_column,
    script_header,
    script_rows,
    timestamp_parts,
    view_name,
)
from xiva_source.features.catalogue import EVENT_TIMESTAMP

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future, ThreadPoolExecutor

    import numpy as np
    import pyarrow as pa
    from feast import FeatureView
    from feast.repo_config import RepoConfig
    from feast.value_type import ValueType

    from xiva_source.feast_plugin.redis_format import ScriptRows
    from xiva_source.feast_plugin.redis_format.script import Header

__all__ = ["ROWS_PER_CALL", "BulkWriteResult", "BulkWriter"]

ROWS_PER_CALL = 1_000
"""Rows per ``EVALSHA`` on a single Redis: small enough that one call blocks Redis for
milliseconds, large enough that the per-command cost vanishes."""


@dataclass
class BulkWriteResult:
    """What one :meth:`BulkWriter.write` did.

    Attributes:
        sent: Rows sent to Redis (a partial table's rows without a known cell are not).
        written: Rows the script wrote (the others were older than what is stored).
    """

    sent: int = 0
    written: int = 0


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
        self.client = client
        self.config = config
        self.ttl_seconds = int(ttl_seconds or 0)
        self.force = force
        self.rows_per_call = max(1, rows_per_call)
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
        header, rows = self._encode(fv, table, join_keys, partial=partial)
        self._wait()  # a table submit() sent goes first
        if not rows.keys:
            return result
        result.sent = len(rows.keys)
        result.written = self._send(header, rows)
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
        header, rows = self._encode(fv, table, join_keys, partial=partial)
        self._wait()
        if not rows.keys:
            return 0
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-writer")
        self._pending = self._executor.submit(self._send, header, rows)
        return len(rows.keys)

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

    def _send(self, header: Header, rows: ScriptRows) -> int:
        return send_script_rows(self.client, header, rows, rows_per_call=self.rows_per_call)

    # --- encoding ---------------------------------------------------------------------------
    def _layout(self, join_keys: Sequence[str]) -> RedisLayout:
        names = tuple(sorted(join_keys))
        layout = self._layouts.get(names)
        if layout is None:
            layout = self._layouts[names] = RedisLayout.of(self.config, names)
        return layout

    def _encode(
        self, fv: FeatureView, table: pa.Table, join_keys: dict[str, ValueType], *, partial: bool
    ) -> tuple[Header, ScriptRows]:
        """``table`` in the write script's terms: the calls' header and one entry per row."""
        view = view_name(fv, self.config)
        features = [(f.name, f.dtype.to_value_type()) for f in fv.features]
        header = script_header(
            view, [name for name, _ in features], ttl_seconds=self.ttl_seconds, force=self.force
        )
        table = table.combine_chunks()
        keys = self._layout(list(join_keys)).table_keys(table, join_keys)
        time_column = _timestamp_column(fv, table)
        times = column_array(table.column(time_column))
        if times.null_count:
            raise ValueError(f"the event timestamp column {time_column} has null values")
        seconds, nanos = timestamp_parts(times)
        cells: list[np.ndarray] = []
        nulls: list[bytes] = []
        for name, value_type in features:
            if name not in table.column_names:
                raise ValueError(f"Column {name} not found in table")
            column, null = encode_column(column_array(table.column(name)), value_type)
            cells.append(column)
            nulls.append(null)
        return header, script_rows(keys, seconds, nanos, cells, nulls, partial=partial)


def _timestamp_column(fv: FeatureView, table: pa.Table) -> str:
    name = fv.batch_source.timestamp_field if fv.batch_source is not None else ""
    if name and name in table.column_names:
        return name
    if EVENT_TIMESTAMP in table.column_names:
        return EVENT_TIMESTAMP
    raise ValueError(f"Column {name or EVENT_TIMESTAMP} not found in table")
